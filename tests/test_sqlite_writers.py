"""SQLite writers of several processes queue behind a kernel lock beside the database, so one
process's back-to-back transactions cannot starve another's (SQLite's own busy handler polls
with sleeps up to 100 ms). Two `Database` objects stand for two processes: flock locks belong
to an open file, so they exclude each other exactly as two processes do."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from profile_store.db import Database


async def test_a_second_writer_waits_for_the_first_and_then_goes_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    first, second = Database(url), Database(url)
    try:
        await first.migrate()
        order: list[str] = []
        inside = asyncio.Event()

        async def long_writer() -> None:
            async with first.transaction() as session:
                await session.execute(text("CREATE TABLE IF NOT EXISTS w (who TEXT)"))
                inside.set()
                await asyncio.sleep(0.3)
                order.append("first done")

        async def short_writer() -> float:
            await inside.wait()
            asked = time.monotonic()
            async with second.transaction() as session:
                order.append("second in")
                await session.execute(text("INSERT INTO w VALUES ('second')"))
            return time.monotonic() - asked

        _, waited = await asyncio.gather(long_writer(), short_writer())
        assert order == ["first done", "second in"]
        assert 0.2 < waited < 0.3 + 0.25, waited  # behind the first, not a busy-handler sleep later
        assert (tmp_path / "q.db.writers").exists()
    finally:
        await first.dispose()
        await second.dispose()


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
        async with asyncio.timeout(5):  # the abandoned wait handed the lock back
            async with later.transaction() as session:
                assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        for db in (holder, quitter, later):
            await db.dispose()
