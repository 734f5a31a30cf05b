"""The outbox: messages that must go out exactly once (portrait cards, welcomes, pictures).

A row is written in the same transaction as the fact that calls for it, under a unique `key`
derived from that fact (a Tencent retry of the callback, or a replay, finds the row already
there). The sender (`bot.outbox`) claims due rows for a short lease (SKIP LOCKED on PostgreSQL,
so several `serve` processes share the work), sends, and marks them sent, retried later or ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of
from profile_store.db import Database
from profile_store.kept import KeptConnection
from profile_store.times import read_utc as _aware
from profile_store.times import sqlite_utc

PENDING, SENT, FAILED, EXPIRED = "pending", "sent", "failed", "expired"
RETRY = "retry"  # an outcome, not a status: the row stays pending, due again later
LEASE_SECONDS = 60  # a claimed row comes back after this if its sender died mid-send

_AT = DateTime(timezone=True)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    kind: str
    person_id: str
    payload: dict[str, Any]
    attempts: int
    expires_at: datetime | None
    created_at: datetime


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    payload: Mapping[str, Any],
    person_id: str = "",
    expires_at: datetime | None = None,
    due_at: datetime | None = None,
) -> bool:
    """Add a message unless one with this key exists; True when it is new."""
    now = datetime.now(UTC)
    result = await session.execute(
        text(
            "INSERT INTO outbox (key, kind, person_id, payload, status, attempts, next_attempt_at, expires_at,"
            " created_at, last_error) VALUES (:key, :kind, :person, :payload, :pending, 0, :due, :expires, :now, '')"
            " ON CONFLICT (key) DO NOTHING"
        ).bindparams(bindparam("due", type_=_AT), bindparam("expires", type_=_AT), bindparam("now", type_=_AT)),
        {
            "key": key,
            "kind": kind,
            "person": person_id,
            "payload": json.dumps(dict(payload), ensure_ascii=False, sort_keys=True),
            "pending": PENDING,
            "due": due_at or now,
            "expires": expires_at,
            "now": now,
        },
    )
    return bool(getattr(result, "rowcount", 0))


class OutboxWatch:
    """Whether a row is due now, looked at on a connection kept open (profile_store/kept.py): a
    sender whose rows other processes commit cannot be woken, so it looks every 20 ms by
    default, idle or not; through a pooled session that cost an idle sender 5 % of a core,
    measured. A read, so on SQLite it takes no write lock: the claim that follows is the write."""

    _SQL = "SELECT 1 FROM outbox WHERE status = {} AND next_attempt_at <= {} LIMIT 1"

    def __init__(self, db: Database) -> None:
        self.postgres = db.is_postgres
        self._kept = KeptConnection(db.read_engine or db.engine)

    async def any_due(self, *, now: datetime | None = None) -> bool:
        at = now or datetime.now(UTC)
        due = await self._kept.value(
            self._SQL.format("$1", "$2"), self._SQL.format("?", "?"), PENDING, at if self.postgres else sqlite_utc(at)
        )
        return due is not None

    async def close(self) -> None:
        await self._kept.close()


async def claim_due(session: AsyncSession, limit: int, *, now: datetime | None = None) -> list[OutboxItem]:
    """Pending rows whose time has come, oldest first, leased for LEASE_SECONDS."""
    now = now or datetime.now(UTC)
    lock = " FOR UPDATE SKIP LOCKED" if dialect_of(session) == "postgresql" else ""
    rows = (
        await session.execute(
            text(
                "SELECT id, key, kind, person_id, payload, attempts, expires_at, created_at FROM outbox"
                f" WHERE status = :pending AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :n{lock}"
            ).bindparams(bindparam("now", type_=_AT)),
            {"pending": PENDING, "now": now, "n": limit},
        )
    ).all()
    if rows:
        await session.execute(
            text("UPDATE outbox SET next_attempt_at = :until WHERE id = :id").bindparams(bindparam("until", type_=_AT)),
            [{"until": now + timedelta(seconds=LEASE_SECONDS), "id": r[0]} for r in rows],
        )
    return [
        OutboxItem(
            id=int(r[0]),
            key=r[1],
            kind=r[2],
            person_id=r[3],
            payload=json.loads(r[4]),
            attempts=int(r[5]),
            expires_at=_aware(r[6]),
            created_at=_aware(r[7]) or now,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Outcome:
    """What a sending round did with one row: sent | retry (after `retry_in`) | failed | expired."""

    item_id: int
    status: str
    note: str = ""
    person_id: str | None = None  # sent: the person the row turned out to be about
    retry_in: timedelta = timedelta(0)


async def mark_outcomes(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Write a round's outcomes: one statement per kind of outcome, executed for all its rows
    (the rows of one round are marked together, in one short transaction)."""
    now = datetime.now(UTC)
    sent = [
        {"sent": SENT, "now": now, "id": o.item_id, "person": o.person_id, "note": o.note[:500]}
        for o in outcomes
        if o.status == SENT
    ]
    retries = [{"err": o.note[:500], "at": now + o.retry_in, "id": o.item_id} for o in outcomes if o.status == RETRY]
    ended = [
        {"status": o.status, "err": o.note[:500], "id": o.item_id} for o in outcomes if o.status in (FAILED, EXPIRED)
    ]
    if len(sent) + len(retries) + len(ended) != len(outcomes):
        raise ValueError(f"unknown outcome in {sorted({o.status for o in outcomes})}")
    if sent:
        await session.execute(
            text(
                "UPDATE outbox SET status = :sent, sent_at = :now, attempts = attempts + 1, last_error = :note,"
                " person_id = COALESCE(:person, person_id) WHERE id = :id"
            ).bindparams(bindparam("now", type_=_AT)),
            sent,
        )
    if retries:
        await session.execute(
            text(
                "UPDATE outbox SET attempts = attempts + 1, last_error = :err, next_attempt_at = :at WHERE id = :id"
            ).bindparams(bindparam("at", type_=_AT)),
            retries,
        )
    if ended:
        # A message that will never go out: `failed` (Tencent refused it for good) or `expired`.
        await session.execute(
            text("UPDATE outbox SET status = :status, attempts = attempts + 1, last_error = :err WHERE id = :id"),
            ended,
        )


async def counts(session: AsyncSession) -> dict[str, int]:
    """How many messages of each status (operators, demo, benchmarks)."""
    rows = (await session.execute(text("SELECT status, COUNT(*) FROM outbox GROUP BY status"))).all()
    return {r[0]: int(r[1]) for r in rows}


async def items(session: AsyncSession, *, kind: str | None = None) -> list[dict[str, Any]]:
    """Every message (newest last), for operators and tests."""
    where = " WHERE kind = :kind" if kind else ""
    rows = (
        await session.execute(
            text(
                f"SELECT id, key, kind, person_id, payload, status, attempts, last_error FROM outbox{where} ORDER BY id"
            ),
            {"kind": kind} if kind else {},
        )
    ).all()
    return [
        {
            "id": r[0],
            "key": r[1],
            "kind": r[2],
            "person_id": r[3],
            "payload": json.loads(r[4]),
            "status": r[5],
            "attempts": r[6],
            "last_error": r[7],
        }
        for r in rows
    ]
