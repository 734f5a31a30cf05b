"""What the chat remembers between messages, in the database (any `serve` process may take the
next message): segments saved under a name, each staff member's last segment and the action
waiting for their confirmation (with its deadline), and labels put on a whole segment at once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, exists, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of, rowcount
from profile_store.labels import LABELS, clean_label
from profile_store.models import ChatState, LabelLog, SavedSegment
from profile_store.times import read_utc as _aware

SEGMENTS = SavedSegment.__table__  # type: ignore[attr-defined]
STATES = ChatState.__table__  # type: ignore[attr-defined]
LABEL_LOG = LabelLog.__table__  # type: ignore[attr-defined]


def _upsert(session: AsyncSession, table: Any) -> Any:
    return (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(table)


# ---------------------------------------------------------------------------------- saved segments


@dataclass(frozen=True)
class Stored:
    name: str
    tree: str  # nlp.segment.to_json
    text: str
    reading: str
    owner: str
    size: int


async def save_segment(
    session: AsyncSession, *, name: str, tree: str, text_: str, reading: str, owner: str, size: int
) -> None:
    """Keep (or replace) the segment called `name`."""
    now = datetime.now(UTC)
    values = {"name": name, "tree": tree, "text": text_, "reading": reading, "owner": owner, "size": size}
    statement = _upsert(session, SEGMENTS).values(**values, created_at=now, updated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={**{k: statement.excluded[k] for k in values}, "updated_at": now}
        )
    )


async def saved_segment(session: AsyncSession, name: str) -> Stored | None:
    row = (await session.execute(select(SEGMENTS).where(SEGMENTS.c.name == name))).first()
    if row is None:
        return None
    return Stored(row.name, row.tree, row.text, row.reading, row.owner, row.size)


async def saved_segments(session: AsyncSession, owner: str | None = None) -> list[Stored]:
    query = select(SEGMENTS).order_by(SEGMENTS.c.updated_at.desc(), SEGMENTS.c.name)
    if owner is not None:
        query = query.where(SEGMENTS.c.owner == owner)
    return [Stored(r.name, r.tree, r.text, r.reading, r.owner, r.size) for r in (await session.execute(query)).all()]


# ---------------------------------------------------------------------------------- conversation state


@dataclass(frozen=True)
class State:
    userid: str
    last_segment: str | None = None
    pending: dict[str, Any] | None = None  # None also when it lapsed
    lapsed: bool = False  # a pending action existed but its time ran out


async def state_of(session: AsyncSession, userid: str, *, now: datetime | None = None) -> State:
    row = (await session.execute(select(STATES).where(STATES.c.userid == userid))).first()
    if row is None:
        return State(userid)
    pending = json.loads(row.pending) if row.pending else None
    expires = _aware(row.pending_expires_at)
    if pending is not None and expires is not None and expires <= (now or datetime.now(UTC)):
        return State(userid, row.last_segment, None, lapsed=True)
    return State(userid, row.last_segment, pending)


async def remember(
    session: AsyncSession,
    userid: str,
    *,
    last_segment: str | None = None,
    pending: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    clear_pending: bool = False,
) -> None:
    """Update a staff member's state: `last_segment` when given; the pending action when given
    (with its deadline), or cleared with `clear_pending`."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"userid": userid, "updated_at": now}
    if last_segment is not None:
        values["last_segment"] = last_segment
    if pending is not None:
        values["pending"] = json.dumps(pending, ensure_ascii=False, sort_keys=True)
        values["pending_expires_at"] = expires_at
    elif clear_pending:
        values["pending"] = None
        values["pending_expires_at"] = None
    statement = _upsert(session, STATES).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["userid"], set_={k: statement.excluded[k] for k in values if k != "userid"}
        )
    )


# ---------------------------------------------------------------------------------- labels on a segment


async def label_segment(session: AsyncSession, people: Select[Any], label: str, by: str, *, add: bool) -> int:
    """Put (`add`) or remove `label` on everyone `people` (a SELECT of person_id) selects, with one
    audit row per person changed, in two set-based statements; returns how many changed."""
    value = clean_label(label)
    chosen = people.subquery("chosen")
    now = literal(datetime.now(UTC), type_=LABEL_LOG.c.at.type)
    held = exists().where(LABELS.c.person_id == chosen.c.person_id, LABELS.c.label == value)
    changing = ~held if add else held
    audit = select(chosen.c.person_id, literal(value), literal("add" if add else "remove"), literal(by), now).where(
        changing
    )
    await session.execute(insert(LABEL_LOG).from_select(["person_id", "label", "action", "by", "at"], audit))
    if add:
        stamp = literal(datetime.now(UTC), type_=LABELS.c.added_at.type)
        result = await session.execute(
            insert(LABELS).from_select(
                ["person_id", "label", "added_by", "added_at"],
                select(chosen.c.person_id, literal(value), literal(by), stamp).where(changing),
            )
        )
    else:
        result = await session.execute(
            delete(LABELS).where(LABELS.c.label == value, LABELS.c.person_id.in_(select(chosen.c.person_id)))
        )
    return rowcount(result)
