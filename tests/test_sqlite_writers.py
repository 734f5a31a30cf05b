"""SQLite writers of several processes queue behind a kernel lock beside the database, so one
process's back-to-back transactions cannot starve another's (SQLite's own busy handler polls
with sleeps up to 100 ms). Two `Database` objects stand for two processes: flock locks belong
to an open file, so they exclude each other exactly as two processes do."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from sqlalchemy import text

from profile_store.db import Database


async def _gap_after_release(url: str, hold: float) -> float:
    """Seconds from the first writer's commit to the second writer's first write, the second
    having asked for the lock while the first held it (may be < 0 only if it did not wait)."""
    first, second = Database(url), Database(url)
    try:
        inside = asyncio.Event()
        released = wrote = 0.0

        async def long_writer() -> None:
            nonlocal released
            async with first.transaction() as session:
                await session.execute(text("CREATE TABLE IF NOT EXISTS w (who TEXT)"))
                inside.set()
                await asyncio.sleep(hold)
            released = time.monotonic()

        async def short_writer() -> None:
            nonlocal wrote
            await inside.wait()
            await asyncio.sleep(0.01)  # surely behind the first
            async with second.transaction() as session:
                await session.execute(text("INSERT INTO w VALUES ('second')"))  # BEGIN IMMEDIATE is here
                wrote = time.monotonic()

        await asyncio.gather(long_writer(), short_writer())
        return wrote - released
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_second_writer_waits_for_the_first_and_then_goes_at_once(tmp_path: Path) -> None:
    """Left to SQLite's busy handler (sleeps of 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
    between tries), the second writer got in 16-93 ms after the release, 42 ms typically;
    queued behind the flock, 2-4 ms. The median of five keeps one slow wake-up from deciding."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    setup = Database(url)
    await setup.migrate()
    await setup.dispose()
    gaps = [await _gap_after_release(url, hold) for hold in (0.1, 0.15, 0.2, 0.25, 0.3)]
    assert all(gap > -0.005 for gap in gaps), gaps  # the second did wait for the first
    assert statistics.median(gaps) < 0.015, gaps
    assert (tmp_path / "q.db.writers").exists()


async def test_a_writer_that_gives_up_waiting_does_not_keep_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    holder, quitter, later = Database(url), Database(url), Database(url)
    try:
        await holder.migrate()
        release = asyncio.Event()
        inside = asyncio.Event()

        async def hold() -> None:
            async with holder.transaction():
                inside.set()
                await release.wait()

        holding = asyncio.create_task(hold())
        await inside.wait()
        waiting = asyncio.create_task(quitter.transaction().__aenter__())
        await asyncio.sleep(0.1)
        waiting.cancel()  # e.g. a request timed out while queued
        await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        await holding
        await asyncio.sleep(0.1)  # the abandoned wait's thread gets the lock meanwhile
        async with asyncio.timeout(5):  # the abandoned wait handed the lock back
            async with later.transaction() as session:
                assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        for db in (holder, quitter, later):
            await db.dispose()
