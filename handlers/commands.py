"""Staff commands written to our WeCom app: "给S001门店生成二维码", "圈选上海的忠诚会员",
"查一下13812345678", "确认" …

The answer is worked out in the prefetch step, outside the callback's transaction: a QR request
calls Tencent (bot/qr_chat.py), a segment may read a million profiles (bot/chat/). When that
takes longer than QIANMIAN_WORKING_NOTICE_SECONDS, "正在圈选…" is queued and sent first. The
handler then queues the answer (text, and a picture when there is one) in the callback's
transaction, with the audit row; keys come from the callback's dedupe key, so a replay of the
callback queues and audits nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import WeComTextMessage
from bot.chat.engine import Assistant
from bot.chat.reply import Reply, audit
from bot.dispatcher import Router
from bot.qr_chat import QrReply, answer_qr_request
from bot.settings import Settings
from profile_store import outbox
from profile_store.commands import log_command
from profile_store.db import Database

log = logging.getLogger(__name__)
router = Router("commands")


@router.prefetch(WeComTextMessage)
async def work_out_answer(
    event: WeComTextMessage,
    db: Database | None = None,
    settings: Settings | None = None,
    wecom: Any | None = None,
    wechat: Mapping[str, Any] | None = None,
    assistant: Assistant | None = None,
    sender: Any | None = None,
) -> dict[str, Any]:
    """The answer, made before the transaction. QR requests first (they are recognised by their
    words without reading the database); anything else goes to the assistant."""
    if db is None or settings is None:
        return {}
    asked_at = datetime.fromtimestamp(event.create_time, UTC)
    qr = await answer_qr_request(
        event.user_id, event.content, db=db, settings=settings, wecom=wecom, wechat=wechat or {}, asked_at=asked_at
    )
    if qr is not None or assistant is None:
        return {"qr_reply": qr}

    async def working(text: str) -> None:
        async with db.transaction() as session:
            await outbox.enqueue(
                session,
                key=f"cmd:{event.dedupe_key}:working",
                kind="text",
                payload={"touser": event.user_id, "content": text},
            )
        if sender is not None:
            sender.wake()

    return {"chat_reply": await assistant.answer(event.user_id, event.content, now=asked_at, progress=working)}


@router.event(WeComTextMessage)
async def on_staff_command(
    event: WeComTextMessage,
    raw_event_id: int,
    session: AsyncSession,
    qr_reply: QrReply | None = None,
    chat_reply: Reply | None = None,
) -> None:
    if qr_reply is not None:
        await _answer_qr(session, event, qr_reply)
    elif chat_reply is not None:
        await _answer(session, event, chat_reply)
    else:  # no assistant configured (tests of the edge alone): the raw event is the record
        log.info("command from %s not answered (raw_event %d)", event.user_id, raw_event_id)


async def _answer(session: AsyncSession, event: WeComTextMessage, reply: Reply) -> None:
    if await _queue(session, event, "cmd", reply.text, reply.image_path):
        await audit(session, event.user_id, event.content, reply)


async def _answer_qr(session: AsyncSession, event: WeComTextMessage, reply: QrReply) -> None:
    if await _queue(session, event, "qr", reply.text, reply.image_path):
        await log_command(
            session, userid=event.user_id, text=event.content, family="qr", outcome=reply.outcome, detail=reply.detail
        )


async def _queue(session: AsyncSession, event: WeComTextMessage, prefix: str, text: str, image: str | None) -> bool:
    """Queue the answer (a picture first, when there is one); False when this callback's answer
    was queued before (a replay), so nothing is audited twice."""
    touser = event.user_id
    if image:
        await outbox.enqueue(
            session, key=f"{prefix}:{event.dedupe_key}:image", kind="image", payload={"touser": touser, "path": image}
        )
    return await outbox.enqueue(
        session, key=f"{prefix}:{event.dedupe_key}:text", kind="text", payload={"touser": touser, "content": text}
    )
