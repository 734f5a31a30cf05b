"""Messages: a customer writing to the official account (`message` event); a staff member
writing to our WeCom app (a command: recorded as received; the command language is a later issue,
so nothing is answered yet)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import TextMessage, WeComTextMessage
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


@router.event(WeComTextMessage)
async def on_staff_command(event: WeComTextMessage, raw_event_id: int) -> None:
    # The raw_event row (status done) is the record of the command; its text is not logged
    # because staff may paste customer data into it.
    log.info(
        "command received from %s (agent %s, msg %s, raw_event %d, %d chars)",
        event.user_id,
        event.agent_id,
        event.msg_id,
        raw_event_id,
        len(event.content),
    )
