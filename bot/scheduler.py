"""Scheduled work, APScheduler 3.11 inside our own class (python-telegram-bot's JobQueue style).

APScheduler only supplies the clock: what ran and what is owed lives in our tables (`job_run`
for once-a-day work, the outboxes for the rest), so jobs are safe with several `serve`
processes and survive restarts. Every job's failure goes to the one ErrorReporter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.dispatcher import ErrorReporter
from profile_store import jobs
from profile_store.db import Database

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]
DailyJob = Callable[[date], Awaitable[Any]]


class JobScheduler:
    def __init__(self, db: Database, errors: ErrorReporter, tz: str) -> None:
        self.db = db
        self.errors = errors
        self.tz = ZoneInfo(tz)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._scheduler = AsyncIOScheduler(timezone=self.tz)
        self._running: set[asyncio.Task[Any]] = set()

    def every(self, name: str, seconds: float, job: Job) -> None:
        """Run `job` every `seconds` (never two at once in this process)."""
        self._scheduler.add_job(
            self._guarded, IntervalTrigger(seconds=seconds, timezone=self.tz), args=(name, job),
            id=name, max_instances=1, coalesce=True, replace_existing=True,
        )

    def daily(self, name: str, at: str, job: DailyJob) -> None:
        """Run `job(today)` once a day at `at` (HH:MM, business time), once across processes.
        A missed run (nobody was up at that time) is made up at the next start."""
        hour, minute = (int(x) for x in at.split(":"))
        self._scheduler.add_job(
            self.run_daily, CronTrigger(hour=hour, minute=minute, timezone=self.tz), args=(name, job),
            id=name, max_instances=1, coalesce=True, replace_existing=True, misfire_grace_time=3600,
        )

    async def run_daily(self, name: str, job: DailyJob, day: date | None = None) -> bool:
        """Do today's run of a daily job unless some process did or is doing it."""
        day = day or datetime.now(self.tz).date()
        key = day.isoformat()
        async with self.db.transaction() as session:
            if not await jobs.claim_run(session, name, key, self.owner):
                return False
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            outcome = await job(day)
        except asyncio.CancelledError:
            # Stopped mid-run: give the day back so the next start (or another process) runs it.
            async with self.db.transaction() as session:
                await jobs.release_run(session, name, key)
            raise
        except Exception as exc:
            self.errors.report(exc, where=f"job {name}", key=key)
            async with self.db.transaction() as session:
                await jobs.release_run(session, name, key)
            return False
        finally:
            if task is not None:
                self._running.discard(task)
        async with self.db.transaction() as session:
            await jobs.finish_run(session, name, key, str(outcome or "done"))
        return True

    async def _guarded(self, name: str, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await job()
        except asyncio.CancelledError:
            return  # stopped: the outbox keeps what was not sent, nothing to report
        except Exception as exc:
            self.errors.report(exc, where=f"job {name}", key=name)
        finally:
            if task is not None:
                self._running.discard(task)

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        """No new runs; interval jobs in flight are cancelled (their work stays in our tables)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
