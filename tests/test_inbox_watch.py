"""A worker beside an edge yields to the callbacks being recorded: it watches the inbox grow
through `InboxWatch`, one statement on a kept connection, looked at by processing and sending
at once. Every worker's poll looks through it too, before it reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from bot.dispatcher import Dispatcher
from profile_store import raw_events
from profile_store.db import Database
from profile_store.raw_events import InboxWatch, InboxWriter, NewRawEvent, record_once


def _event(key: str) -> NewRawEvent:
    return NewRawEvent(dedupe_key=key, channel="wecom", account="corp", body="<xml/>", received_at=datetime.now(UTC))


async def test_the_watch_follows_the_inbox_and_takes_concurrent_looks(db: Database) -> None:
    watch = InboxWatch(db)
    try:
        assert await watch.latest_id() == 0  # an empty inbox
        ids = await record_once(db, [_event("a"), _event("b")])
        # Processing and sending look at the same moment: one connection, one statement at a time.
        looks = await asyncio.gather(*(watch.latest_id() for _ in range(20)))
        assert set(looks) == {max(ids.values())}
        more = await record_once(db, [_event("c")])
        assert await watch.latest_id() == more["c"] > max(ids.values())
    finally:
        await watch.close()
    assert await watch.latest_id() == more["c"]  # closed: the next look connects again
    await watch.close()


async def test_edge_quiet_waits_while_callbacks_are_recorded(db: Database) -> None:
    dispatcher = Dispatcher(db, [])
    try:
        assert await dispatcher.edge_quiet(1.0, quiet=0.01) is True  # nothing arriving

        async def flood() -> None:
            inbox = InboxWriter(db)  # the edge's kept connection: a record every few ms
            try:
                for i in range(100):
                    await inbox.write([_event(f"flood-{i}")])
                    await asyncio.sleep(0.002)
            finally:
                await inbox.close()

        recording = asyncio.create_task(flood())
        await asyncio.sleep(0.02)
        busy = await asyncio.gather(dispatcher.edge_quiet(0.1, quiet=0.1), dispatcher.edge_quiet(0.1, quiet=0.1))
        await recording
        assert busy == [False, False]  # still arriving when the time was up
        assert await dispatcher.edge_quiet(1.0, quiet=0.01) is True
    finally:
        await dispatcher.drain()


async def test_a_workers_look_finds_a_new_callback_exactly_when_its_read_does(db: Database) -> None:
    """`any_fresh` (the kept connection's look, every poll) against `fresh_pending` (the read that
    follows it): new and never attempted, nothing else."""
    watch = InboxWatch(db)

    async def read_finds() -> bool:
        async with db.read() as session:
            return bool(await raw_events.fresh_pending(session, 1))

    async def set_row(row_id: int, status: str, attempts: int) -> None:
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE raw_event SET status = :s, attempts = :a WHERE id = :id"),
                {"s": status, "a": attempts, "id": row_id},
            )

    try:
        assert (await watch.any_fresh(), await read_finds()) == (False, False)  # an empty inbox
        row = (await record_once(db, [_event("new")]))["new"]
        assert (await watch.any_fresh(), await read_finds()) == (True, True)
        for status, attempts in (("pending", 1), ("done", 0), ("dead", 0), ("done", 1)):
            await set_row(row, status, attempts)  # failed once (the sweeper's), processed, dead-lettered
            assert (await watch.any_fresh(), await read_finds()) == (False, False), (status, attempts)
        await set_row(row, "pending", 0)  # replayed by an operator: new again
        assert (await watch.any_fresh(), await read_finds()) == (True, True)
    finally:
        await watch.close()
