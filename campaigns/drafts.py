"""A campaign command ("给上海门店的价格导向会员下周一上午10点发30元无门槛券") as a campaign draft:
the `Campaign` row the planner previews and, once confirmed, stores and plans.

A draft travels between the preview and the confirmation as plain JSON (the pending action of
the conversation, profile_store/chat.py), so any `serve` process can take the "确认".
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot import texts
from nlp import segment as seg
from nlp.intent import CampaignCommand
from profile_store.models import Campaign

# The channel words of a command → the channels a person may be reached by (Campaign.channel).
CHANNELS = {"wecom": "wecom", "oa": "oa", "any": "any"}
DEFAULT_CONTROL_PCT = 10.0


_WHO = re.compile(r"给(.+?)(?:发送|发|推送|群发|提醒|送)")
_WHEN = re.compile(
    r"(?:今天|明天|后天|大后天|今晚|下周.|本周.|这周.|周.|\d+天后)?(?:上午|下午|晚上|中午|早上)?"
    r"(?:\d{1,2}(?:[点:：]\d{0,2}|点半)?分?)?$"
)


def campaign_name(text: str, offer: str, moment: datetime) -> str:
    """A short name a marketer can say back ("统计…的效果"): whom and what, and the day it was made:
    "给上海门店的价格导向会员下周一上午10点发30元无门槛券" → "上海门店的价格导向会员·30元无门槛券·1124"."""
    found = _WHO.search(text)
    who = _WHEN.sub("", found.group(1)).strip() if found else ""
    parts = [p for p in (who[:14], offer.replace("优惠券", "").strip("“”")[:12]) if p] or [text.strip()[:14]]
    return "·".join([*parts, f"{moment:%m%d}"])


def offer_text(command: CampaignCommand, coupons: dict[str, str]) -> str:
    """What the message says: the coupon in words ("30元无门槛券"), then the command's content."""
    parts = []
    coupon = command.coupon
    if coupon is not None:
        if coupon.card_id:
            parts.append(texts.CHAT_CAMPAIGN_COUPON_CARD.format(name=coupons.get(coupon.card_id, coupon.card_id)))
        elif coupon.kind == "cash":
            threshold = (
                texts.CHAT_CAMPAIGN_COUPON_THRESHOLD.format(threshold=f"{coupon.threshold_fen / 100:g}")
                if coupon.threshold_fen
                else texts.CHAT_CAMPAIGN_COUPON_NO_THRESHOLD
            )
            parts.append(texts.CHAT_CAMPAIGN_COUPON_CASH.format(value=f"{coupon.value / 100:g}", threshold=threshold))
        elif coupon.kind == "discount":
            parts.append(texts.CHAT_CAMPAIGN_COUPON_DISCOUNT.format(rate=f"{(100 - coupon.value) / 10:g}"))
        else:
            parts.append(texts.CHAT_CAMPAIGN_COUPON_GIFT)
    if command.content:
        parts.append(command.content)
    return "；".join(parts)


def draft_of(
    command: CampaignCommand,
    tree: seg.Segment,
    *,
    name: str,
    reading: str,
    by: str,
    coupons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The draft as JSON-ready data: one variant for everyone. A coupon without words of its own
    is announced in words ("送您一张30元无门槛券…"): a message is never empty."""
    content = command.content
    if command.coupon is not None and not content:
        content = texts.CAMPAIGN_COUPON_MESSAGE.format(offer=offer_text(command, coupons or {}))
    variant: dict[str, Any] = {"name": "default", "when": None, "content": content}
    if command.coupon is not None:
        variant["coupon"] = asdict(command.coupon)
    return {
        "name": command.name or name,
        "segment": seg.to_json(tree),
        "reading": reading,
        "variants": [variant],
        "channel": CHANNELS.get(command.channel, "any"),
        "send_at": command.send_at.isoformat() if command.send_at else None,
        "control_pct": DEFAULT_CONTROL_PCT,
        "created_by": by,
    }


def campaign_of(draft: dict[str, Any], *, status: str = "draft") -> Campaign:
    """The `Campaign` row of a draft."""
    send_at = draft.get("send_at")
    return Campaign(
        name=str(draft["name"]),
        kind="campaign",
        segment=str(draft["segment"]),
        reading=str(draft.get("reading", "")),
        variants=json.dumps(draft.get("variants", []), ensure_ascii=False),
        channel=str(draft.get("channel", "any")),
        send_at=datetime.fromisoformat(send_at) if send_at else None,
        control_pct=float(draft.get("control_pct", DEFAULT_CONTROL_PCT)),
        status=status,
        created_by=str(draft.get("created_by", "")),
    )
