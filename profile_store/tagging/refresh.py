"""Keeping tags current: the full refresh (pages of persons), the incremental path (the persons
an event touched) and the export's on-the-fly computation — all through `compute_range`.

The full refresh walks active persons in person_id order, one page per transaction: memory
holds one page, a crash loses at most the page in flight (each page commits whole), and a
re-run simply recomputes. The incremental path runs in the caller's transaction, so an event
and the tags it changes commit together.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.db import Database
from profile_store.export import Extras
from profile_store.labels import labels_of
from profile_store.models import TagSetting
from profile_store.tagging.facts import gather, gather_persons
from profile_store.tagging.rules import Computed, PersonFacts, TagRules, compute
from profile_store.tagging.store import drop_inactive, profile_row, write_profiles

PAGE_SIZE = 5_000


async def load_rules(session: AsyncSession) -> TagRules:
    stored = (await session.execute(select(TagSetting.key, TagSetting.value))).all()  # type: ignore[call-overload]
    return TagRules.from_stored({k: v for k, v in stored})


async def compute_range(
    session: AsyncSession, person_ids: Collection[str], as_of: date, rules: TagRules
) -> dict[str, Computed]:
    """Metrics and tags of these persons (best passed as a contiguous page of ids: the queries
    scan the id range between the smallest and the largest)."""
    if not person_ids:
        return {}
    wanted = set(person_ids)
    facts = await gather(session, min(wanted), max(wanted), as_of, rules, wanted)

    return {pid: compute(facts.get(pid) or PersonFacts(), as_of, rules) for pid in sorted(wanted)}


# Persons per set query of the incremental path (a batch of callbacks touches up to a few hundred).
PERSONS_PER_QUERY = 500


async def compute_persons(
    session: AsyncSession, person_ids: Collection[str], as_of: date, rules: TagRules
) -> dict[str, Computed]:
    """Metrics and tags of these persons, wherever their ids fall: the same statements as
    `compute_range` with the persons chosen as a set, so each query reads only their rows."""
    ids = sorted(set(person_ids))
    computed: dict[str, Computed] = {}
    for start in range(0, len(ids), PERSONS_PER_QUERY):
        chunk = ids[start : start + PERSONS_PER_QUERY]
        facts = await gather_persons(session, chunk, as_of, rules)
        computed.update({pid: compute(facts.get(pid) or PersonFacts(), as_of, rules) for pid in chunk})
    return computed


@dataclass
class RefreshReport:
    persons: int = 0
    changes: int = 0
    dropped: int = 0


# Below this many persons one process does the refresh (starting workers costs more).
PARALLEL_FROM = 50_000


async def refresh_all(
    db: Database,
    as_of: date,
    *,
    page_size: int = PAGE_SIZE,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    parallel_from: int = PARALLEL_FROM,
) -> RefreshReport:
    """Recompute every active person's profile as of `as_of`.

    On PostgreSQL a large refresh is split into contiguous person_id ranges, one per worker
    process (default: one per CPU): the work is mostly Python turning aggregates into tags, and
    one process can only use one core. Each range is refreshed page by page (see
    `_refresh_range`); SQLite has a single writer, so it always runs in this process.
    """
    async with db.transaction() as session:
        rules = await load_rules(session)
        total = await _count_active(session)
    # One per core. Two per core were 9 % faster (1 M persons on 2 cores: 4 workers 160 s, 2
    # workers 175 s: a worker waits on the database part of the time), but each worker is a whole
    # Python with the app loaded (~170 MB): with four, `qianmian import` peaked at 1.1 GB, over
    # its 1 GiB budget; with two, at about 0.6 GB.
    workers = workers or min(os.cpu_count() or 1, 8)
    if db.is_postgres and workers > 1 and total >= parallel_from:
        report = await _refresh_in_processes(db, as_of, page_size, progress, workers, total)
    else:
        report = await _refresh_range(db, rules, as_of, "", None, page_size, progress)
    async with db.transaction() as session:
        report.dropped = await drop_inactive(session)
    return report


async def _refresh_range(
    db: Database,
    rules: TagRules,
    as_of: date,
    after: str,
    until: str | None,
    page_size: int,
    progress: Callable[[int], None] | None,
) -> RefreshReport:
    """Refresh the active persons with after < person_id <= until, page by page.

    On PostgreSQL it is pipelined over two connections: the next page's facts are read while
    this page is computed (in a thread) and written. A profile the incremental path wrote after a
    page's facts were read is left as it is (it is fresher). On SQLite pages go one by one, each
    read and written in one transaction.
    """
    report = RefreshReport()
    pages: asyncio.Queue[_Page | None] = asyncio.Queue(maxsize=2)

    async def read_pages() -> None:
        last = after
        while True:
            async with db.transaction() as session:
                page = await _read_page(session, last, until, page_size, as_of, rules)
            if page is None:
                break
            await pages.put(page)
            last = page.ids[-1]
        await pages.put(None)

    def done(count: int) -> None:
        report.persons += count
        if progress is not None:
            progress(count)

    if db.is_postgres:
        reader = asyncio.create_task(read_pages())
        try:
            while (page := await pages.get()) is not None:
                rows = await asyncio.to_thread(_rows, page, as_of, rules)
                async with db.transaction() as session:
                    report.changes += await write_profiles(session, rows, read_at=page.read_at)
                done(len(page.ids))
            await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return report
    last = after
    while True:
        async with db.transaction() as session:
            page = await _read_page(session, last, until, page_size, as_of, rules)
            if page is None:
                break
            report.changes += await write_profiles(session, _rows(page, as_of, rules))
        done(len(page.ids))
        last = page.ids[-1]
    return report


async def _refresh_in_processes(
    db: Database, as_of: date, page_size: int, progress: Callable[[int], None] | None, workers: int, total: int
) -> RefreshReport:
    async with db.transaction() as session:
        bounds = [
            await _nth_active(session, total * k // workers) for k in range(1, workers)
        ]
    ranges = list(zip(["", *bounds], [*bounds, None], strict=True))
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    loop = asyncio.get_running_loop()
    report = RefreshReport()
    # The workers' progress, page by page: a plain queue handed to each worker as it starts (a
    # Manager's queue would cost one more whole process).
    done_pages = context.Queue()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_progress_to, initargs=(done_pages,)
    ) as pool:
        futures = [
            loop.run_in_executor(pool, _refresh_range_in_process, db.url, as_of, lo, hi, page_size)
            for lo, hi in ranges
        ]
        pending = asyncio.gather(*futures)
        while not pending.done():
            await asyncio.sleep(0.2)
            _drain(done_pages, progress)
        _drain(done_pages, progress)
        for part in await pending:
            report.persons += part.persons
            report.changes += part.changes
    return report


def _drain(done_pages: Any, progress: Callable[[int], None] | None) -> None:
    while True:
        try:
            count = done_pages.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(count)


_worker_progress: Any = None  # in a worker process: where its pages are reported


def _progress_to(done_pages: Any) -> None:
    """A worker process's initializer."""
    global _worker_progress
    _worker_progress = done_pages


def _refresh_range_in_process(url: str, as_of: date, after: str, until: str | None, page_size: int) -> RefreshReport:
    """A worker process: its own engine, one range."""
    done_pages = _worker_progress

    async def run() -> RefreshReport:
        db = Database(url)
        try:
            async with db.transaction() as session:
                rules = await load_rules(session)
            return await _refresh_range(db, rules, as_of, after, until, page_size, done_pages.put)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _count_active(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT COUNT(*) FROM person WHERE status = 'active'"))).scalar_one())


async def _nth_active(session: AsyncSession, n: int) -> str:
    return str(
        (
            await session.execute(
                text("SELECT person_id FROM person WHERE status = 'active' ORDER BY person_id OFFSET :n LIMIT 1"),
                {"n": n},
            )
        ).scalar_one()
    )


@dataclass
class _Page:
    ids: list[str]
    facts: dict[str, PersonFacts]
    read_at: datetime


def _rows(page: _Page, as_of: date, rules: TagRules) -> list[tuple[object, ...]]:
    return [profile_row(pid, as_of, compute(page.facts.get(pid) or PersonFacts(), as_of, rules)) for pid in page.ids]


async def _read_page(
    session: AsyncSession, after: str, until: str | None, size: int, as_of: date, rules: TagRules
) -> _Page | None:
    """The next page of active persons after `after`, with their facts (None: no more)."""
    if session.get_bind().dialect.name == "postgresql":
        # The same statements run page after page: after five runs PostgreSQL would switch to a
        # generic plan that ignores how narrow the id range is (measured 30 % slower pages).
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    read_at = datetime.now(UTC)
    ids = await _next_page(session, after, until, size)
    if not ids:
        return None
    return _Page(ids, await gather(session, ids[0], ids[-1], as_of, rules, set(ids)), read_at)


async def _next_page(session: AsyncSession, after: str, until: str | None, size: int) -> list[str]:
    bound = "" if until is None else " AND person_id <= :until"
    return list(
        (
            await session.execute(
                text(
                    f"SELECT person_id FROM person WHERE status = 'active' AND person_id > :after{bound}"
                    " ORDER BY person_id LIMIT :n"
                ),
                {"after": after, "n": size, **({} if until is None else {"until": until})},
            )
        ).scalars()
    )


async def coupon_holders(session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
    """Persons who got the coupons these events consumed or deleted (coupons are matched by code,
    whoever uses them), so their coupon tags follow."""
    if not event_ids:
        return set()
    rows = await session.execute(
        text(
            "SELECT DISTINCT g.person_id FROM event f JOIN event g ON g.coupon_code = f.coupon_code"
            " WHERE f.event_id IN :ids AND f.type IN ('coupon_consume', 'coupon_delete') AND f.coupon_code <> ''"
            " AND g.type = 'coupon_get' AND g.person_id IS NOT NULL"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(event_ids)},
    )
    return set(rows.scalars())


async def refresh_persons(
    session: AsyncSession, person_ids: Iterable[str], as_of: date, rules: TagRules | None = None
) -> RefreshReport:
    """The incremental path: recompute these persons now, in the caller's transaction. Ids
    that stopped being active persons (merged away, dissolved) lose their profile."""
    ids = sorted({p for p in person_ids if p})
    report = RefreshReport()
    if not ids:
        return report
    rules = rules or await load_rules(session)
    active = set(
        (
            await session.execute(
                text("SELECT person_id FROM person WHERE status = 'active' AND person_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            )
        ).scalars()
    )
    # As a set, not a range: the persons a batch of callbacks touched are scattered over the ids.
    # (One query set per person before: 9 statements each, ~3 ms a person, a third of the
    # processing of a new WeCom contact, measured.)
    computed = await compute_persons(session, active, as_of, rules)
    rows = [profile_row(pid, as_of, computed[pid]) for pid in sorted(active)]
    report.persons = len(rows)
    report.changes = await write_profiles(session, rows, direct=True)
    report.dropped = await drop_inactive(session, [p for p in ids if p not in active])
    return report


async def enrich(
    session: AsyncSession, person_ids: Sequence[str], as_of: date, include_pii: bool
) -> Mapping[str, Extras]:
    """`export profiles`' enricher: metrics and tags computed as of the asked date (the stored
    profile may be of another date), with the persons' manual labels."""
    rules = await load_rules(session)
    computed = await compute_range(session, person_ids, as_of, rules)
    labels = await labels_of(session, person_ids)
    return {pid: Extras(c.metrics, c.tags, labels.get(pid, [])) for pid, c in computed.items()}


async def set_rule(session: AsyncSession, key: str, value: str, by: str) -> TagRules:
    """Change one threshold (validated against every other); takes effect at the next refresh."""
    stored = {k: v for k, v in (await session.execute(select(TagSetting.key, TagSetting.value))).all()}  # type: ignore[call-overload]
    if key not in TagRules.model_fields:
        raise KeyError(key)
    rules = TagRules.from_stored({**stored, key: value})  # raises pydantic's ValidationError
    row = await session.get(TagSetting, key)
    if row is None:
        session.add(TagSetting(key=key, value=value, updated_by=by))
    else:
        row.value, row.updated_by, row.updated_at = value, by, datetime.now(UTC)
    await session.flush()
    return rules


async def reset_rule(session: AsyncSession, key: str) -> bool:
    row = await session.get(TagSetting, key)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
