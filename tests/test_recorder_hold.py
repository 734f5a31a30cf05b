"""The recorder's group commit waits a little for a wave of callbacks (bigger batches under load)
and never for one that is not coming: at a shop's pace, after the load fell, or at shutdown."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.recorder import PEAK_KEPT, PG_HOLD, Recorder
from profile_store import raw_events
from profile_store.db import Database
from tests import callback_kit as kit

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONG = 30.0  # a hold no test may wait out: a callback held by mistake fails the test's timeout


def event(i: int) -> raw_events.NewRawEvent:
    body = kit.oa_event("subscribe", f"oh{i}", 1_700_000_000 + i)
    return raw_events.NewRawEvent(f"h{i}", "wechat", kit.OA1, body, datetime.now(SHANGHAI))


async def recorded_rows(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count()).select_from(raw_events.RAW))).scalar_one())


async def wave(recorder: Recorder, first: int, count: int) -> None:
    """`count` callbacks at once, as concurrent requests bring them."""
    async with asyncio.timeout(5):
        results = await asyncio.gather(*(recorder.record(event(first + i)) for i in range(count)))
    assert all(r.new for r in results)


async def test_callbacks_one_at_a_time_are_never_held(db: Database) -> None:
    recorder = Recorder(db, hold=LONG)
    await recorder.start()
    try:
        async with asyncio.timeout(5):
            for i in range(3):
                assert (await recorder.record(event(i))).new
        await wave(recorder, 10, 2)  # two at once: a batch waits for one, which it already has
        async with asyncio.timeout(5):
            assert (await recorder.record(event(20))).new
    finally:
        await recorder.stop()
    assert await recorded_rows(db) == 6


async def test_a_batch_waits_for_three_quarters_of_the_wave_the_edge_last_held(db: Database) -> None:
    recorder = Recorder(db, hold=LONG)
    await recorder.start()
    try:
        await wave(recorder, 0, 8)  # this edge held 8 at once: a batch now waits for 6
        first = [asyncio.create_task(recorder.record(event(100 + i))) for i in range(5)]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in first)
        assert await recorded_rows(db) == 8
        async with asyncio.timeout(5):
            sixth = await recorder.record(event(105))
            held = await asyncio.gather(*first)
        assert sixth.new and all(r.new for r in held)
    finally:
        await recorder.stop()
    assert await recorded_rows(db) == 14


async def test_a_wave_that_does_not_come_costs_at_most_the_hold(db: Database) -> None:
    recorder = Recorder(db, hold=0.2)
    await recorder.start()
    loop = asyncio.get_running_loop()
    try:
        await wave(recorder, 0, 8)
        asked = loop.time()
        async with asyncio.timeout(5):
            assert (await recorder.record(event(50))).new
        assert loop.time() - asked >= 0.15  # it was held ...
        # ... and a peak not reached again within PEAK_KEPT is forgotten: no hold at all now
        await asyncio.sleep(PEAK_KEPT + 0.1)
        recorder.hold = LONG
        async with asyncio.timeout(5):
            assert (await recorder.record(event(51))).new
    finally:
        await recorder.stop()


async def test_stopping_writes_a_held_batch_at_once(db: Database) -> None:
    recorder = Recorder(db, hold=LONG)
    await recorder.start()
    await wave(recorder, 0, 8)
    held = asyncio.create_task(recorder.record(event(60)))
    await asyncio.sleep(0.1)
    assert not held.done()
    async with asyncio.timeout(5):
        await recorder.stop()
        assert (await held).new
    assert await recorded_rows(db) == 9


async def test_by_default_only_postgresql_waits_for_a_wave(db: Database) -> None:
    # On SQLite the hold gained nothing and cost p99 (bot/recorder.py, measured in the bench).
    assert Recorder(db).hold == (PG_HOLD if db.is_postgres else 0.0)
