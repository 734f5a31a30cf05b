"""Messages: a customer writing to the official account is a `message` event of their history.
(Staff writing to our WeCom app give commands: handlers/commands.py.)"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import TextMessage
from bot.dispatcher import Router
from bot.settings import Settings
from profile_store.identity import IdentityGraph
from profile_store.live import LiveFact, record_fact

log = logging.getLogger(__name__)
router = Router("messages")


@router.event(TextMessage)
async def on_customer_text(event: TextMessage, session: AsyncSession, graph: IdentityGraph, settings: Settings) -> None:
    await record_fact(
        session,
        graph,
        LiveFact(
            dedupe_key=event.dedupe_key,
            type="message",
            occurred_at=event.occurred_at(settings.tz),
            channel="oa",
            appid=event.account,
            openid=event.openid,
        ),
    )
