"""The portrait in words: a short Chinese card for a guide's phone (WeCom text/markdown limits
keep it under ~600 characters), plus two or three talking points derived from the tags."""

from __future__ import annotations

from bot import texts
from profile_store.portrait import Portrait

MAX_TIPS = 3


def talking_points(p: Portrait) -> list[str]:
    """What to say, most specific first; always two or three."""
    tags = p.tags
    tips: list[str] = []
    if tags.get("birthday_month") == p.as_of.month:
        tips.append(texts.TIP_BIRTHDAY)
    if p.coupons:
        tips.append(texts.TIP_COUPON.format(coupon=p.coupons[0].name))
    if tags.get("price_orientation") == "价格导向":
        tips.append(texts.TIP_PRICE)
    if tags.get("core_sku"):
        sku = tags["core_sku"][0]
        tips.append(texts.TIP_CORE_SKU.format(sku=p.sku_names.get(sku, sku)))
    lifecycle = tags.get("lifecycle")
    if lifecycle in ("沉睡", "流失"):
        tips.append(texts.TIP_DORMANT)
    elif lifecycle == "忠诚":
        category = tags.get("preferred_category")
        tips.append(texts.TIP_LOYAL.format(category=category) if category else texts.TIP_LOYAL_NO_CATEGORY)
    elif lifecycle in ("注册", "兴趣", "认知") and not p.metrics.get("orders_total"):
        tips.append(texts.TIP_NEW)
    if tags.get("price_orientation") == "品质导向":
        tips.append(texts.TIP_QUALITY)
    if tags.get("browse_preference"):
        tips.append(texts.TIP_BROWSING.format(category=tags["browse_preference"]))
    if len(tips) < 2:
        tips.append(texts.TIP_GREETING)
    return tips[:MAX_TIPS]


def preference_parts(p: Portrait) -> list[str]:
    """Preferred category, channel and store, in words."""
    tags = p.tags
    parts = [str(v) for v in (tags.get("preferred_category"), tags.get("preferred_channel")) if v]
    if tags.get("preferred_store"):
        store = tags["preferred_store"]
        parts.append(texts.PORTRAIT_PREFERRED_STORE.format(store=p.store_names.get(store, store)))
    return parts


def render(p: Portrait) -> str:
    tags, metrics = p.tags, p.metrics
    who = p.name or texts.PORTRAIT_WHO_UNKNOWN
    if p.phone:
        who += f"（{p.phone}）"
    who += " " + (texts.PORTRAIT_MEMBER.format(level=tags["level"]) if tags.get("level") else
                  texts.PORTRAIT_NOT_MEMBER if "is_member" not in tags else "")
    lines = [texts.PORTRAIT_TITLE.format(who=who.strip())]
    lifecycle = texts.PORTRAIT_LIFECYCLE.format(lifecycle=tags.get("lifecycle", ""))
    change = p.lifecycle_change
    if change is not None:
        lifecycle += texts.PORTRAIT_LIFECYCLE_SINCE.format(
            on=change.changed_on.isoformat(), old=change.old or texts.TAG_NONE, new=change.new or texts.TAG_NONE
        )
    if tags.get("rfm"):
        lifecycle += "｜" + texts.PORTRAIT_RFM.format(rfm=tags["rfm"])
    lines.append(lifecycle)
    if tags.get("purchase_power"):
        lines.append(texts.PORTRAIT_VALUE.format(
            power=tags["purchase_power"], wallet=tags.get("wallet_depth", ""),
            orientation=tags.get("price_orientation", ""),
        ))
    preferences = preference_parts(p)
    if preferences:
        lines.append(texts.PORTRAIT_PREFERENCES.format(parts="｜".join(preferences)))
    if tags.get("core_sku"):
        lines.append(texts.PORTRAIT_CORE_SKU.format(skus="、".join(p.sku_names.get(s, s) for s in tags["core_sku"])))
    if p.last_purchase is not None:
        last = p.last_purchase
        lines.append(texts.PORTRAIT_LAST_PURCHASE.format(
            on=last.paid_at.date().isoformat(), where=last.store or texts.CHANNEL_NAMES.get(last.channel, last.channel),
            amount=last.amount_fen / 100, orders=metrics.get("orders_365d", 0), total=metrics.get("amount_365d", 0),
        ))
    else:
        lines.append(texts.PORTRAIT_NO_PURCHASE)
    if p.coupons:
        lines.append(texts.PORTRAIT_COUPONS.format(coupons="、".join(
            texts.PORTRAIT_COUPON.format(name=c.name, until=f"{c.expires_on:%m-%d}") if c.expires_on
            else texts.PORTRAIT_COUPON_NO_EXPIRY.format(name=c.name)
            for c in p.coupons[:2]
        )))
    if p.browsing:
        lines.append(texts.PORTRAIT_BROWSING.format(items="、".join(p.browsing)))
    held = [p.guide_names.get(g, g) for g in tags.get("guides", [])]
    extra = []
    if held:
        extra.append(texts.PORTRAIT_GUIDES.format(guides="、".join(held)))
    if tags.get("source"):
        extra.append(texts.PORTRAIT_SOURCE.format(source=tags["source"]))
    if extra:
        lines.append("｜".join(extra))
    if p.labels:
        lines.append(texts.PORTRAIT_LABELS.format(labels="、".join(p.labels)))
    lines.append(texts.PORTRAIT_TIPS)
    lines += [texts.PORTRAIT_TIP_LINE.format(n=i, tip=tip) for i, tip in enumerate(talking_points(p), 1)]
    return "\n".join(lines)
