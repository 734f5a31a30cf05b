"""Reading tag history: what changed, when (the portrait's "2026-10-03 由 忠诚 变为 沉睡")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.tagging.store import LIST_TAGS


@dataclass(frozen=True)
class TagChange:
    changed_on: date
    tag: str
    old: Any
    new: Any


def _value(tag: str, stored: str | None) -> Any:
    if stored is None:
        return None
    return json.loads(stored) if tag in LIST_TAGS else stored


async def tag_history(
    session: AsyncSession, person_id: str, *, tags: tuple[str, ...] = (), limit: int = 200
) -> list[TagChange]:
    """Changes of this person's tags (and of ids merged into it), newest first.

    One statement (the merged ids are found in it), no ORM objects: every portrait card reads
    its lifecycle change through here."""
    only = " AND h.tag IN :tags" if tags else ""
    query = text(
        "WITH RECURSIVE alias(person_id) AS ("
        "  SELECT CAST(:p AS TEXT)"
        "  UNION SELECT p.person_id FROM person p JOIN alias a ON p.merged_into = a.person_id)"
        " SELECT h.changed_on, h.tag, h.old_value, h.new_value FROM tag_history h"
        f" WHERE h.person_id IN (SELECT person_id FROM alias){only}"
        " ORDER BY h.changed_on DESC, h.id DESC LIMIT :n"
    )
    params: dict[str, Any] = {"p": person_id, "n": limit}
    if tags:
        query = query.bindparams(bindparam("tags", expanding=True))
        params["tags"] = list(tags)
    rows = (await session.execute(query, params)).all()
    return [TagChange(_day(on), tag, _value(tag, old), _value(tag, new)) for on, tag, old, new in rows]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def last_change(session: AsyncSession, person_id: str, tag: str) -> TagChange | None:
    found = await tag_history(session, person_id, tags=(tag,), limit=1)
    return found[0] if found else None
