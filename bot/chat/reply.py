"""What the bot answers to one command, and the audit row it leaves."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.commands import log_command


@dataclass(frozen=True)
class Reply:
    """`family`: segment | campaign | report | portrait | tag | confirm | help | unknown;
    `outcome`: done | preview | refused | failed | not_understood (command_log.outcome)."""

    family: str
    outcome: str
    text: str
    image_path: str | None = None  # a chart to send after the text
    reading: str = ""  # how the command was understood (also audited)
    size: int | None = None  # how many people it concerned

    @property
    def messages(self) -> list[str]:
        """The messages as `qianmian ask` prints them (the picture by its path)."""
        return [self.text] if self.image_path is None else [self.text, self.image_path]


async def audit(session: AsyncSession, userid: str, text: str, reply: Reply) -> None:
    """Every command leaves one row: who, what they wrote, how it was read, how many people."""
    await log_command(
        session,
        userid=userid,
        text=text,
        family=reply.family,
        outcome=reply.outcome,
        reading=reply.reading,
        result_size=reply.size,
    )
