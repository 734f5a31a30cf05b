"""After a batch of callbacks: the tags of every person it touched, fresh in the same commit
(tags.md "fresh within seconds"), and their WeCom corp tags queued for mirroring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from profile_store.corp_tags import queue_corp_tags
from profile_store.identity import Sighting
from profile_store.tagging.refresh import coupon_holders, refresh_persons

PersonHook = Callable[[AsyncSession, set[str], Sequence[Sighting]], Awaitable[None]]


def on_persons_touched(settings: Settings) -> PersonHook:
    async def refresh(session: AsyncSession, persons: set[str], sightings: Sequence[Sighting]) -> None:
        # A coupon used or deleted changes the tags of whoever got it (a gifted coupon's giver).
        persons = persons | await coupon_holders(session, [s.source_key for s in sightings if s.source == "event"])
        await refresh_persons(session, persons, settings.today())
        await queue_corp_tags(session, persons)

    return refresh
