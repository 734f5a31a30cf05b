"""Messages: a customer writing to the official account (`message` event); a staff member
writing to our WeCom app (a command). Of commands only QR requests are understood yet
("给S001门店生成二维码", bot/qr_chat.py): the code is made in the prefetch step, outside the
transaction, and the answer (picture + text) is queued in the outbox here, with the audit row.
Other commands are recorded as received; the command language is a later issue."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import TextMessage, WeComTextMessage
from bot.dispatcher import Router
from bot.qr_chat import QrReply, answer_qr_request
from bot.settings import Settings
from profile_store import outbox
from profile_store.commands import log_command
from profile_store.db import Database
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


@router.prefetch(WeComTextMessage)
async def make_requested_qr(
    event: WeComTextMessage,
    db: Database | None = None,
    settings: Settings | None = None,
    wecom: Any | None = None,
    wechat: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A QR request's code, made before the transaction (Tencent is called); `qr_reply` None:
    the text is not a QR request. QrMaker errors come back as a reply, never raised."""
    if db is None or settings is None:
        return {}
    reply = await answer_qr_request(
        event.user_id,
        event.content,
        db=db,
        settings=settings,
        wecom=wecom,
        wechat=wechat or {},
        asked_at=datetime.fromtimestamp(event.create_time, UTC),
    )
    return {"qr_reply": reply}


@router.event(WeComTextMessage)
async def on_staff_command(
    event: WeComTextMessage, raw_event_id: int, session: AsyncSession, qr_reply: QrReply | None = None
) -> None:
    if qr_reply is not None:
        await _answer_qr(session, event, qr_reply)
        return
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


async def _answer_qr(session: AsyncSession, event: WeComTextMessage, reply: QrReply) -> None:
    """Queue the answer and audit the request. Keys come from the callback's dedupe key, so a
    re-run of this callback (a replay) queues and audits nothing twice."""
    if reply.image_path:
        await outbox.enqueue(
            session,
            key=f"qr:{event.dedupe_key}:image",
            kind="image",
            payload={"touser": event.user_id, "path": reply.image_path},
        )
    answered = not await outbox.enqueue(
        session,
        key=f"qr:{event.dedupe_key}:text",
        kind="text",
        payload={"touser": event.user_id, "content": reply.text},
    )
    if answered:
        return
    await log_command(
        session, userid=event.user_id, text=event.content, family="qr", outcome=reply.outcome, detail=reply.detail
    )
