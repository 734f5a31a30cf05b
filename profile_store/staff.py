"""Staff (guides.csv): who a WeCom userid is, and who works in a store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ROLES = ("guide", "manager", "marketer", "admin")


@dataclass(frozen=True)
class Staff:
    guide_id: str  # the WeCom userid
    name: str
    store_id: str
    role: str  # guide | manager | marketer | admin


async def staff_of(session: AsyncSession, userid: str) -> Staff | None:
    row = (
        await session.execute(
            text("SELECT guide_id, name, store_id, role FROM guide WHERE guide_id = :u"), {"u": userid}
        )
    ).first()
    return Staff(row[0], row[1] or "", row[2] or "", row[3] or "guide") if row else None


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
    row = (await session.execute(text("SELECT name FROM store WHERE store_id = :s"), {"s": store_id})).first()
    return (row[0] or store_id) if row else None


async def all_staff(session: AsyncSession) -> list[tuple[str, str]]:
    """(userid, name) of everyone in guides.csv."""
    rows = (await session.execute(text("SELECT guide_id, name FROM guide ORDER BY guide_id"))).all()
    return [(r[0], r[1] or r[0]) for r in rows]
