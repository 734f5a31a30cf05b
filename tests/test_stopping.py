"""Background loops stop when cancelled, whatever loop turn the cancel lands on.

On Python 3.11, `asyncio.wait_for` drops a cancel that arrives in the few loop turns after its
inner wait finished. The outbox sender waits for the recorder to be idle before each round, and
an idle recorder's event is already set: a shutdown that cancelled the sender in that window left
it looping, and the app's cleanup waited for it forever (seen once in CI, a 300 s timeout in a
test's teardown). Each check cancels at every turn of the loop from 0 to 8.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import DATABASE, OUTBOX, RECORDER, create_app
from bot.waiting import wait_set
from profile_store.db import Database
from tests import callback_kit as kit

TURNS = range(9)


def app_without_tencent(db_url: str, db: Database | None = None) -> web.Application:
    """The app as `serve` builds it, its Tencent base a closed port (nothing here calls it)."""
    settings = kit.make_settings(db_url, corp_id="wwc", secret="s", agent_id="1", api_base="http://127.0.0.1:9")
    return create_app(settings, db=db)


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize("turns", TURNS)
async def test_a_wait_on_a_set_event_keeps_its_cancel(turns: int) -> None:
    event = asyncio.Event()
    event.set()
    reached_the_end = asyncio.Event()

    async def waiter() -> None:
        await asyncio.sleep(0)  # the cancel may land before, during or after the wait
        assert await wait_set(event, 1.0) is True
        await asyncio.sleep(0.05)
        reached_the_end.set()

    task = asyncio.create_task(waiter())
    await _turns(turns)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and not reached_the_end.is_set()


async def test_a_wait_times_out_or_sees_the_event() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5.0) is True


@pytest.mark.parametrize("turns", TURNS)
async def test_waiting_for_an_idle_recorder_keeps_its_cancel(db_url: str, turns: int) -> None:
    app = app_without_tencent(db_url)
    recorder = app[RECORDER]
    task = asyncio.create_task(recorder.wait_idle(1.0))
    await _turns(turns)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await app[DATABASE].dispose()
    assert task.cancelled()


@pytest.mark.parametrize("turns", TURNS)
async def test_the_outbox_sender_stops_whenever_it_is_stopped(db_url: str, turns: int) -> None:
    """The sender as the app builds it: it yields to the recorder before every round."""
    app = app_without_tencent(db_url)
    sender = app[OUTBOX]
    await app[RECORDER].start()
    try:
        for round_ in range(3):  # a fresh start each time: the loop's first turns, then later ones
            sender.start()
            await _turns(turns + round_ * 5)
            async with asyncio.timeout(10):
                await sender.stop()
    finally:
        await app[RECORDER].stop()
        await app[DATABASE].dispose()


def test_no_product_code_waits_with_asyncio_wait_for() -> None:
    """One way to wait with a timeout (`bot.waiting.wait_set`, or `asyncio.timeout`): a new
    `asyncio.wait_for` in a loop that is stopped by cancelling would bring the hang back."""
    root = Path(__file__).resolve().parent.parent
    found = [
        f"{path.relative_to(root)}:{number}"
        for package in ("bot", "handlers", "profile_store", "campaigns", "nlp")
        for path in sorted((root / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "wait_for(" in line and not line.lstrip().startswith("#")
    ]
    assert found == []
