"""Messages: a customer writing to the official account is a `message` event of their history;
"退订" / "TD" also opts them out of the official account's marketing, for good (campaigns).
(Staff writing to our WeCom app give commands: handlers/commands.py.)"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import TextMessage
from bot.dispatcher import Router
from bot.settings import Settings
from profile_store.campaigns import opt_out_follower
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
    if is_unsubscribe_request(event.content):
        await opt_out_follower(session, graph, event.account, event.openid, reason=event.content.strip()[:20])


# What customers write to stop marketing messages (the carriers' and WeChat's usual words).
UNSUBSCRIBE_WORDS = frozenset({"退订", "td", "t", "取消订阅", "不要再发了", "退订消息"})


def is_unsubscribe_request(content: str) -> bool:
    return content.strip().strip("。.!！").lower() in UNSUBSCRIBE_WORDS
