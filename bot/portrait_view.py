"""The portrait page as HTML: a `Portrait` (with details) turned into what the Jinja templates
show — facts in the portrait's own words (bot/texts.py, bot/portrait_text.py), the spending chart
as inline SVG geometry computed here, the order timeline, coupons and talking points.

Server-side only: no JavaScript and nothing fetched from elsewhere, so the page opens on any phone
in WeCom's browser and behind any firewall. The Portrait's name and phone are masked by
`portrait()`; nothing here ever asks for personal data in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot import texts
from bot.portrait_text import preference_parts, talking_points
from profile_store.portrait import CategorySpend, Portrait

# Chart geometry (SVG user units; the SVG scales to the phone's width).
CHART_WIDTH = 340
LABEL_RIGHT = 80  # category names end here (right-aligned)
BAR_LEFT = 88
BAR_MAX = 160  # the largest category's bar; the amount is written after each bar
ROW_HEIGHT = 30
BAR_HEIGHT = 18
LABEL_CHARS = 6


@dataclass(frozen=True)
class Fact:
    name: str
    value: str


@dataclass(frozen=True)
class Bar:
    category: str
    amount_fen: int
    amount: str  # in words: "1234.50 元"
    y: int
    width: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    label_right: int
    bar_left: int
    bar_height: int


@dataclass(frozen=True)
class TimelineRow:
    on: str
    channel: str
    store: str
    amount: str
    items: str


@dataclass(frozen=True)
class CouponRow:
    name: str
    until: str


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape everything: names, labels and products come from retailers' files and customers.
    return Environment(
        loader=PackageLoader("bot", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def amount(fen: int) -> str:
    return texts.PAGE_AMOUNT.format(amount=fen / 100)


def chart(spend: list[CategorySpend]) -> Chart:
    """Horizontal bars, largest first, widths proportional to the largest amount."""
    top = max((c.amount_fen for c in spend), default=0)
    bars = [
        Bar(
            category=(c.category or texts.PAGE_CATEGORY_OTHER)[:LABEL_CHARS],
            amount_fen=c.amount_fen,
            amount=amount(c.amount_fen),
            y=i * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) // 2,
            # A sliver for tiny (or zero) amounts, so every category shows a bar.
            width=round(max(2.0, BAR_MAX * c.amount_fen / top) if top > 0 else 2.0, 1),
        )
        for i, c in enumerate(spend)
    ]
    return Chart(bars, CHART_WIDTH, max(1, len(bars)) * ROW_HEIGHT, LABEL_RIGHT, BAR_LEFT, BAR_HEIGHT)


def facts(p: Portrait) -> list[Fact]:
    """The tags in words, in the order a guide reads them; absent tags are left out."""
    tags, names = p.tags, texts.TAG_NAMES
    lifecycle = str(tags.get("lifecycle", ""))
    if p.lifecycle_change is not None:
        change = p.lifecycle_change
        lifecycle += texts.PORTRAIT_LIFECYCLE_SINCE.format(
            on=change.changed_on.isoformat(), old=change.old or texts.TAG_NONE, new=change.new or texts.TAG_NONE
        )
    rows = [Fact(names["lifecycle"], lifecycle)]
    for key in ("rfm", "purchase_power", "wallet_depth", "price_orientation"):
        if tags.get(key):
            rows.append(Fact(names[key], str(tags[key])))
    preferences = preference_parts(p)
    if preferences:
        rows.append(Fact(texts.PAGE_PREFERENCES, "｜".join(preferences)))
    if tags.get("browse_preference"):
        rows.append(Fact(names["browse_preference"], str(tags["browse_preference"])))
    if tags.get("core_sku"):
        rows.append(Fact(names["core_sku"], "、".join(p.sku_names.get(s, s) for s in tags["core_sku"])))
    if p.browsing:
        rows.append(Fact(texts.PAGE_BROWSING, "、".join(p.browsing)))
    if tags.get("guides"):
        rows.append(Fact(names["guides"], "、".join(p.guide_names.get(g, g) for g in tags["guides"])))
    for key in ("source", "city"):
        if tags.get(key):
            rows.append(Fact(names[key], str(tags[key])))
    if tags.get("coupon_redemption_rate") is not None:
        rows.append(Fact(names["coupon_redemption_rate"], f"{float(tags['coupon_redemption_rate']):.0%}"))
    return rows


def last_purchase(p: Portrait) -> str:
    if p.last_purchase is None:
        return texts.PORTRAIT_NO_PURCHASE
    last = p.last_purchase
    return texts.PORTRAIT_LAST_PURCHASE.format(
        on=last.paid_at.date().isoformat(),
        where=last.store or texts.CHANNEL_NAMES.get(last.channel, last.channel),
        amount=last.amount_fen / 100,
        orders=p.metrics.get("orders_365d", 0),
        total=p.metrics.get("amount_365d", 0),
    )


def timeline(p: Portrait) -> list[TimelineRow]:
    return [
        TimelineRow(
            on=o.paid_at.date().isoformat(),
            channel=texts.CHANNEL_NAMES.get(o.channel, o.channel),
            store=o.store,
            amount=amount(o.amount_fen),
            items="、".join(texts.PAGE_ITEM.format(name=name, qty=qty) for name, qty in o.items),
        )
        for o in p.timeline
    ]


def coupons(p: Portrait) -> list[CouponRow]:
    return [
        CouponRow(
            c.name,
            texts.PAGE_COUPON_UNTIL.format(until=c.expires_on.isoformat()) if c.expires_on
            else texts.PAGE_COUPON_NO_EXPIRY,
        )
        for c in p.coupons
    ]


def render_portrait(p: Portrait) -> str:
    who = p.name or texts.PORTRAIT_WHO_UNKNOWN
    level = p.tags.get("level")
    return _environment().get_template("portrait.html").render(
        t=texts,
        title=texts.PAGE_HEAD_TITLE.format(who=who),
        who=who,
        phone=p.phone,  # masked by portrait()
        membership=texts.PORTRAIT_MEMBER.format(level=level) if level else texts.PORTRAIT_NOT_MEMBER,
        lifecycle=str(p.tags.get("lifecycle", "")),
        facts=facts(p),
        labels=p.labels,
        last_purchase=last_purchase(p),
        chart=chart(p.category_spend),
        timeline=timeline(p),
        coupons=coupons(p),
        tips=talking_points(p),
        as_of=texts.PAGE_AS_OF.format(as_of=p.as_of.isoformat()),
    )


def render_refusal(message: str, hint: str = "") -> str:
    return _environment().get_template("refused.html").render(
        t=texts, title=texts.PAGE_REFUSED_TITLE, message=message, hint=hint
    )
