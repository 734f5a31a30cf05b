"""The rules of tags.md as pure functions: a person's facts as of T → metrics and tags.

No SQL here: `facts.py` gathers `PersonFacts` in the database, this module decides. Money is
integer fen and thresholds are compared exactly (fractions, never floats), so a value that
meets a threshold to the fen meets it. Every threshold is a field of `TagRules`; a retailer
changes it with `qianmian tags set` and the next refresh applies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

LEVELS = ("V0", "V1", "V2", "V3", "V4", "V5")
# Event types that show interest (lifecycle 兴趣).
INTEREST_TYPES = ("browse", "add_cart", "click", "message", "coupon_get")
CHANNEL_NAMES = {"pos": "门店", "miniapp": "小程序", "ecom": "电商", "oa_mall": "公众号商城"}
RFM_CLASSES = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}
YES = "是"


class TagRules(BaseModel):
    """Every threshold of tags.md, with its default. Money in yuan, windows in days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(default=365, ge=1, description="近一年窗口（天）")
    dormant_days: int = Field(default=730, ge=2, description="沉睡判定上限（天）：最后活跃在此窗口内、近一年外为沉睡")
    loyal_orders: int = Field(default=3, ge=1, description="忠诚：近一年订单数 ≥")
    loyal_amount: Decimal = Field(default=Decimal(2000), ge=0, description="忠诚：近一年消费额 ≥（元）")
    loyal_level: str = Field(default="V2", pattern=r"^V[0-5]$", description="忠诚：会员等级 ≥（且近一年有订单）")
    rfm_recency_days: int = Field(default=90, ge=0, description="RFM：R高 ⇔ 距最近购买天数 ≤")
    rfm_orders: int = Field(default=2, ge=1, description="RFM：F高 ⇔ 近一年订单数 ≥")
    rfm_amount: Decimal = Field(default=Decimal(1000), ge=0, description="RFM：M高 ⇔ 近一年消费额 ≥（元）")
    rfm_window_days: int = Field(default=730, ge=1, description="RFM 只给此窗口内有订单的人（天）")
    power_high: Decimal = Field(default=Decimal(500), ge=0, description="购买力高：客单价 ≥（元）")
    power_mid: Decimal = Field(default=Decimal(200), ge=0, description="购买力中：客单价 ≥（元）")
    wallet_deep: Decimal = Field(default=Decimal(1000), ge=0, description="钱包深：最大单笔 ≥（元）")
    wallet_mid: Decimal = Field(default=Decimal(300), ge=0, description="钱包中：最大单笔 ≥（元）")
    coupon_share: Decimal = Field(default=Decimal("0.5"), ge=0, le=1, description="价格导向：用券订单占比 ≥")
    discount_rate: Decimal = Field(default=Decimal("0.3"), ge=0, le=1, description="价格导向：整体折扣率 ≥")
    browse_days: int = Field(default=90, ge=1, description="浏览偏好窗口（天）")
    core_sku_orders: int = Field(default=2, ge=1, description="核心SKU：出现在至少几笔订单")
    core_sku_max: int = Field(default=3, ge=1, description="核心SKU：最多几个")

    @classmethod
    def from_stored(cls, stored: dict[str, str]) -> TagRules:
        """Defaults overridden by the settings table (unknown keys are ignored, not fatal: a
        setting of a newer version must not stop an older process)."""
        known = {k: v for k, v in stored.items() if k in cls.model_fields}
        return cls.model_validate(known)


@dataclass
class PersonFacts:
    """What the database knows of one person as of T (gathered by `facts.py`)."""

    # paid orders up to T
    orders_total: int = 0
    amount_total: int = 0  # fen
    last_paid: datetime | None = None
    paid_in_rfm_window: bool = False
    # paid orders of the window
    orders: int = 0
    amount: int = 0
    max_order: int | None = None
    with_coupon: int = 0
    list_amount: int = 0
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)  # channel → (orders, fen)
    pos_stores: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # store → (orders, last)
    categories: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # → (fen, last bought)
    skus: dict[str, int] = field(default_factory=dict)  # sku → distinct orders (only those ≥ min)
    # events up to T
    last_event: datetime | None = None
    events_in_window: int = 0
    interest_in_window: int = 0
    browsed: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # category → (n, last)
    following: bool = False
    guides: list[str] = field(default_factory=list)
    source: str | None = None
    coupons: list[Coupon] = field(default_factory=list)
    # member records registered up to T (or without register_time)
    members: list[MemberRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Coupon:
    got_at: datetime
    valid_days: int | None  # None: card unknown → never expires
    consumed: bool
    deleted: bool


@dataclass(frozen=True)
class MemberRecord:
    register_time: datetime | None
    row_seq: int
    level: str | None
    city: str
    gender: str | None
    birthday: date | None


@dataclass
class Computed:
    """Metrics and tags as exported (runtime.md's profile line): money in yuan."""

    metrics: dict[str, Any]
    tags: dict[str, Any]
    # exact figures for the profile table (fen)
    amount_fen: int = 0
    amount_total_fen: int = 0
    max_order_fen: int | None = None
    aov_fen: int | None = None


def window_start(as_of: date, days: int) -> date:
    """First local date of "the last N days" (T-N+1 .. T)."""
    return as_of - timedelta(days=days - 1)


def yuan(value_fen: int | Fraction) -> float:
    return round(float(value_fen) / 100, 2)


@dataclass(frozen=True, slots=True)
class Limits:
    """A TagRules as the rules use it: money in fen, shares as exact fractions (made once per
    rules object; pydantic attribute access is too slow for a million persons)."""

    window_days: int
    dormant_days: int
    loyal_orders: int
    loyal_amount: Fraction
    loyal_level: int  # index in LEVELS
    rfm_recency_days: int
    rfm_orders: int
    rfm_amount: Fraction
    rfm_window_days: int
    power_high: Fraction
    power_mid: Fraction
    wallet_deep: Fraction
    wallet_mid: Fraction
    coupon_share: Fraction
    discount_rate: Fraction
    core_sku_max: int


@lru_cache(maxsize=32)
def limits(rules: TagRules) -> Limits:
    def fen(value: Decimal) -> Fraction:
        return Fraction(value) * 100

    return Limits(
        window_days=rules.window_days, dormant_days=rules.dormant_days, loyal_orders=rules.loyal_orders,
        loyal_amount=fen(rules.loyal_amount), loyal_level=LEVELS.index(rules.loyal_level),
        rfm_recency_days=rules.rfm_recency_days, rfm_orders=rules.rfm_orders, rfm_amount=fen(rules.rfm_amount),
        rfm_window_days=rules.rfm_window_days, power_high=fen(rules.power_high), power_mid=fen(rules.power_mid),
        wallet_deep=fen(rules.wallet_deep), wallet_mid=fen(rules.wallet_mid),
        coupon_share=Fraction(rules.coupon_share), discount_rate=Fraction(rules.discount_rate),
        core_sku_max=rules.core_sku_max,
    )


def compute(facts: PersonFacts, as_of: date, rules: TagRules) -> Computed:
    lim = limits(rules)
    metrics: dict[str, Any] = {
        "orders_365d": facts.orders,
        "amount_365d": yuan(facts.amount),
        "orders_total": facts.orders_total,
        "amount_total": yuan(facts.amount_total),
    }
    tags: dict[str, Any] = {}
    aov: Fraction | None = Fraction(facts.amount, facts.orders) if facts.orders else None
    aov_fen: int | None = None
    if aov is not None:
        metrics["aov_365d"] = yuan(aov)
        aov_fen = int((aov + Fraction(1, 2)) // 1)
        metrics["max_order_365d"] = yuan(facts.max_order or 0)
    recency: int | None = None
    if facts.last_paid is not None:
        recency = (as_of - facts.last_paid.date()).days
        metrics["recency_days"] = recency
    registrations = [m.register_time.date() for m in facts.members if m.register_time is not None]
    active_dates = [d.date() for d in (facts.last_paid, facts.last_event) if d is not None] + registrations
    last_active = max(active_dates) if active_dates else None
    if last_active is not None:
        metrics["last_active_date"] = last_active.isoformat()

    window_first = window_start(as_of, lim.window_days)
    tags["lifecycle"] = _lifecycle(facts, as_of, lim, registrations, last_active)

    if facts.paid_in_rfm_window:
        r = recency is not None and recency <= lim.rfm_recency_days
        f = facts.orders >= lim.rfm_orders
        m = facts.amount >= lim.rfm_amount
        tags["rfm"] = RFM_CLASSES[(r, f, m)]
    if aov is not None:
        tags["purchase_power"] = _grade(aov, lim.power_high, lim.power_mid, ("高", "中", "低"))
        top = facts.max_order or 0
        tags["wallet_depth"] = _grade(top, lim.wallet_deep, lim.wallet_mid, ("深", "中", "浅"))
        coupon_heavy = Fraction(facts.with_coupon, facts.orders) >= lim.coupon_share
        discounted = facts.list_amount > 0 and 1 - Fraction(facts.amount, facts.list_amount) >= Fraction(
            lim.discount_rate
        )
        tags["price_orientation"] = "价格导向" if coupon_heavy or discounted else "品质导向"
    if facts.categories:
        tags["preferred_category"] = _top(facts.categories)
    if facts.browsed:
        tags["browse_preference"] = _top(facts.browsed)
    if facts.channels:
        # most orders, then larger amount, then channel code
        code = min(facts.channels, key=lambda c: (-facts.channels[c][0], -facts.channels[c][1], c))
        tags["preferred_channel"] = CHANNEL_NAMES.get(code, code)
    if facts.pos_stores:
        tags["preferred_store"] = _top(facts.pos_stores)
    if facts.skus:
        ranked = sorted(facts.skus, key=lambda s: (-facts.skus[s], s))
        tags["core_sku"] = ranked[: lim.core_sku_max]
    if any(outstanding(c, as_of) for c in facts.coupons):
        tags["coupon_outstanding"] = YES
    recent = [c for c in facts.coupons if c.got_at.date() >= window_first]
    if recent:
        tags["coupon_redemption_rate"] = round(sum(c.consumed for c in recent) / len(recent), 4)
    if facts.members:
        tags["is_member"] = YES
    if facts.following:
        tags["oa_follower"] = YES
    if facts.guides:
        tags["wecom_contact"] = YES
        tags["guides"] = sorted(facts.guides)
    if facts.source:
        tags["source"] = facts.source
    tags.update(_member_attributes(facts.members))
    return Computed(metrics, tags, facts.amount, facts.amount_total, facts.max_order, aov_fen)


def _lifecycle(
    facts: PersonFacts, as_of: date, lim: Limits, registrations: list[date], last_active: date | None
) -> str:
    window_first = window_start(as_of, lim.window_days)
    level = _highest_level(facts.members)
    loyal_level = level is not None and LEVELS.index(level) >= lim.loyal_level
    if (
        facts.orders >= lim.loyal_orders
        or facts.amount >= lim.loyal_amount
        or (loyal_level and facts.orders >= 1)
    ):
        return "忠诚"
    if facts.orders >= 1:
        return "购买"
    if registrations and min(registrations) >= window_first and facts.orders_total == 0:
        return "注册"
    if facts.interest_in_window:
        return "兴趣"
    if facts.events_in_window or any(d >= window_first for d in registrations):
        return "认知"
    if last_active is not None and window_start(as_of, lim.dormant_days) <= last_active < window_first:
        return "沉睡"
    return "流失"


def _grade(value: Fraction | int, high: Fraction, mid: Fraction, names: tuple[str, str, str]) -> str:
    return names[0] if value >= high else names[1] if value >= mid else names[2]


def _top(counts: dict[str, tuple[int, datetime]]) -> str:
    """Largest count; ties → the most recent; then by name (Unicode order)."""
    best = max(counts.values())
    return min(k for k, v in counts.items() if v == best)


def outstanding(coupon: Coupon, as_of: date) -> bool:
    """tags.md: gotten, not consumed, not deleted and not expired (get date + valid_days ≥ T)."""
    if coupon.consumed or coupon.deleted:
        return False
    if coupon.valid_days is None:
        return True
    return coupon.got_at.date() + timedelta(days=coupon.valid_days) >= as_of


def _highest_level(members: list[MemberRecord]) -> str | None:
    levels = [m.level for m in members if m.level in LEVELS]
    return max(levels, key=LEVELS.index) if levels else None


def _member_attributes(members: list[MemberRecord]) -> dict[str, Any]:
    """From the most recently registered record (ties: the later row; no register_time counts
    as the oldest), except `level`, the highest of all."""
    if not members:
        return {}
    latest = max(members, key=lambda m: (m.register_time is not None, m.register_time or datetime.min, m.row_seq))
    found: dict[str, Any] = {}
    level = _highest_level(members)
    if level:
        found["level"] = level
    if latest.city:
        found["city"] = latest.city
    if latest.gender:
        found["gender"] = latest.gender
    if latest.birthday:
        found["birthday_month"] = latest.birthday.month
    return found


def dumps_list(values: list[str] | None) -> str | None:
    return json.dumps(values, ensure_ascii=False) if values else None
