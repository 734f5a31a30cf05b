"""After a batch of callbacks: the tags of every person it touched, fresh in the same commit
(tags.md "fresh within seconds"), and their WeCom corp tags queued for mirroring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from profile_store.corp_tags import queue_corp_tags
from profile_store.tagging.refresh import refresh_persons

PersonHook = Callable[[AsyncSession, set[str]], Awaitable[None]]


def on_persons_touched(settings: Settings) -> PersonHook:
    async def refresh(session: AsyncSession, persons: set[str]) -> None:
        await refresh_persons(session, persons, settings.today())
        await queue_corp_tags(session, persons)

    return refresh
