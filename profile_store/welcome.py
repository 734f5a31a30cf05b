"""Welcome templates a marketer edits (`qianmian welcome ...`): one per kind of new contact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

KINDS = ("new", "price", "loyal", "default")


@dataclass(frozen=True)
class Template:
    kind: str
    text: str
    link_title: str = ""
    link_url: str = ""
    card_id: str = ""
    updated_by: str = ""


async def stored_templates(session: AsyncSession) -> dict[str, Template]:
    rows = (
        await session.execute(
            text("SELECT kind, text, link_title, link_url, card_id, updated_by FROM welcome_template")
        )
    ).all()
    return {r[0]: Template(*r) for r in rows}


async def save_template(session: AsyncSession, template: Template) -> None:
    await session.execute(
        text(
            "INSERT INTO welcome_template (kind, text, link_title, link_url, card_id, updated_by, updated_at)"
            " VALUES (:k, :t, :lt, :lu, :c, :by, :at) ON CONFLICT (kind) DO UPDATE SET text = excluded.text,"
            " link_title = excluded.link_title, link_url = excluded.link_url, card_id = excluded.card_id,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at"
        ).bindparams(bindparam("at", type_=DateTime(timezone=True))),
        {
            "k": template.kind, "t": template.text, "lt": template.link_title, "lu": template.link_url,
            "c": template.card_id, "by": template.updated_by, "at": datetime.now(UTC),
        },
    )


async def delete_template(session: AsyncSession, kind: str) -> bool:
    result = await session.execute(text("DELETE FROM welcome_template WHERE kind = :k"), {"k": kind})
    return bool(getattr(result, "rowcount", 0))
