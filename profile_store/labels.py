"""Manual labels (自定义标签): free words a marketer or guide puts on a person, kept apart from
computed tags, every change audited in `label_log` (who, when).

A label follows its person through merges: labels put on an id that was later merged into
another are read as the survivor's (the id keeps resolving to it, data.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from profile_store.bulk import dialect_of, rowcount
from profile_store.models import LabelLog, PersonLabel

LABELS = PersonLabel.__table__  # type: ignore[attr-defined]

MAX_LABEL_LENGTH = 20


class LabelError(ValueError):
    """A label that cannot be put (empty, too long, or with separators)."""


def clean_label(label: str) -> str:
    value = label.strip()
    if not value:
        raise LabelError("empty")
    if len(value) > MAX_LABEL_LENGTH:
        raise LabelError("too long")
    if any(ch in value for ch in ",，|;；\n\t"):
        raise LabelError("separator")
    return value


async def add_label(session: AsyncSession, person_id: str, label: str, by: str) -> bool:
    """Put a label on a person; False when it was already there (nothing is logged then)."""
    value = clean_label(label)
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(LABELS)
    added = rowcount(
        await session.execute(
            insert.values(
                person_id=person_id, label=value, added_by=by, added_at=datetime.now(UTC)
            ).on_conflict_do_nothing()
        )
    )
    if added:
        session.add(LabelLog(person_id=person_id, label=value, action="add", by=by))
        await session.flush()
    return bool(added)


async def remove_label(session: AsyncSession, person_id: str, label: str, by: str) -> bool:
    """Take a label off a person (and off the ids merged into it); False when it was not there."""
    value = label.strip()
    ids = await aliases_of(session, [person_id])
    removed = rowcount(
        await session.execute(
            text("DELETE FROM person_label WHERE label = :l AND person_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"l": value, "ids": sorted(ids)},
        )
    )
    if removed:
        session.add(LabelLog(person_id=person_id, label=value, action="remove", by=by))
        await session.flush()
    return bool(removed)


async def labels_of(session: AsyncSession, person_ids: Sequence[str]) -> dict[str, list[str]]:
    """Labels of each person (including those put on ids merged into it), sorted."""
    if not person_ids:
        return {}
    rows = (
        await session.execute(
            text(
                "WITH RECURSIVE alias(person_id, owner) AS ("
                "  SELECT person_id, person_id FROM person WHERE person_id IN :ids"
                "  UNION SELECT p.person_id, a.owner FROM person p JOIN alias a ON p.merged_into = a.person_id)"
                " SELECT DISTINCT a.owner, l.label FROM alias a JOIN person_label l ON l.person_id = a.person_id"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": list(person_ids)},
        )
    ).all()
    found: dict[str, list[str]] = {}
    for owner, label in rows:
        found.setdefault(owner, []).append(label)
    return {k: sorted(v) for k, v in found.items()}


async def label_log(session: AsyncSession, person_id: str) -> list[LabelLog]:
    """Every put and removal of labels on this person (and the ids merged into it), oldest first."""
    ids = await aliases_of(session, [person_id])
    query = (
        select(LabelLog).where(col(LabelLog.person_id).in_(sorted(ids))).order_by(col(LabelLog.at), col(LabelLog.id))
    )
    return list((await session.execute(query)).scalars())


async def aliases_of(session: AsyncSession, person_ids: Sequence[str]) -> set[str]:
    """These ids and every id merged into them (directly or through other merges)."""
    rows = await session.execute(
        text(
            "WITH RECURSIVE alias(person_id) AS ("
            "  SELECT person_id FROM person WHERE person_id IN :ids"
            "  UNION SELECT p.person_id FROM person p JOIN alias a ON p.merged_into = a.person_id)"
            " SELECT person_id FROM alias"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": list(person_ids)},
    )
    return set(rows.scalars()) | set(person_ids)
