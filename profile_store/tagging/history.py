"""Reading tag history: what changed, when (the portrait's "2026-10-03 由 忠诚 变为 沉睡")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from profile_store.labels import aliases_of
from profile_store.models import TagHistory
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
    """Changes of this person's tags (and of ids merged into it), newest first."""
    ids = sorted(await aliases_of(session, [person_id]))
    query = select(TagHistory).where(col(TagHistory.person_id).in_(ids))
    if tags:
        query = query.where(col(TagHistory.tag).in_(tags))
    query = query.order_by(col(TagHistory.changed_on).desc(), col(TagHistory.id).desc()).limit(limit)
    rows = (await session.execute(query)).scalars()
    return [TagChange(r.changed_on, r.tag, _value(r.tag, r.old_value), _value(r.tag, r.new_value)) for r in rows]


async def last_change(session: AsyncSession, person_id: str, tag: str) -> TagChange | None:
    found = await tag_history(session, person_id, tags=(tag,), limit=1)
    return found[0] if found else None
