"""`qianmian import DIR`: the CSV files of data.md §2 into the profile store.

Every chunk of every file is one transaction: its rows are staged in a temporary table (COPY on
PostgreSQL, one executemany on SQLite), observed by the identity graph, which resolves their
links, and then merged with set-based `INSERT … SELECT … ON CONFLICT`, each row written once with
its person (`resolve="file"` resolves after each file instead). A kill at any moment therefore
leaves whole chunks only, each with its observations (links at worst pending, which the next
import or `serve` start resolves), and running the import again completes it (every key is
idempotent; data.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import multiprocessing
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any, Literal, Protocol, TextIO, cast

import pandas as pd
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of, fetch_rows, rowcount, stage, temp_table
from profile_store.db import Database
from profile_store.identity import ANALYZE_AFTER_ROWS, IdentityGraph, LinkPlan, Sighting, plan_links
from profile_store.import_rules import (
    FILE_COLUMNS,
    IMPORT_ORDER,
    Checked,
    RawChunk,
    check,
    raw_line,
    read_chunks,
)
from profile_store.normalize import identifiers_of
from profile_store.pii import PiiVault

log = logging.getLogger(__name__)

REJECTS_HEADER = ("file", "line", "level", "reason", "row")

# When the identity graph resolves what a chunk observed. "chunk" (the default): in the chunk's
# own transaction, before its rows are written, so they are written once with their persons and
# every commit leaves rows fully attributed. "file": once after each file (links stay pending in
# between, which any later import or `serve` start resolves); new rows are written without a
# person and updated at the file's end, every index of the table twice. Measured at 1 M rows and
# 50 k-row chunks: PostgreSQL 62 s per chunk, 76 s per file; SQLite 48 s and 46 s.
ResolveMode = Literal["chunk", "file"]
# Rows per chunk (one transaction, one resolve). Per-chunk resolves cost less the fewer they
# are, and a chunk costs memory. Measured at 1 M rows (time, peak of the import's processes):
# PostgreSQL 71 s at 20 k rows, 61 s / 770 MiB at 50 k, 58 s / 793 MiB at 75 k, 57 s / 939 MiB
# at 100 k; SQLite 49 s / 829 MiB at 50 k, 49.5 s / 926 MiB at 75 k (it gains nothing).
CHUNK_ROWS = {"postgresql": 75_000, "sqlite": 50_000}


# ---------------------------------------------------------------------------------- reports


@dataclass
class FileReport:
    file: str
    read: int = 0  # data rows in the file
    imported: int = 0  # new rows
    updated: int = 0  # known key, changed content
    unchanged: int = 0  # known key (or, for events, a known fact), nothing new
    rejected: int = 0
    warnings: int = 0
    missing_columns: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    directory: str
    rejects_path: str
    files: list[FileReport] = field(default_factory=list)
    persons: int = 0
    run_id: int | None = None

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "rejects_path": self.rejects_path,
            "files": [asdict(f) for f in self.files],
            "persons": self.persons,
        }


class Progress(Protocol):
    """Where the importer reports how far it is (the CLI draws a bar on stderr)."""

    def start(self, file: str, total_bytes: int) -> None: ...

    def update(self, file: str, bytes_read: int) -> None: ...


class _NoProgress:
    def start(self, file: str, total_bytes: int) -> None:
        pass

    def update(self, file: str, bytes_read: int) -> None:
        pass


# ---------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Target:
    """How one file lands in its table."""

    table: str
    key: tuple[str, ...]
    columns: dict[str, str]  # column → type: text | bigint | real | timestamp | date
    source: str | None = None  # identity-graph source of its rows (member | order | event)
    identity: tuple[str, ...] = ()  # columns whose change means the row must be observed again
    extra: tuple[str, ...] = ()  # staged and written, but not part of "did the row change"


_TARGETS: dict[str, _Target] = {
    "stores": _Target("store", ("store_id",), {"store_id": "text", "name": "text", "city": "text", "region": "text"}),
    "products": _Target(
        "product", ("sku",),
        {"sku": "text", "name": "text", "category": "text", "brand": "text", "list_price_fen": "bigint"},
    ),
    "guides": _Target(
        "guide", ("guide_id",), {"guide_id": "text", "name": "text", "store_id": "text", "role": "text"}
    ),
    "coupons": _Target(
        "coupon", ("card_id",),
        {"card_id": "text", "name": "text", "kind": "text", "value": "real", "threshold_fen": "bigint",
         "valid_days": "bigint"},
    ),
    "members": _Target(
        "member", ("member_id",),
        {"member_id": "text", "phone_hash": "text", "unionid": "text", "name": "text", "gender": "text",
         "birthday": "date", "city": "text", "level": "text", "register_time": "timestamp",
         "register_channel": "text", "register_store_id": "text", "row_seq": "bigint"},
        source="member", identity=("phone_hash", "unionid"), extra=("row_seq",),
    ),
    "orders": _Target(
        "orders", ("order_id",),
        {"order_id": "text", "channel": "text", "store_id": "text", "paid_at": "timestamp",
         "amount_fen": "bigint", "list_amount_fen": "bigint", "coupon_code": "text", "status": "text",
         "member_id": "text", "phone_hash": "text", "unionid": "text", "miniapp_openid": "text"},
        source="order", identity=("member_id", "phone_hash", "unionid", "miniapp_openid"),
    ),
    "order_items": _Target(
        "order_item", ("order_id", "line_no"),
        {"order_id": "text", "line_no": "bigint", "sku": "text", "qty": "bigint", "unit_price_fen": "bigint"},
    ),
    "events": _Target(
        "event", ("event_id",),
        {"event_id": "text", "fact_key": "text", "type": "text", "occurred_at": "timestamp", "channel": "text",
         "appid": "text", "openid": "text", "unionid": "text", "miniapp_openid": "text",
         "external_userid": "text", "member_id": "text", "phone_hash": "text", "guide_id": "text",
         "store_id": "text", "qr_state": "text", "sku": "text", "category": "text", "card_id": "text",
         "coupon_code": "text", "campaign_id": "text"},
        source="event",
    ),
}

_PG_CASTS = {"bigint": "BIGINT", "real": "DOUBLE PRECISION", "timestamp": "TIMESTAMP", "date": "DATE"}
# SQLite keeps times and dates as text in SQLAlchemy's format, which the rules already produce.
_SQLITE_CASTS = {"bigint": "INTEGER", "real": "REAL"}


def _cast(dialect: str, expr: str, kind: str) -> str:
    casts = _PG_CASTS if dialect == "postgresql" else _SQLITE_CASTS
    return f"CAST({expr} AS {casts[kind]})" if kind in casts else expr


def _differs(dialect: str, left: str, right: str) -> str:
    return f"{left} IS DISTINCT FROM {right}" if dialect == "postgresql" else f"{left} IS NOT {right}"


def _compared(target: _Target) -> list[str]:
    """The columns whose change makes a known row "updated"."""
    return [c for c in target.columns if c not in target.key and c not in target.extra]


# The person a staged row's link has now (after the chunk's resolve, its person).
_LINK_PERSON = "(SELECT l.person_id FROM link l WHERE l.link_key = s.link_key)"


def _stage_name(target: _Target) -> str:
    return f"_qm_stg_{target.table}"


@dataclass
class _Ready:
    """One chunk, read, checked and prepared: exactly what loading it needs (picklable, so a
    worker process can prepare it while this process writes the previous one)."""

    read: int
    rejected: int
    warnings: int
    missing_columns: list[str]
    bytes_read: int
    reject_lines: list[tuple[int, str, str, str]]  # (line, level, reason, raw row), in line order
    columns: list[str]
    records: list[tuple[Any, ...]]
    # The rows' links, worked out here: rows are written with their link_key (one write per
    # row, not an insert and then an update), and observing them needs no hashing.
    links: LinkPlan


class _ChunkPreparer:
    """Reads and prepares one file chunk by chunk: everything that needs no database. Holds the
    little state a file needs across chunks (item line numbers, a phone-hash cache)."""

    def __init__(self, name: str, tz: str, vault: PiiVault, member_seq_base: int, chunk_rows: int) -> None:
        self.name = name
        self.tz = tz
        self.vault = vault
        self.member_seq_base = member_seq_base
        self.chunk_rows = chunk_rows
        self._phone_hashes: dict[str, str] = {}
        # n-th row of each order in order_items.csv (the item's line_no), across chunks.
        self._item_counts: dict[str, int] = {}

    def chunks(self, path: Path) -> Iterator[_Ready]:
        for chunk in read_chunks(path, self.name, self.chunk_rows):
            yield self.prepare(chunk)

    def prepare(self, chunk: RawChunk) -> _Ready:
        name = self.name
        checked = check(name, chunk.frame, self.tz)
        # An item's line_no counts every row of its order, rejected ones too, so fixing a bad
        # row later gives it its own place instead of renumbering the rows after it.
        line_no = self._line_numbers(chunk.frame["order_id"]) if name == "order_items" else None
        rows = self._prepare(name, checked.rows, line_no)
        target = _TARGETS[name]
        sightings = _sightings(name, rows) if target.source else {}
        links = plan_links(self.vault, sightings.values())
        columns = list(target.columns) + (["keep"] if name == "events" else [])
        if target.source:
            rows["link_key"] = rows[target.key[0]].map(links.key_of())
            columns.append("link_key")
        staged = rows[columns].astype(object)
        staged = staged.where(staged.notna(), None)  # NULL, never a float NaN
        records = list(staged.itertuples(index=False, name=None)) if len(rows) else []
        return _Ready(
            read=len(chunk.frame) + len(chunk.unreadable),
            rejected=len(checked.rejected) + len(chunk.unreadable),
            warnings=len(checked.warnings),
            missing_columns=list(chunk.missing_columns),
            bytes_read=chunk.bytes_read,
            reject_lines=_reject_lines(chunk.frame, checked, chunk.unreadable),
            columns=columns,
            records=records,
            links=links,
        )

    def _prepare(self, name: str, rows: pd.DataFrame, line_no: pd.Series | None) -> pd.DataFrame:
        """Columns the rules cannot know: phone hashes, member order, item line numbers."""
        rows = rows.copy()
        if "phone" in rows.columns:
            rows["phone_hash"] = rows["phone"].map(self._hash_phone)
        if name == "members":
            rows["row_seq"] = (rows.index.to_series() + self.member_seq_base).astype(str)
            # A member twice in one file: the later row is the record (tags.md "the later row").
            rows = rows[~rows["member_id"].duplicated(keep="last")]
        elif name == "order_items":
            assert line_no is not None
            rows["line_no"] = line_no.loc[rows.index].astype(str)
        elif name == "events":
            # Insert-only facts: the first row of an event_id or of a fact wins; the rest are
            # duplicates that still get observed (their identifiers are still links).
            first = ~rows["event_id"].duplicated(keep="first") & ~rows["fact_key"].duplicated(keep="first")
            rows["keep"] = first.map({True: "1", False: "0"})
            rows = rows[~rows["event_id"].duplicated(keep="first")]
        elif name in ("stores", "products", "guides", "coupons", "orders"):
            rows = rows[~rows[_TARGETS[name].key[0]].duplicated(keep="last")]
        return rows

    def _hash_phone(self, phone: str | None) -> str | None:
        if phone is None:
            return None
        hashed = self._phone_hashes.get(phone)
        if hashed is None:
            if len(self._phone_hashes) > 1_000_000:  # bounded memory on huge files
                self._phone_hashes.clear()
            hashed = self._phone_hashes[phone] = self.vault.lookup_hash(phone)
        return hashed

    def _line_numbers(self, order_ids: pd.Series) -> pd.Series:
        """n-th row of its order in the file, for every row of this chunk (in file order)."""
        order_ids = order_ids.str.strip()
        offset = order_ids.map(self._item_counts).fillna(0).astype("int64")
        numbers = offset + order_ids.groupby(order_ids).cumcount() + 1
        for order_id, last in numbers.groupby(order_ids).max().items():
            self._item_counts[str(order_id)] = int(last)
        return numbers


def _reject_lines(
    frame: pd.DataFrame, checked: Checked, unreadable: Sequence[tuple[int, str, list[str]]]
) -> list[tuple[int, str, str, str]]:
    entries: list[tuple[int, str, str, str]] = [
        (line, "rejected", reason, raw_line(fields)) for line, reason, fields in unreadable
    ]
    for level, reasons in (("rejected", checked.rejected), ("warning", checked.warnings)):
        for line, reason in reasons.items():
            entries.append((int(line), level, reason, raw_line(frame.loc[line].tolist())))
    return sorted(entries)


def _sightings(name: str, rows: pd.DataFrame) -> dict[str, Sighting]:
    """Each row's observation by its key (the database then says which rows need one)."""
    if name == "members":
        return {
            k: Sighting("member", k, identifiers_of(member_id=k, phone=p, unionid=u))
            for k, p, u in zip(rows["member_id"], rows["phone"], rows["unionid"], strict=True)
        }
    if name == "orders":
        return {
            k: Sighting("order", k, identifiers_of(member_id=m, phone=p, unionid=u, miniapp_openid=mo))
            for k, m, p, u, mo in zip(
                rows["order_id"], rows["member_id"], rows["phone"], rows["unionid"], rows["miniapp_openid"],
                strict=True,
            )
        }
    return {
        k: Sighting(
            "event", k,
            identifiers_of(
                member_id=m, phone=p, unionid=u, appid=a, openid=o, miniapp_openid=mo, external_userid=x
            ),
        )
        for k, m, p, u, a, o, mo, x in zip(
            rows["event_id"], rows["member_id"], rows["phone"], rows["unionid"], rows["appid"],
            rows["openid"], rows["miniapp_openid"], rows["external_userid"], strict=True,
        )
    }


# Files this large are prepared in a worker process: reading and checking CSV is Python work
# that would otherwise take turns on one core (the GIL) with this process's database work. Small
# files stay in a thread, where starting a process would cost more than it saves.
WORKER_PROCESS_BYTES = 8 * 1024 * 1024
QUEUED_CHUNKS = 2


@asynccontextmanager
async def _worker_files(
    jobs: Sequence[tuple[_ChunkPreparer, Path]],
) -> AsyncIterator[Callable[[], AsyncIterator[_Ready]]]:
    """One worker process for the run's big files, started before the first file is imported:
    it prepares them in order, each file's chunks followed by None, through one bounded queue.
    So the next file's first chunks are ready when this file's last one is written, and only
    one worker's chunks are ever in memory (measured at 1 M rows: a worker per file, started
    as the previous file ended, kept the events waiting 5 s for their first chunk; started
    earlier beside the orders' worker, the import peaked above 1 GiB). Yields a function that
    gives the next file's chunks."""
    if not jobs:
        yield _no_more_files
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    queue = context.Queue(maxsize=QUEUED_CHUNKS)  # a chunk waiting here is 25-40 MB
    worker = context.Process(target=_prepare_in_worker, args=(list(jobs), queue), name="qianmian-import", daemon=True)
    worker.start()
    try:
        yield lambda: _queued_chunks(queue, worker)
    finally:
        if worker.is_alive():
            worker.terminate()
        await asyncio.to_thread(worker.join)
        queue.close()


def _no_more_files() -> AsyncIterator[_Ready]:
    raise RuntimeError("no file is prepared in the worker process")


def _prepare_in_worker(jobs: list[tuple[_ChunkPreparer, Path]], out: Any) -> None:
    """The worker process: prepares each file's chunks and hands them over one by one (the
    queue is bounded, so at most a few chunks are in memory), each file ending with None. An
    exception is handed over instead, and ends the work."""
    try:
        for preparer, path in jobs:
            for ready in preparer.chunks(path):
                out.put(ready)
            out.put(None)
    except BaseException as exc:
        out.put(exc)


async def _thread_chunks(preparer: _ChunkPreparer, path: Path) -> AsyncIterator[_Ready]:
    chunks = preparer.chunks(path)

    def produce() -> _Ready | None:
        return next(chunks, None)

    upcoming = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while (ready := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(produce))
            yield ready
    finally:
        if not upcoming.done():  # a failure while loading: let the thread finish before leaving
            with contextlib.suppress(Exception):
                await upcoming


async def _queued_chunks(queue: Any, worker: Any) -> AsyncIterator[_Ready]:
    while (item := await asyncio.to_thread(_next_from_worker, queue, worker)) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _next_from_worker(queue: Any, worker: Any) -> _Ready | BaseException | None:
    while True:
        try:
            return cast(_Ready | BaseException | None, queue.get(timeout=1.0))
        except Empty:
            if not worker.is_alive():
                # It may have handed over its last item between the wait and the look.
                with contextlib.suppress(Empty):
                    return cast(_Ready | BaseException | None, queue.get_nowait())
                raise RuntimeError(f"the import worker stopped unexpectedly (exit code {worker.exitcode})") from None


# ---------------------------------------------------------------------------------- the import


class Importer:
    """Imports one directory; one instance per run."""

    def __init__(
        self,
        db: Database,
        vault: PiiVault,
        graph: IdentityGraph,
        *,
        tz: str = "Asia/Shanghai",
        chunk_rows: int | None = None,
        resolve: ResolveMode = "chunk",
        progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.graph = graph
        self.tz = tz
        self.chunk_rows = chunk_rows or CHUNK_ROWS["postgresql" if db.is_postgres else "sqlite"]
        self.resolve = resolve
        self.progress = progress or _NoProgress()
        self._member_seq_base = 0

    async def run(self, directory: Path, rejects_path: Path | None = None) -> ImportReport:
        directory = Path(directory)
        rejects = Path(rejects_path) if rejects_path else directory / "rejects.csv"
        present = _files_in(directory)
        if not present:
            expected = ", ".join(f"{n}.csv" for n in IMPORT_ORDER)
            raise FileNotFoundError(f"{directory} holds none of the import files ({expected})")
        report = ImportReport(directory=str(directory), rejects_path=str(rejects))
        report.run_id = await self._start_run(str(directory.absolute()))
        async with self.db.transaction() as session:
            row = await session.execute(text("SELECT COALESCE(MAX(row_seq), 0) FROM member"))
            self._member_seq_base = int(row.scalar_one())
        rejects.parent.mkdir(parents=True, exist_ok=True)
        with rejects.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(REJECTS_HEADER)
            preparers = [
                (name, path, size, _ChunkPreparer(name, self.tz, self.vault, self._member_seq_base, self.chunk_rows))
                for name, path, size in present
            ]
            big = [(preparer, path) for _name, path, size, preparer in preparers if size >= WORKER_PROCESS_BYTES]
            async with _worker_files(big) as next_from_worker:
                for name, path, size, preparer in preparers:
                    if size >= WORKER_PROCESS_BYTES:
                        chunks = next_from_worker()
                    else:
                        chunks = _thread_chunks(preparer, path)
                    report.files.append(await self._import_file(path, name, size, chunks, writer, handle))
        # Observations a resolve has not reached yet (deferred mode, or an earlier killed run).
        async with self.db.transaction() as session:
            await self.graph.resolve(session)
            report.persons = int(
                (await session.execute(text("SELECT COUNT(*) FROM person WHERE status = 'active'"))).scalar_one()
            )
        await self._finish_run(report)
        return report

    # ------------------------------------------------------------------ runs

    async def _start_run(self, directory: str) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(
                text("INSERT INTO import_run (started_at, source_dir, summary) VALUES (:at, :dir, '') RETURNING id"),
                {"at": datetime.now(UTC), "dir": directory},
            )
            return int(result.scalar_one())

    async def _finish_run(self, report: ImportReport) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                text("UPDATE import_run SET finished_at = :at, summary = :summary WHERE id = :id"),
                {"at": datetime.now(UTC), "summary": json.dumps(report.as_dict(), ensure_ascii=False),
                 "id": report.run_id},
            )

    # ------------------------------------------------------------------ one file

    async def _import_file(
        self, path: Path, name: str, size: int, chunks: AsyncIterator[_Ready], writer: Any, handle: TextIO
    ) -> FileReport:
        """Import one file's prepared chunks."""
        file_report = FileReport(file=path.name)
        self.progress.start(path.name, size)
        async for ready in chunks:
            file_report.missing_columns = ready.missing_columns
            file_report.read += ready.read
            file_report.rejected += ready.rejected
            file_report.warnings += ready.warnings
            for line, level, reason, raw in ready.reject_lines:
                writer.writerow((path.name, line, level, reason, raw))
            handle.flush()
            if ready.records:
                async with self.db.transaction() as session:
                    new, updated, unchanged = await self._load(session, name, ready)
                file_report.imported += new
                file_report.updated += updated
                file_report.unchanged += unchanged
            self.progress.update(path.name, ready.bytes_read)
        if self.resolve == "file" and _TARGETS[name].source:
            async with self.db.transaction() as session:
                await self.graph.resolve(session)
        if self.db.is_postgres and file_report.imported + file_report.updated >= ANALYZE_AFTER_ROWS:
            # Fresh statistics for what follows (the next file's merges, resolves, later queries):
            # autovacuum may not have looked at a table that grew this much within minutes.
            async with self.db.transaction() as session:
                await session.execute(text(f"ANALYZE {_TARGETS[name].table}"))
        return file_report

    # ------------------------------------------------------------------ one chunk

    async def _load(self, session: AsyncSession, name: str, ready: _Ready) -> tuple[int, int, int]:
        """Merge one chunk of accepted rows; returns (new, updated, unchanged).

        Person-attributed rows are observed before they are written: their links are recorded
        (and, resolving per chunk, resolved) first, so each row is written once, with the person
        of its link, instead of inserted and then updated (every index of the table twice)."""
        target = _TARGETS[name]
        if target.source:
            # Person-attributed rows: queue behind other identity writers before writing them.
            await self.graph.lock(session)
        await temp_table(session, _stage_name(target), ", ".join(f"{c} TEXT" for c in ready.columns))
        # The stage is joined on its key and its link only: statistics for those.
        joined = [*target.key, *(["link_key"] if target.source else [])]
        await stage(session, _stage_name(target), ready.columns, ready.records, statistics=joined)
        if name == "events":
            to_observe = await self._events_to_observe(session, target)
        else:
            counts, to_observe = await self._classify(session, target)
        if target.source:
            plan = ready.links.only(to_observe)
            if plan.rows:
                # The rows are written below with their link_key: only the links to record.
                await self.graph.record_links(session, plan, rows_keyed=True)
            if self.resolve == "chunk":
                await self.graph.resolve(session)
        if name == "events":
            return await self._insert_events(session, target, len(ready.records))
        await self._upsert(session, target)
        if target.table == "orders":
            await self._items_follow_orders(session)
        return counts

    async def _classify(self, session: AsyncSession, target: _Target) -> tuple[tuple[int, int, int], list[str]]:
        """Count the staged rows new / updated / unchanged; say which rows to observe (new ones,
        ones whose identifiers changed, ones never observed)."""
        dialect = dialect_of(session)
        table, stg = target.table, _stage_name(target)
        key_join = " AND ".join(f"t.{k} = {_cast(dialect, f's.{k}', target.columns[k])}" for k in target.key)
        compared = _compared(target)
        changed = " OR ".join(
            _differs(dialect, f"t.{c}", _cast(dialect, f"s.{c}", target.columns[c])) for c in compared
        )
        identity_changed = " OR ".join(
            _differs(dialect, f"t.{c}", _cast(dialect, f"s.{c}", target.columns[c])) for c in target.identity
        ) or "1 = 0"
        # A row that was never observed has no link yet (a kill between the two cannot happen:
        # they share the transaction, but a row without identifiers never gets one).
        observation = "CASE WHEN t.link_key IS NULL THEN 1 ELSE 0 END" if target.source else "0"
        classified = await fetch_rows(
            session,
            f"SELECT s.{target.key[0]},"
            f" CASE WHEN t.{target.key[0]} IS NULL THEN 0 WHEN ({changed}) THEN 1 ELSE 2 END,"
            f" CASE WHEN t.{target.key[0]} IS NOT NULL AND ({identity_changed}) THEN 1 ELSE 0 END,"
            f" {observation}"
            f" FROM {stg} s LEFT JOIN {table} t ON {key_join}",
        )
        counts = [0, 0, 0]
        to_observe: list[str] = []
        for key, state, identity_moved, unobserved in classified:
            counts[state] += 1
            if target.source and (state == 0 or identity_moved or unobserved):
                to_observe.append(key)
        return (counts[0], counts[1], counts[2]), to_observe

    async def _upsert(self, session: AsyncSession, target: _Target) -> None:
        """Write the staged rows: new ones inserted, changed ones updated, the rest untouched."""
        dialect = dialect_of(session)
        table, stg = target.table, _stage_name(target)
        compared = _compared(target)
        columns = list(target.columns)
        values = [_cast(dialect, f"s.{c}", target.columns[c]) for c in columns]
        updated_columns = [c for c in target.columns if c not in target.key]
        guarded = list(compared)
        if target.source:
            # The row's link, and the person its link has now: written with the row, rewritten
            # when they differ (resolve rewrites the rows of links whose person changes later).
            columns += ["link_key", "person_id"]
            values += ["s.link_key", _LINK_PERSON]
            updated_columns += ["link_key", "person_id"]
            guarded += ["link_key", "person_id"]
        if target.table == "order_item":
            # Items of an order already attributed take its person now; resolve only revisits
            # items of orders whose person changes.
            columns.append("person_id")
            values.append("(SELECT o.person_id FROM orders o WHERE o.order_id = s.order_id)")
        updates = ", ".join(f"{c} = excluded.{c}" for c in updated_columns)
        guard = " OR ".join(_differs(dialect, f"{table}.{c}", f"excluded.{c}") for c in guarded)
        await session.execute(
            text(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {stg} s WHERE true"
                f" ON CONFLICT ({', '.join(target.key)}) DO UPDATE SET {updates} WHERE {guard}"
            )
        )

    async def _items_follow_orders(self, session: AsyncSession) -> None:
        """Items of the staged orders take their order's person. Resolve moves the items of
        orders whose link's person changes; an order written here after the resolve (new, or
        moved to another link) brings its items along itself."""
        stg = _stage_name(_TARGETS["orders"])
        owner = "(SELECT o.person_id FROM orders o WHERE o.order_id = order_item.order_id)"
        await session.execute(
            text(
                f"UPDATE order_item SET person_id = {owner}"
                f" WHERE order_id IN (SELECT order_id FROM {stg})"
                f" AND {_differs(dialect_of(session), 'person_id', owner)}"
            )
        )

    async def _events_to_observe(self, session: AsyncSession, target: _Target) -> list[str]:
        """The staged events whose event_id has no observed row yet: the new ones, the
        duplicates of a fact (no row of their own; their identifiers are still links, data.md
        §2) and rows an earlier import wrote without a link."""
        stg = _stage_name(target)
        rows = await fetch_rows(
            session,
            f"SELECT s.event_id FROM {stg} s LEFT JOIN event e ON e.event_id = s.event_id WHERE e.link_key IS NULL",
        )
        return [str(row[0]) for row in rows]

    async def _insert_events(self, session: AsyncSession, target: _Target, staged: int) -> tuple[int, int, int]:
        """Insert new facts (a known event_id or fact_key is the same fact: kept as it is), each
        with its link_key and its link's person; known rows without a link take theirs (and its
        person: resolving per chunk, their link was resolved above)."""
        dialect = dialect_of(session)
        stg = _stage_name(target)
        columns = list(target.columns)
        values = [_cast(dialect, f"s.{c}", target.columns[c]) for c in columns]
        new = rowcount(
            await session.execute(
                text(
                    f"INSERT INTO event ({', '.join(columns)}, link_key, person_id, origin)"
                    f" SELECT {', '.join(values)}, s.link_key, {_LINK_PERSON}, 'import'"
                    f" FROM {stg} s WHERE s.keep = '1' ON CONFLICT DO NOTHING"
                )
            )
        )
        # Known rows without a link (written before links existed, or by hand) take it now.
        await session.execute(
            text(
                f"UPDATE event SET link_key = (SELECT s.link_key FROM {stg} s WHERE s.event_id = event.event_id),"
                f" person_id = (SELECT l.person_id FROM {stg} s JOIN link l ON l.link_key = s.link_key"
                "  WHERE s.event_id = event.event_id)"
                f" WHERE link_key IS NULL AND event_id IN (SELECT event_id FROM {stg} WHERE link_key IS NOT NULL)"
            )
        )
        return (new, 0, staged - new)


def _files_in(directory: Path) -> list[tuple[str, Path, int]]:
    """The import files present, in import order: (name, path, size in bytes)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    found = []
    for name in IMPORT_ORDER:
        path = directory / f"{name}.csv"
        if path.is_file():
            found.append((name, path, path.stat().st_size))
    return found


async def import_dir(
    db: Database,
    directory: Path,
    vault: PiiVault,
    *,
    graph: IdentityGraph | None = None,
    rejects_path: Path | None = None,
    tz: str = "Asia/Shanghai",
    chunk_rows: int | None = None,
    resolve: ResolveMode = "chunk",
    progress: Progress | None = None,
) -> ImportReport:
    """Import every file of data.md §2 found in `directory` (see `Importer`)."""
    importer = Importer(
        db, vault, graph or IdentityGraph(vault), tz=tz, chunk_rows=chunk_rows,
        resolve=resolve, progress=progress,
    )
    return await importer.run(directory, rejects_path)


__all__ = ["FILE_COLUMNS", "FileReport", "ImportReport", "Importer", "Progress", "import_dir"]
