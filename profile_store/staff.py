"""Staff (guides.csv): who a WeCom userid is, and who works in a store."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

ROLES = ("guide", "manager", "marketer", "admin")


@dataclass(frozen=True)
class Staff:
    guide_id: str  # the WeCom userid
    name: str
    store_id: str
    role: str  # guide | manager | marketer | admin


async def staff_of(session: AsyncSession, userid: str) -> Staff | None:
    return (await staff_by_id(session, [userid])).get(userid)


async def staff_by_id(session: AsyncSession, userids: Collection[str]) -> dict[str, Staff]:
    """userid → Staff for those of `userids` in guides.csv (one query for many)."""
    if not userids:
        return {}
    rows = (
        await session.execute(
            text("SELECT guide_id, name, store_id, role FROM guide WHERE guide_id IN :u").bindparams(
                bindparam("u", expanding=True)
            ),
            {"u": sorted(set(userids))},
        )
    ).all()
    return {r[0]: Staff(r[0], r[1] or "", r[2] or "", r[3] or "guide") for r in rows}


async def store_guides(session: AsyncSession, store_id: str) -> list[str]:
    """The staff a store's QR rotates among and whom its scans are pushed to: its guides, or its
    manager(s) when it has no guide."""
    rows = (
        await session.execute(
            text(
                "SELECT guide_id, role FROM guide WHERE store_id = :s AND role IN ('guide', 'manager')"
                " ORDER BY guide_id"
            ),
            {"s": store_id},
        )
    ).all()
    guides = [r[0] for r in rows if r[1] == "guide"]
    return guides or [r[0] for r in rows]


async def store_name(session: AsyncSession, store_id: str) -> str | None:
    return (await store_names(session, [store_id])).get(store_id)


async def store_names(session: AsyncSession, store_ids: Collection[str]) -> dict[str, str]:
    """store_id → its name (the id when the name is blank) for the known ones of `store_ids`."""
    if not store_ids:
        return {}
    rows = (
        await session.execute(
            text("SELECT store_id, name FROM store WHERE store_id IN :s").bindparams(bindparam("s", expanding=True)),
            {"s": sorted(set(store_ids))},
        )
    ).all()
    return {r[0]: r[1] or r[0] for r in rows}


async def all_staff(session: AsyncSession) -> list[tuple[str, str]]:
    """(userid, name) of everyone in guides.csv."""
    rows = (await session.execute(text("SELECT guide_id, name FROM guide ORDER BY guide_id"))).all()
    return [(r[0], r[1] or r[0]) for r in rows]
