"""A staff member asks the bot's WeCom app for a QR code ("给S001门店生成二维码").

Who may ask: an admin or a marketer for any store or guide; a manager for their own store and its
staff; a guide for their own code only. Anyone else (not in guides.csv) is refused. The decision
is taken before any Tencent call, so a refused request costs nothing.

`answer_qr_request` runs in the dispatcher's prefetch step, outside the callback's transaction
(Tencent is called; no database lock may be held meanwhile). It is idempotent: a second run for
the same message finds the code the first one stored. The handler then writes the audit row and
queues the answer (picture + text) in the callback's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot import texts
from bot.qr import OfficialAccountQrApi, QrCode, QrError, QrMaker, WeComQrApi, describe
from bot.settings import Settings
from nlp.qr import QrRequest, mentions_qr, parse_qr_request
from profile_store import contact_ways, staff
from profile_store.db import Database
from profile_store.staff import Staff

log = logging.getLogger(__name__)

Outcome = Literal["done", "refused", "failed", "not_understood"]
ANYWHERE = frozenset({"admin", "marketer"})


@dataclass(frozen=True)
class QrReply:
    """What came of a QR request, for the audit and for the asker."""

    outcome: Outcome
    text: str  # the answer to send
    detail: str = ""  # for the audit (command_log.detail)
    image_path: str | None = None  # the picture to send, when one was made


def refusal(asker: Staff | None, kind: str, target: str, target_store: str) -> str | None:
    """Why `asker` may not have this code (a Chinese sentence), or None when they may."""
    if asker is None:
        return texts.QR_CHAT_UNKNOWN_STAFF
    if asker.role in ANYWHERE:
        return None
    if asker.role == "manager":
        if asker.store_id and target_store == asker.store_id:
            return None
        return texts.QR_CHAT_MANAGER_OWN_STORE.format(store_id=asker.store_id or "-")
    if kind == "guide" and target == asker.guide_id:
        return None
    return texts.QR_CHAT_GUIDE_OWN_ONLY


async def answer_qr_request(
    userid: str,
    content: str,
    *,
    db: Database,
    settings: Settings,
    wecom: WeComQrApi | None,
    wechat: Mapping[str, OfficialAccountQrApi],
    asked_at: datetime,
) -> QrReply | None:
    """The answer to a QR request, making the code when allowed; None: `content` is not one."""
    if not mentions_qr(content):
        return None  # most staff messages: no database read at all
    async with db.transaction() as session:
        request = parse_qr_request(content, await contact_ways.stores_by_name(session))
        asker = await staff.staff_of(session, userid)
        if request is None:
            return None
        target = _target_of(request, asker)
        guide = await staff.staff_of(session, target) if request.kind == "guide" and target else None
    if request.kind is None:
        return QrReply("not_understood", texts.QR_CHAT_NOT_UNDERSTOOD)
    if not target:  # "本店的二维码" from someone without a store, or "我的" from a stranger
        reason = texts.QR_CHAT_UNKNOWN_STAFF if asker is None else texts.QR_CHAT_NO_OWN_STORE
        return QrReply("refused", reason, detail=reason)
    target_store = target if request.kind == "store" else (guide.store_id if guide else "")
    refused = refusal(asker, request.kind, target, target_store)
    if refused is not None:
        log.info("qr request of %s refused: %s %s", userid, request.kind, target)
        return QrReply("refused", refused, detail=refused)
    try:
        oa = _official_account(settings, wechat) if request.oa else None
        maker = QrMaker(db, settings, wecom=wecom, wechat=wechat)
        make = maker.create_store_qr if request.kind == "store" else maker.create_guide_qr
        qr = await make(target, by=userid, oa=oa, new=request.new, asked_at=asked_at)
    except QrError as exc:
        return QrReply("failed", texts.QR_CHAT_FAILED.format(reason=exc), detail=f"{exc.code}: {exc}")
    return QrReply("done", describe(qr), detail=_detail(qr), image_path=str(qr.image_path))


def _target_of(request: QrRequest, asker: Staff | None) -> str:
    if request.target:
        return request.target
    if not request.mine or asker is None:
        return ""
    return asker.store_id if request.kind == "store" else asker.guide_id


def _official_account(settings: Settings, wechat: Mapping[str, OfficialAccountQrApi]) -> str:
    """The account a chat request means: the first configured one that has a client."""
    if settings.wechat_app_id and settings.wechat_app_id in wechat:
        return settings.wechat_app_id
    if wechat:
        return next(iter(wechat))
    raise QrError("not_configured", texts.QR_NO_OA_AT_ALL)


def _detail(qr: QrCode) -> str:
    return f"{qr.channel} {qr.state} {qr.config_id}{' reused' if qr.reused else ''}"
