"""All SQL of `raw_event` and `dead_letter`: the durable inbox of callbacks.

A callback is recorded (status `pending`) before it is answered, processed later in one
transaction (→ `done`), or dead-lettered with a reason (→ `dead`) and replayable by an operator.
Claims use FOR UPDATE SKIP LOCKED on PostgreSQL so several `serve` processes never process the
same callback twice; on SQLite every transaction holds the single write lock (BEGIN IMMEDIATE),
so the status check inside the transaction is enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.db import Database
from profile_store.kept import KeptConnection
from profile_store.models import DeadLetter, RawEvent
from profile_store.times import sqlite_utc

RAW: Table = RawEvent.__table__  # type: ignore[attr-defined]
DEAD: Table = DeadLetter.__table__  # type: ignore[attr-defined]

PENDING, DONE, DEAD_STATUS = "pending", "done", "dead"


@dataclass(frozen=True)
class NewRawEvent:
    """A callback as received, before it has a row."""

    dedupe_key: str
    channel: str
    account: str
    body: str
    received_at: datetime


@dataclass(frozen=True)
class StoredRawEvent:
    id: int
    dedupe_key: str
    channel: str
    account: str
    body: str
    status: str
    attempts: int
    received_at: datetime


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    raw_event_id: int
    reason: str
    at: datetime
    replayed_at: datetime | None
    channel: str
    account: str
    dedupe_key: str
    raw_status: str


def _now() -> datetime:
    return datetime.now(UTC)


class InboxWriter:
    """The edge's own connection for recording callbacks: one statement per group commit.

    Recording is the only SQL the edge runs, once per batch of concurrent requests, thousands of
    times a second. Through a pooled session each batch paid a checkout with its pre-ping round
    trip, BEGIN and COMMIT, and SQLAlchemy's per-row parameter processing (a fifth of the edge's
    CPU, measured). Here the batch is ONE statement on a connection kept open, atomic by itself
    (autocommit): on PostgreSQL a prepared INSERT … SELECT FROM unnest(arrays) through asyncpg;
    on SQLite one multi-row INSERT in this process's turn at the write lock. Same rows, same
    constraint: ON CONFLICT (dedupe_key) DO NOTHING, so a retry is never a second row. A failed statement drops
    the connection (the next batch opens a new one) and raises, so its requests fail and Tencent
    retries them.
    """

    _PG = (
        "INSERT INTO raw_event (dedupe_key, channel, account, body, received_at, status, attempts)"
        f" SELECT k, c, a, b, r, '{PENDING}', 0"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS t(k, c, a, b, r)"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
    )
    _SQLITE_ROW = f"(?, ?, ?, ?, ?, '{PENDING}', 0)"
    _SQLITE = (
        "INSERT INTO raw_event (dedupe_key, channel, account, body, received_at, status, attempts) VALUES {rows}"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
    )

    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept = KeptConnection(db.engine)
        self._prepared: Any = None  # asyncpg prepared statement, of the kept connection

    async def write(self, events: Sequence[NewRawEvent]) -> dict[str, int]:
        """Insert callbacks not seen before; dedupe_key → id of the NEW ones (keys must be
        distinct within one call)."""
        if not events:
            return {}
        try:
            driver = await self._kept.driver()
            if self.db.is_postgres:
                if self._prepared is None:
                    self._prepared = await driver.prepare(self._PG)
                rows = await self._prepared.fetch(
                    [e.dedupe_key for e in events],
                    [e.channel for e in events],
                    [e.account for e in events],
                    [e.body for e in events],
                    [e.received_at for e in events],
                )
            else:
                params: list[Any] = []
                for e in events:
                    params += (e.dedupe_key, e.channel, e.account, e.body, sqlite_utc(e.received_at))
                statement = self._SQLITE.format(rows=", ".join([self._SQLITE_ROW] * len(events)))
                async with self.db.write_turn():
                    async with driver.execute(statement, params) as cursor:
                        rows = await cursor.fetchall()
        except BaseException:
            await self.close(invalidate=True)
            raise
        return {str(key): int(row_id) for row_id, key in rows}

    async def close(self, *, invalidate: bool = False) -> None:
        self._prepared = None
        await self._kept.close(invalidate=invalidate)


class InboxWatch:
    """Looks at the inbox on a connection kept open (profile_store/kept.py): how far it has
    grown, and whether a new callback waits.

    A worker beside an edge asks how far every few milliseconds while callbacks are flooding in
    (it yields to them), and every worker asks whether one waits at each poll (every 20 ms by
    default), idle or not. Through a pooled session each look paid a checkout with its pre-ping,
    BEGIN and ROLLBACK: a fifth of a yielding worker's CPU, and an idle worker's 5 % of a core,
    measured. One statement on a kept connection (autocommit; on SQLite a read, no write lock)
    costs one round trip."""

    _LATEST = "SELECT max(id) FROM raw_event"
    # The predicate of `_fresh`: pending and never attempted.
    _ANY_FRESH = f"SELECT 1 FROM raw_event WHERE status = '{PENDING}' AND attempts = 0 LIMIT 1"

    def __init__(self, db: Database) -> None:
        self.db = db
        self._kept = KeptConnection(db.read_engine or db.engine)

    async def latest_id(self) -> int:
        return int(await self._kept.value(self._LATEST, self._LATEST) or 0)

    async def any_fresh(self) -> bool:
        """Whether `fresh_pending` would find a callback now."""
        return await self._kept.value(self._ANY_FRESH, self._ANY_FRESH) is not None

    async def close(self) -> None:
        await self._kept.close()


async def record_once(db: Database, events: Sequence[NewRawEvent]) -> dict[str, int]:
    """Record callbacks outside the edge (tools, tests): one writer for one batch."""
    writer = InboxWriter(db)
    try:
        return await writer.write(events)
    finally:
        await writer.close()


def _stored(row: Any) -> StoredRawEvent:
    return StoredRawEvent(
        id=row.id,
        dedupe_key=row.dedupe_key,
        channel=row.channel,
        account=row.account,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        received_at=row.received_at,
    )


async def get(session: AsyncSession, raw_event_id: int) -> StoredRawEvent | None:
    row = (await session.execute(select(RAW).where(RAW.c.id == raw_event_id))).first()
    return _stored(row) if row else None


async def claim(session: AsyncSession, raw_event_id: int) -> StoredRawEvent | None:
    """Lock one pending callback for this transaction; None if done, dead or being processed."""
    statement = select(RAW).where(RAW.c.id == raw_event_id, RAW.c.status == PENDING)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    row = (await session.execute(statement)).first()
    return _stored(row) if row else None


async def get_many(session: AsyncSession, raw_event_ids: Sequence[int]) -> list[StoredRawEvent]:
    rows = (await session.execute(select(RAW).where(RAW.c.id.in_(list(raw_event_ids))).order_by(RAW.c.id))).all()
    return [_stored(row) for row in rows]


async def claim_many(session: AsyncSession, raw_event_ids: Sequence[int]) -> set[int]:
    """Lock the pending ones among `raw_event_ids` for this transaction; returns their ids. Those
    done, dead or locked by another process's transaction are left out (SKIP LOCKED)."""
    if not raw_event_ids:
        return set()
    statement = select(RAW.c.id).where(RAW.c.id.in_(list(raw_event_ids)), RAW.c.status == PENDING)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return {int(i) for i in (await session.execute(statement)).scalars()}


async def pending_ids(
    session: AsyncSession, *, after_id: int = 0, older_than: timedelta | None = None, limit: int = 100
) -> list[int]:
    """Pending callbacks in arrival order (the sweeper's work list; each is claimed separately)."""
    statement = select(RAW.c.id).where(RAW.c.status == PENDING, RAW.c.id > after_id)
    if older_than is not None:
        statement = statement.where(RAW.c.received_at <= _now() - older_than)
    statement = statement.order_by(RAW.c.id).limit(limit)
    return [int(i) for i in (await session.execute(statement)).scalars()]


def _fresh(limit: int) -> Any:
    # pending and never attempted (the failed ones are the sweeper's, after a grace period)
    return select(RAW).where(RAW.c.status == PENDING, RAW.c.attempts == 0).order_by(RAW.c.id).limit(limit)


async def fresh_pending(session: AsyncSession, limit: int) -> list[StoredRawEvent]:
    """New callbacks waiting for processing, oldest first."""
    return [_stored(row) for row in (await session.execute(_fresh(limit))).all()]


async def claim_fresh(session: AsyncSession, limit: int) -> list[StoredRawEvent]:
    """PostgreSQL: lock up to `limit` new callbacks (as `fresh_pending` finds them) for this
    transaction, skipping those another transaction holds (FOR UPDATE SKIP LOCKED): several
    workers each take a batch of their own."""
    statement = _fresh(limit).with_for_update(skip_locked=True)
    return [_stored(row) for row in (await session.execute(statement)).all()]


async def mark_done(session: AsyncSession, raw_event_ids: Sequence[int]) -> None:
    if raw_event_ids:
        await session.execute(
            update(RAW).where(RAW.c.id.in_(list(raw_event_ids))).values(status=DONE, processed_at=_now())
        )


async def mark_dead(session: AsyncSession, raw_event_id: int, reason: str) -> None:
    """Dead-letter a callback with its reason (kept for an operator to list and replay)."""
    now = _now()
    await session.execute(update(RAW).where(RAW.c.id == raw_event_id).values(status=DEAD_STATUS, processed_at=now))
    await session.execute(DEAD.insert().values(raw_event_id=raw_event_id, reason=reason, at=now))


async def bump_attempts(session: AsyncSession, raw_event_id: int) -> int:
    """Count one failed processing attempt of a pending callback; returns the new count."""
    result = await session.execute(
        update(RAW)
        .where(RAW.c.id == raw_event_id, RAW.c.status == PENDING)
        .values(attempts=RAW.c.attempts + 1)
        .returning(RAW.c.attempts)
    )
    value = result.scalar_one_or_none()
    return int(value) if value is not None else 0


async def list_dead_letters(session: AsyncSession, *, include_replayed: bool = False) -> list[DeadLetterRow]:
    statement = (
        select(
            DEAD.c.id,
            DEAD.c.raw_event_id,
            DEAD.c.reason,
            DEAD.c.at,
            DEAD.c.replayed_at,
            RAW.c.channel,
            RAW.c.account,
            RAW.c.dedupe_key,
            RAW.c.status,
        )
        .join(RAW, RAW.c.id == DEAD.c.raw_event_id)
        .order_by(DEAD.c.id)
    )
    if not include_replayed:
        statement = statement.where(DEAD.c.replayed_at.is_(None))
    return [DeadLetterRow(*row) for row in (await session.execute(statement)).all()]


async def replay(session: AsyncSession, dead_letter_ids: Sequence[int] | None = None) -> list[int]:
    """Put dead-lettered callbacks back to pending (all when `dead_letter_ids` is None).

    Stamps `replayed_at` on the dead letters and returns the raw_event ids now pending again; a
    dead letter already replayed is not replayed twice.
    """
    chosen = select(DEAD.c.raw_event_id).where(DEAD.c.replayed_at.is_(None))
    if dead_letter_ids is not None:
        chosen = chosen.where(DEAD.c.id.in_(list(dead_letter_ids)))
    raw_ids = sorted({int(i) for i in (await session.execute(chosen)).scalars()})
    if not raw_ids:
        return []
    now = _now()
    stamp = update(DEAD).where(DEAD.c.replayed_at.is_(None), DEAD.c.raw_event_id.in_(raw_ids))
    if dead_letter_ids is not None:
        stamp = stamp.where(DEAD.c.id.in_(list(dead_letter_ids)))
    await session.execute(stamp.values(replayed_at=now))
    await session.execute(
        update(RAW)
        .where(RAW.c.id.in_(raw_ids), RAW.c.status == DEAD_STATUS)
        .values(status=PENDING, attempts=0, processed_at=None)
    )
    return raw_ids


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(select(RAW.c.status, func.count()).group_by(RAW.c.status))).all()
    return {status: int(n) for status, n in rows}
