"""The card a guide receives when a customer scans in: a WeCom `template_card` (text_notice) with
the essentials — who, lifecycle, level, preferences, last purchase, talking points — and the link
to the full portrait page. Field lengths follow WeCom's limits (longer text is cut, not refused)."""

from __future__ import annotations

from typing import Any

from bot import texts
from bot.portrait_text import preference_parts, talking_points
from profile_store.portrait import Portrait

MAX_ROWS = 6  # horizontal_content_list holds at most 6 rows
TITLE_CHARS, DESC_CHARS, VALUE_CHARS, SUBTITLE_CHARS = 26, 30, 26, 112
DUPLICATE_WINDOW = 4 * 3600  # WeCom drops an identical message to the same user within this


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_new_customer(p: Portrait) -> bool:
    """Nothing bought and no membership: the card says "new customer" instead of a portrait."""
    return not p.metrics.get("orders_total") and not p.tags.get("is_member")


def portrait_card(p: Portrait, *, url: str, store: str | None, scanned: bool) -> dict[str, Any]:
    """The `template_card` content for `message/send`."""
    tags = p.tags
    new = is_new_customer(p)
    who = p.name or texts.PORTRAIT_WHO_UNKNOWN
    if new:
        title = texts.CARD_TITLE_NEW_SCANNED if scanned else texts.CARD_TITLE_NEW
    else:
        title = (texts.CARD_TITLE_SCANNED if scanned else texts.CARD_TITLE_KNOWN).format(who=who)
    desc = texts.CARD_DESC_STORE.format(store=store) if store else texts.CARD_DESC_GUIDE
    rows: list[tuple[str, str]] = []
    if new:
        rows.append((texts.CARD_KEYS["lifecycle"], texts.CARD_NEW_CUSTOMER))
    else:
        rows.append((texts.CARD_KEYS["lifecycle"], str(tags.get("lifecycle", ""))))
        rows.append((texts.CARD_KEYS["level"], str(tags.get("level") or texts.CARD_NOT_MEMBER)))
        if tags.get("purchase_power"):
            rows.append((texts.CARD_KEYS["value"], f"{tags['purchase_power']}｜{tags.get('price_orientation', '')}"))
    if p.phone:
        rows.insert(0, (texts.CARD_KEYS["phone"], p.phone))  # already masked by portrait()
    preferences = preference_parts(p)
    if preferences:
        rows.append((texts.CARD_KEYS["preferences"], "｜".join(preferences)))
    if p.last_purchase is not None:
        last = p.last_purchase
        rows.append((texts.CARD_KEYS["last_purchase"], texts.CARD_LAST_PURCHASE.format(
            on=last.paid_at.date().isoformat(), amount=last.amount_fen / 100)))
    if p.coupons:
        rows.append((texts.CARD_KEYS["coupons"], "、".join(c.name for c in p.coupons[:2])))
    card: dict[str, Any] = {
        "card_type": "text_notice",
        "source": {"desc": texts.CARD_SOURCE},
        "main_title": {"title": _cut(title, TITLE_CHARS), "desc": _cut(desc, DESC_CHARS)},
        "sub_title_text": _cut(texts.CARD_TIPS.format(tips=" ".join(talking_points(p))), SUBTITLE_CHARS),
        "horizontal_content_list": [
            {"keyname": key, "value": _cut(value, VALUE_CHARS)} for key, value in rows[:MAX_ROWS] if value
        ],
        "jump_list": [{"type": 1, "url": url, "title": texts.CARD_OPEN}],
        "card_action": {"type": 1, "url": url},
    }
    if not new and tags.get("lifecycle"):
        card["emphasis_content"] = {"title": str(tags["lifecycle"]), "desc": texts.CARD_KEYS["lifecycle"]}
    return card


def card_message(touser: str, card: dict[str, Any]) -> dict[str, Any]:
    """The `message/send` body. Duplicate check on: a retry after a timeout that Tencent did in
    fact deliver is dropped by WeCom instead of reaching the guide twice."""
    return {
        "touser": touser,
        "msgtype": "template_card",
        "template_card": card,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": DUPLICATE_WINDOW,
    }
