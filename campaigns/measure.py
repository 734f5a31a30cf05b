"""What a campaign achieved (issue 6 item 6): per wave and in total, by store and by guide, and
across channels, with the uplift over the control group and its 95 % confidence interval.

The aggregates come from the database (profile_store.campaign_effect, whose docstring defines
every count exactly); here they become rates and the two-proportion statistics:

- conversion rate of an arm = converted / n (None when n = 0);
- uplift = conversion of the treated (sent or delivered) − conversion of the control group;
- 95 % interval: uplift ± 1.96 · SE, SE unpooled = sqrt(p1(1−p1)/n1 + p2(1−p2)/n2);
- p-value: two-sided, pooled z-test: p = (x1 + x2)/(n1 + n2),
  z = (p1 − p2) / sqrt(p(1−p)(1/n1 + 1/n2)), p-value = erfc(|z| / √2); when that SE is 0
  (both arms converted none, or all) the rates are equal and the p-value is 1.
- With n = 0 on a side there is no uplift, no interval and no p-value: `Uplift.missing` says which
  side is empty ("treated", "control" or "both").
- Redemption rate = redeemed / coupons (None without coupons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.campaign_effect import (
    ArmTally,
    CampaignRef,
    CrossCell,
    EffectTallies,
    Tally,
    find_campaign,
    tally,
)
from profile_store.db import Database

Z_95 = 1.96
DEFAULT_TZ = "Asia/Shanghai"


class UnknownCampaign(LookupError):
    """No campaign has that name or id."""

    def __init__(self, campaign: str | int) -> None:
        super().__init__(f"no campaign named {campaign!r}")
        self.campaign = campaign


@dataclass(frozen=True)
class Uplift:
    """Treated minus control conversion, with its 95 % interval and two-sided p-value."""

    treated_rate: float | None
    control_rate: float | None
    uplift: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    missing: Literal["", "treated", "control", "both"] = ""

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < 0.05


def two_proportions(x1: int, n1: int, x2: int, n2: int, *, z: float = Z_95) -> Uplift:
    """Arm 1 (treated: x1 of n1 converted) against arm 2 (control: x2 of n2)."""
    p1 = x1 / n1 if n1 else None
    p2 = x2 / n2 if n2 else None
    if p1 is None or p2 is None:
        missing: Literal["treated", "control", "both"] = (
            "both" if p1 is None and p2 is None else "treated" if p1 is None else "control"
        )
        return Uplift(p1, p2, missing=missing)
    difference = p1 - p2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = math.erfc(abs(difference / se0) / math.sqrt(2)) if se0 > 0 else 1.0
    return Uplift(p1, p2, difference, difference - z * se, difference + z * se, p_value)


def proportion_interval(x: int, n: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """The normal-approximation interval of one arm's rate, p ± z·sqrt(p(1−p)/n), clipped to
    [0, 1] (for the chart's error bars); None when n = 0."""
    if not n:
        return None
    p = x / n
    half = z * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


@dataclass(frozen=True)
class Arm:
    """One arm of a group: persons measured, converted, converting orders and revenue."""

    n: int = 0
    converted: int = 0
    orders: int = 0
    revenue_fen: int = 0
    open: int = 0  # measured rows whose attribution window is not over by the end of T

    @property
    def rate(self) -> float | None:
        return self.converted / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return proportion_interval(self.converted, self.n)


@dataclass(frozen=True)
class Group:
    """A wave (`key` "0", "1", …), the total (""), a store or a guide (their id; `name` from the
    reference table). Message counts are rows; arm figures are distinct persons (see
    profile_store.campaign_effect)."""

    key: str
    name: str
    targeted: int
    held_out: int  # outcome control
    sent: int  # outcome sent or delivered
    delivered: int
    outcomes: dict[str, int]
    coupons: int
    redeemed: int
    treated: Arm
    control: Arm
    uplift: Uplift

    @property
    def redemption(self) -> float | None:
        return self.redeemed / self.coupons if self.coupons else None


@dataclass(frozen=True)
class Effect:
    campaign_id: int
    name: str
    kind: str
    status: str
    attribution_days: int
    as_of: date
    tz: str
    total: Group
    waves: tuple[Group, ...]
    stores: tuple[Group, ...]
    guides: tuple[Group, ...]
    cross: tuple[CrossCell, ...]
    first_sent: datetime | None = None  # aware UTC
    last_sent: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.total.targeted == 0

    @property
    def open(self) -> int:
        """Measured rows whose attribution window is still open: the figures may yet change."""
        return self.total.treated.open + self.total.control.open


async def effect(
    db_or_session: Database | AsyncSession, campaign_id: int | str, *, today: date, tz: str = DEFAULT_TZ
) -> Effect:
    """The effect of a campaign (its id, or its name) as of `today` (T), local times in `tz`.
    Raises UnknownCampaign when there is none."""
    if isinstance(db_or_session, Database):
        async with db_or_session.read() as session:
            return await _effect(session, campaign_id, today, tz)
    return await _effect(db_or_session, campaign_id, today, tz)


async def _effect(session: AsyncSession, campaign_id: int | str, today: date, tz: str) -> Effect:
    campaign = await find_campaign(session, campaign_id)
    if campaign is None:
        raise UnknownCampaign(campaign_id)
    return from_tallies(await tally(session, campaign, today=today, tz=tz))


def from_tallies(t: EffectTallies) -> Effect:
    c: CampaignRef = t.campaign
    return Effect(
        campaign_id=c.id,
        name=c.name,
        kind=c.kind,
        status=c.status,
        attribution_days=c.attribution_days,
        as_of=t.as_of,
        tz=t.tz,
        total=_group("", t.total),
        waves=tuple(_group(str(k), v) for k, v in sorted(t.waves.items())),
        stores=_ranked(t.stores),
        guides=_ranked(t.guides),
        cross=t.cross,
        first_sent=t.first_moment,
        last_sent=t.last_moment,
    )


def _ranked(groups: dict[str, Tally]) -> tuple[Group, ...]:
    """Named stores / guides first, most targeted first; the rows without one ("") last."""
    made = [_group(k, v) for k, v in groups.items()]
    return tuple(sorted(made, key=lambda g: (not g.key, -g.targeted, g.key)))


def _arm(a: ArmTally | None) -> Arm:
    if a is None:
        return Arm()
    return Arm(a.n, a.converted, a.orders, a.revenue_fen, a.open)


def _group(key: str, t: Tally) -> Group:
    outcomes = dict(sorted(t.outcomes.items()))
    treated, control = _arm(t.arms.get("treated")), _arm(t.arms.get("control"))
    return Group(
        key=key,
        name=t.name,
        targeted=sum(outcomes.values()),
        held_out=outcomes.get("control", 0),
        sent=outcomes.get("sent", 0) + outcomes.get("delivered", 0),
        delivered=outcomes.get("delivered", 0),
        outcomes=outcomes,
        coupons=t.coupons,
        redeemed=t.redeemed,
        treated=treated,
        control=control,
        uplift=two_proportions(treated.converted, treated.n, control.converted, control.n),
    )


__all__ = ["Arm", "Effect", "Group", "UnknownCampaign", "Uplift", "effect", "from_tallies", "proportion_interval",
           "two_proportions"]
