"""The audit of commands staff give the bot (`command_log`): who asked what, and what came of it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from profile_store.models import CommandLog

OUTCOMES = frozenset({"done", "refused", "failed", "not_understood", "preview"})


async def log_command(
    session: AsyncSession,
    *,
    userid: str,
    text: str,
    family: str,
    outcome: str,
    detail: str = "",
    reading: str = "",
    result_size: int | None = None,
) -> None:
    """One audit row, written in the caller's transaction (with whatever the command did)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"command outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    session.add(
        CommandLog(
            userid=userid, text=text, family=family, outcome=outcome, detail=detail[:1000], reading=reading[:2000],
            result_size=result_size,
        )
    )
    await session.flush()


async def command_log(session: AsyncSession, *, userid: str | None = None) -> list[CommandLog]:
    """The audit, oldest first (of one staff member, when given)."""
    query = select(CommandLog).order_by(col(CommandLog.at), col(CommandLog.id))
    if userid is not None:
        query = query.where(col(CommandLog.userid) == userid)
    return list((await session.execute(query)).scalars())
