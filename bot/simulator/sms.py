"""A simulated SMS gateway on the simulator's loopback server (`POST /sim/sms/send`).

Like real gateways it takes a client reference (`out_id`) and sends a message once per reference:
a repeated request with the same `out_id` answers the first message id and sends nothing. Every
message sent is kept in `messages`; `inject(code, times)` makes the next calls fail (-1 busy,
45009 rate limited, or any final code).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SMS_PATH = "/sim/sms/send"
BUSY, RATE_LIMITED, BAD_PHONE, EMPTY_TEXT = -1, 45009, 1001, 1002


@dataclass
class SmsMessage:
    message_id: str
    phone: str
    text: str
    out_id: str
    at: float


class SmsGateway:
    def __init__(self) -> None:
        self.messages: list[SmsMessage] = []
        self.requests = 0
        self._by_out_id: dict[str, str] = {}
        self._faults: deque[int] = deque()
        self._ids = itertools.count(1)

    def inject(self, code: int, times: int = 1) -> None:
        """The next `times` requests answer `code` (nothing is sent)."""
        self._faults.extend([code] * times)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        return web.json_response(self.answer(body if isinstance(body, dict) else {}))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._faults:
            code = self._faults.popleft()
            return {"code": code, "message": {BUSY: "busy", RATE_LIMITED: "rate limited"}.get(code, "injected")}
        phone, text, out_id = str(body.get("phone", "")), str(body.get("text", "")), str(body.get("out_id", ""))
        if not (phone.isdigit() and len(phone) == 11 and phone.startswith("1")):
            return {"code": BAD_PHONE, "message": "invalid phone"}
        if not text:
            return {"code": EMPTY_TEXT, "message": "empty text"}
        if out_id and out_id in self._by_out_id:
            return {"code": 0, "message_id": self._by_out_id[out_id], "duplicate": True}
        message_id = f"sms{next(self._ids):09d}"
        self.messages.append(SmsMessage(message_id, phone, text, out_id, time.time()))
        if out_id:
            self._by_out_id[out_id] = message_id
        return {"code": 0, "message_id": message_id}


# ---------------------------------------------------------------------- WeCom: mass messages by creator
# `get_groupmsg_list_v2` (doc 93338) is not modelled by bot/simulator/wecom_api.py; the campaign
# sender needs it to find a mass message whose answer it lost. Served over the corp's state.

GROUPMSG_LIST_V2 = "/cgi-bin/externalcontact/get_groupmsg_list_v2"


def groupmsg_list_v2(corp: Any, ctx: Any) -> dict[str, Any]:
    """Mass messages created between start_time and end_time (by `creator`, when given)."""
    from bot.simulator.common import SimError

    body = ctx.json()
    try:
        start, end = int(body.get("start_time") or 0), int(body.get("end_time") or 0)
    except (TypeError, ValueError):
        raise SimError(40058, "invalid start_time / end_time") from None
    if not start or not end or end < start or end - start > 31 * 86400:
        raise SimError(40058, "invalid Request Parameter: time range")
    creator = str(body.get("creator") or "")
    msgs = sorted(
        (m for m in corp.group_msgs.values()
         if start <= m.created_at <= end and (not creator or m.sender == creator)),
        key=lambda m: (m.created_at, m.msgid),
    )
    limit = min(int(body.get("limit") or 50), 100)
    offset = int(body.get("cursor") or 0)
    page = msgs[offset : offset + limit]
    return {
        "next_cursor": str(offset + limit) if offset + limit < len(msgs) else "",
        "group_msg_list": [
            {"msgid": m.msgid, "creator": m.sender or "", "create_type": 0, "create_time": str(int(m.created_at)),
             "text": m.body.get("text") or {}}
            for m in page
        ],
    }
