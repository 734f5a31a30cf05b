"""A worker beside an edge yields to the callbacks being recorded: it watches the inbox grow
through `InboxWatch`, one statement on a kept connection, looked at by processing and sending
at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.dispatcher import Dispatcher
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
