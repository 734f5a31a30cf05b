"""Audit of portrait pages: one `portrait_view` row for every opening, shown or refused."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.models import PortraitView

OUTCOMES = frozenset({"shown", "expired", "forged", "foreign", "denied"})


async def record_view(
    session: AsyncSession,
    *,
    outcome: str,
    ip: str,
    link_id: str = "",
    guide_id: str = "",
    viewer: str = "",
    person_id: str = "",
) -> None:
    """Write one view (committed with the caller's transaction)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"portrait view outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    session.add(
        PortraitView(
            link_id=link_id, guide_id=guide_id, viewer=viewer, person_id=person_id, outcome=outcome, ip=ip
        )
    )
    await session.flush()
