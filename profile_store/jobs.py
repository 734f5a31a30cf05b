"""Runs of scheduled jobs, in the database: a run (job, key) happens once however many `serve`
processes schedule it — the first to insert the row does it, the others see it and skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of, rowcount
from profile_store.models import JobRun

RUNS = JobRun.__table__  # type: ignore[attr-defined]


async def claim_run(
    session: AsyncSession, job: str, run_key: str, owner: str, *, stale_after: timedelta = timedelta(hours=3)
) -> bool:
    """True when this caller gets the run (commit the session before doing the work). A run
    claimed but unfinished for longer than `stale_after` (its process died) is taken over."""
    now = datetime.now(UTC)
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(RUNS)
    result = await session.execute(
        insert.values(job=job, run_key=run_key, owner=owner, started_at=now, outcome="").on_conflict_do_nothing()
    )
    if rowcount(result) == 1:
        return True
    taken = await session.execute(
        update(RUNS)
        .where(RUNS.c.job == job, RUNS.c.run_key == run_key, RUNS.c.finished_at.is_(None),
               RUNS.c.started_at < now - stale_after)
        .values(owner=owner, started_at=now)
    )
    return rowcount(taken) == 1


async def finish_run(session: AsyncSession, job: str, run_key: str, outcome: str) -> None:
    row = await session.get(JobRun, (job, run_key))
    if row is not None:
        row.finished_at = datetime.now(UTC)
        row.outcome = outcome[:500]
        await session.flush()


async def release_run(session: AsyncSession, job: str, run_key: str) -> None:
    """A run that failed gives its key back, so the next tick (or another process) retries."""
    row = await session.get(JobRun, (job, run_key))
    if row is not None:
        await session.delete(row)
        await session.flush()
