"""A campaign command ("给上海门店的价格导向会员下周一上午10点发30元无门槛券") as a campaign draft:
the `Campaign` row the planner previews and, once confirmed, stores and plans.

A draft travels between the preview and the confirmation as plain JSON (the pending action of
the conversation, profile_store/chat.py), so any `serve` process can take the "确认".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot import texts
from nlp import segment as seg
from nlp.intent import CampaignCommand, CouponOffer
from profile_store.models import Campaign

# The channel words of a command → the channels a person may be reached by (Campaign.channel).
CHANNELS = {"wecom": "wecom", "oa": "oa", "sms": "sms", "any": "any"}
DEFAULT_CONTROL_PCT = 10.0
DEFAULT_VARIANT = "default"  # the variant for everyone left (campaigns.plan)


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
    return offer_words(command.coupon, command.content, coupons)


def offer_words(coupon: CouponOffer | None, content: str, coupons: dict[str, str]) -> str:
    """A coupon in words ("30元无门槛券"), then the words that go with it."""
    parts = []
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
    if content:
        parts.append(content)
    return "；".join(parts)


def _message(coupon: CouponOffer | None, content: str, coupons: dict[str, str]) -> str:
    """A coupon without words of its own is announced in words ("送您一张30元无门槛券…"): a
    message is never empty."""
    if coupon is not None and not content:
        return texts.CAMPAIGN_COUPON_MESSAGE.format(offer=offer_words(coupon, "", coupons))
    return content


def _variant(name: str, when: seg.Segment | None, who: str, coupon: CouponOffer | None, content: str,
             coupons: dict[str, str]) -> dict[str, Any]:
    """One variant as stored (Campaign.variants; the shape `qianmian campaign create` stores)."""
    variant: dict[str, Any] = {
        "name": name, "who": who, "when": None if when is None else json.loads(seg.to_json(when)),
        "content": _message(coupon, content, coupons), "coupon": None,
    }
    if coupon is not None:
        variant["coupon"] = asdict(coupon)
    return variant


def variant_name(who: str, taken: set[str], index: int) -> str:
    """A variant's name: its condition as written, without the trailing 的 ("价格导向的" → "价格导向"),
    numbered when taken already; "default" for everyone left."""
    if not who:
        return DEFAULT_VARIANT
    name = who.removesuffix("的") or who
    return name if name not in taken and name != DEFAULT_VARIANT else f"{name}-{index + 1}"


def draft_of(
    command: CampaignCommand,
    tree: seg.Segment,
    *,
    name: str,
    reading: str,
    by: str,
    coupons: dict[str, str] | None = None,
    whens: Sequence[tuple[seg.Segment | None, str]] | None = None,
    control_pct: float = DEFAULT_CONTROL_PCT,
) -> dict[str, Any]:
    """The draft as JSON-ready data: one variant for everyone, or the command's variants (千人千面,
    first match wins) with `whens` their conditions as the caller resolved them and their readings
    (default: as parsed, unread). The chat's commands and `qianmian campaign create` both come
    here."""
    known = coupons or {}
    if command.variants:
        conditions = list(whens) if whens is not None else [(v.when, "") for v in command.variants]
        variants: list[dict[str, Any]] = []
        for i, (v, (when, who)) in enumerate(zip(command.variants, conditions, strict=True)):
            vname = variant_name("" if when is None else v.who, {x["name"] for x in variants}, i)
            variants.append(_variant(vname, when, who, v.coupon, v.content, known))
    else:
        variants = [_variant(DEFAULT_VARIANT, None, "", command.coupon, command.content, known)]
    return {
        "name": command.name or name,
        "segment": seg.to_json(tree),
        "reading": reading,
        "variants": variants,
        "channel": CHANNELS.get(command.channel, "any"),
        "send_at": command.send_at.isoformat() if command.send_at else None,
        "control_pct": control_pct,
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
