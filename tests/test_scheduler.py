"""Scheduled work: a daily run happens once across processes, a failed run is retried, the
nightly tag refresh and its catch-up at start (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from sqlalchemy import select

from bot.dispatcher import ErrorReporter
from bot.scheduler import JobScheduler
from profile_store.db import Database
from profile_store.models import JobRun, PersonProfile
from profile_store.tagging.refresh import refresh_all
from tests.tag_kit import Retailer

DAY = date(2026, 11, 2)


async def test_a_daily_run_happens_once_across_schedulers(db: Database) -> None:
    await db.migrate()
    ran: list[date] = []

    async def job(day: date) -> str:
        await asyncio.sleep(0.05)
        ran.append(day)
        return "ok"

    # Two `serve` processes, each with its own scheduler, wake up at the same time.
    first, second = JobScheduler(db, ErrorReporter(), "Asia/Shanghai"), JobScheduler(db, ErrorReporter(), "UTC")
    results = await asyncio.gather(first.run_daily("nightly", job, DAY), second.run_daily("nightly", job, DAY))
    assert sorted(results) == [False, True] and ran == [DAY]
    assert not await first.run_daily("nightly", job, DAY)  # later in the day: already done
    assert await first.run_daily("nightly", job, date(2026, 11, 3))  # the next day runs again
    async with db.transaction() as session:
        runs = (await session.execute(select(JobRun))).scalars().all()
    assert {(r.run_key, r.outcome) for r in runs} == {("2026-11-02", "ok"), ("2026-11-03", "ok")}
    assert all(r.finished_at is not None for r in runs)


async def test_a_failed_run_is_reported_and_retried(db: Database) -> None:
    await db.migrate()
    attempts = 0

    async def flaky(day: date) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("database went away")

    reported: list[str] = []

    class Reporter(ErrorReporter):
        def report(self, exc: BaseException, *, where: str, key: str) -> None:
            reported.append(f"{where}:{key}:{exc}")

    scheduler = JobScheduler(db, Reporter(), "Asia/Shanghai")
    assert not await scheduler.run_daily("nightly", flaky, DAY)
    assert reported == ["job nightly:2026-11-02:database went away"]
    assert await scheduler.run_daily("nightly", flaky, DAY)  # the key was given back
    assert attempts == 2


async def test_the_nightly_refresh_rolls_the_date(db: Database, tmp_path: Path) -> None:
    shop = Retailer()
    shop.member("M1")
    shop.order("M1", "2025-11-02 10:00:00", "100")
    await shop.load(db, tmp_path)
    scheduler = JobScheduler(db, ErrorReporter(), "Asia/Shanghai")

    async def nightly(day: date) -> str:
        return str((await refresh_all(db, day)).persons)

    assert await scheduler.run_daily("tags-refresh", nightly, date(2026, 11, 1))
    async with db.transaction() as session:
        before = (await session.execute(select(PersonProfile))).scalars().one()
    assert await scheduler.run_daily("tags-refresh", nightly, date(2026, 11, 2))  # the order leaves the window
    async with db.transaction() as session:
        after = (await session.execute(select(PersonProfile))).scalars().one()
    assert (before.lifecycle, after.lifecycle) == ("购买", "沉睡")
    assert after.as_of == date(2026, 11, 2)


async def test_serve_makes_up_a_missed_nightly_refresh(
    db: Database, db_url: str, tmp_path: Path, aiohttp_client: object
) -> None:
    from typing import Any, cast

    from bot.app import create_app
    from tests import callback_kit as kit

    shop = Retailer()
    shop.member("M1")
    await shop.load(db, tmp_path)
    settings = kit.make_settings(db_url, corp_id="wwcorp", secret="s", agent_id="1", api_base="http://127.0.0.1:9",
                                 QIANMIAN_TAGS_REFRESH_AT="00:00")
    await cast(Any, aiohttp_client)(create_app(settings, db=db, sweep_interval=3600))
    for _ in range(100):  # the catch-up runs in the background after start
        async with db.transaction() as session:
            runs = (await session.execute(select(JobRun))).scalars().all()
        if runs and runs[0].finished_at is not None:
            break
        await asyncio.sleep(0.05)
    assert [(r.job, r.run_key) for r in runs] == [("tags-refresh", settings.today().isoformat())]
    async with db.transaction() as session:
        assert len((await session.execute(select(PersonProfile))).scalars().all()) == 1


async def test_a_run_left_by_a_dead_process_is_taken_over(db: Database) -> None:
    from datetime import UTC, datetime, timedelta

    from profile_store import jobs

    await db.migrate()
    async with db.transaction() as session:
        assert await jobs.claim_run(session, "nightly", "2026-11-02", "host-a:1")  # …then host-a dies
    async with db.transaction() as session:
        assert not await jobs.claim_run(session, "nightly", "2026-11-02", "host-b:2")  # still fresh
        row = await session.get(JobRun, ("nightly", "2026-11-02"))
        assert row is not None
        row.started_at = datetime.now(UTC) - timedelta(hours=4)
    async with db.transaction() as session:
        assert await jobs.claim_run(session, "nightly", "2026-11-02", "host-b:2")
        row = await session.get(JobRun, ("nightly", "2026-11-02"))
        assert row is not None and row.owner == "host-b:2"


async def test_stopping_mid_run_gives_the_day_back(db: Database) -> None:
    await db.migrate()
    started = asyncio.Event()

    async def slow(day: date) -> None:
        started.set()
        await asyncio.sleep(60)

    scheduler = JobScheduler(db, ErrorReporter(), "Asia/Shanghai")
    run = asyncio.create_task(scheduler.run_daily("nightly", slow, DAY))
    await started.wait()
    await scheduler.stop()
    assert run.cancelled()
    async with db.transaction() as session:
        assert (await session.execute(select(JobRun))).scalars().all() == []
