"""Journeys (issue 6 item 3): automated, event-triggered paths. Each journey is a `campaign` row
of kind `journey` (created on first use, off = status `paused`; on = `running`), and each entry
a `campaign_target` row the campaign sender sends like any other (it re-checks caps, opt-outs
and quiet hours at the send). `run_journeys` is what a scheduled job calls every few minutes.

Triggers (one set-based statement each, profile_store.journeys; `since` = the later of the
time the journey was last turned on and its last run minus `grace`, so a callback recorded a
little late is still seen; a re-run writes nothing twice):

- 新粉欢迎旅程 (welcome): a `follow` event in (since, now] → step 0 now (welcome + 新人券);
  step 1 once the follow is ≥ 1 day old, step 2 once ≥ 3 days old — each only if step 0 was
  sent (or held as control) and the person has no paid order after the follow, up to now.
  Step 0 answers the customer's own action (they just followed): a service message
  (campaign_target.service), held back by opt-outs, quiet hours and WeCom's quota like any row
  but by no frequency cap, and counted for none; the reminders are marketing. So a new
  follower gets all three within the default cap of 2 per 7 days, and one who already had 2
  marketing messages that week gets the welcome alone.
- 加购提醒旅程 (cart): an `add_cart` of a sku at least `cart_hours` (24) hours old — occurred in
  (since − 24 h, now − 24 h] — with no paid order containing that sku after it, up to now.
- 券到期提醒旅程 (coupon): a coupon gotten, not consumed nor deleted (by its code), of a card
  with valid_days > 0, whose last valid day (local get date + valid_days, tags.md) is 1 to
  `coupon_days` (3) days after today: in exactly 3 days, or fewer when a run was missed (4: not
  yet). One reminder per person and expiry date.
- 生日月旅程 (birthday): profile.birthday_month = this month → a greeting at the first run of
  the month (the 1st, or when turned on); once per person and year.
- 沉睡唤醒旅程 (dormant): profile.lifecycle = 沉睡 and no row of this journey (any outcome)
  due in the last `dormant_days` (90) days.

Each entry then goes through the planner's own decision (campaigns.plan / profile_store.campaigns):
control group by the stable hash bucket("<journey id>:", person) < control_pct × 100 (10 %:
journeys are measured like campaigns), opt-outs, channel by reachability (wecom → oa_custom →
oa_template → sms), the frequency cap across every campaign and journey (2 per 7 days; service
messages aside), and a due time of now moved out of the quiet hours. Wave keys: see
profile_store.journeys.

Two processes: a whole run holds the planner's advisory lock (one transaction), so runs and
campaign plans are serialised and see each other's rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from campaigns.plan import PlanRules, decision
from nlp.segment import Everyone, to_json
from profile_store import campaigns as store
from profile_store import journeys as jstore
from profile_store.db import Database
from profile_store.models import Campaign


@dataclass(frozen=True)
class JourneySpec:
    key: str
    name: str
    reading: str
    steps: tuple[str, ...]  # default content of each step (step 0, 1, …)


JOURNEYS: dict[str, JourneySpec] = {
    "welcome": JourneySpec(
        "welcome", "新粉欢迎旅程", "新关注公众号的粉丝：欢迎+新人券，T+1、T+3未购买再提醒",
        (
            "欢迎关注！送您一张新人券，到店或线上下单都能用。",
            "您的新人券还没用哦，今天下单立享优惠。",
            "新人券即将失效，别错过首单优惠～",
        ),
    ),
    "cart": JourneySpec(
        "cart", "加购提醒旅程", "加购后24小时内未购买该商品的顾客",
        ("您加入购物车的商品还在等您，库存有限，欢迎回来下单～",),
    ),
    "coupon": JourneySpec(
        "coupon", "券到期提醒旅程", "领取的优惠券3天内到期且未使用的顾客",
        ("您的优惠券3天后到期，记得尽快使用哦～",),
    ),
    "birthday": JourneySpec(
        "birthday", "生日月旅程", "本月生日的顾客（每年一次）",
        ("生日快乐！本月到店消费享生日专属礼遇，祝您天天开心～",),
    ),
    "dormant": JourneySpec(
        "dormant", "沉睡唤醒旅程", "生命周期为沉睡的顾客（每90天最多一次）",
        ("好久不见！我们为您准备了回归礼，欢迎回来看看新品～",),
    ),
}
BY_NAME = {spec.name: spec for spec in JOURNEYS.values()}
WELCOME_STEP_DAYS = (0, 1, 3)  # step → days after the follow
# A service message is held back by no frequency cap: the planner's cap made unreachable.
NO_CAP = 2**31 - 1


@dataclass(frozen=True)
class JourneyRules:
    """Settings of the journeys (besides the planner's protection rules in `plan`)."""

    plan: PlanRules = field(default_factory=PlanRules)
    cart_hours: float = 24.0
    coupon_days: int = 3
    dormant_days: int = 90
    control_pct: float = 10.0  # for journeys created from now on
    grace: timedelta = timedelta(hours=6)
    welcome_card_id: str = ""  # the 新人券 card sent with step 0 of the welcome

    @classmethod
    def from_settings(cls, settings: Any) -> JourneyRules:
        return cls(
            plan=PlanRules.from_settings(settings),
            cart_hours=float(getattr(settings, "journey_cart_hours", 24.0)),
            coupon_days=int(getattr(settings, "journey_coupon_days", 3)),
            dormant_days=int(getattr(settings, "journey_dormant_days", 90)),
            control_pct=float(getattr(settings, "journey_control_pct", 10.0)),
            welcome_card_id=str(getattr(settings, "journey_welcome_card_id", "") or ""),
        )


def variant_name(step: int) -> str:
    return f"step{step}"


def default_variants(spec: JourneySpec, rules: JourneyRules) -> str:
    items = []
    for step, content in enumerate(spec.steps):
        gift = spec.key == "welcome" and step == 0 and rules.welcome_card_id
        coupon = {"card_id": rules.welcome_card_id} if gift else None
        items.append({"name": variant_name(step), "when": None, "content": content, "coupon": coupon})
    return json.dumps(items, ensure_ascii=False)


def step_contents(variants: str) -> list[str]:
    return [str(v.get("content") or "") for v in json.loads(variants or "[]") if isinstance(v, dict)]


def with_content(variants: str, step: int, content: str) -> str:
    items = json.loads(variants or "[]")
    if not 0 <= step < len(items):
        raise ValueError(f"no step {step + 1}")
    items[step]["content"] = content
    return json.dumps(items, ensure_ascii=False)


async def ensure_journeys(session: Any, *, now: datetime, rules: JourneyRules) -> dict[str, jstore.JourneyRow]:
    """Every journey's row (created, off, on first use), by key."""
    for spec in JOURNEYS.values():
        await jstore.ensure_journey(
            session, spec.name, variants=default_variants(spec, rules), segment=to_json(Everyone()),
            reading=spec.reading, control_pct=rules.control_pct, now=now,
        )
    rows = await jstore.journeys(session, [s.name for s in JOURNEYS.values()])
    return {spec.key: rows[spec.name] for spec in JOURNEYS.values()}


def _rules(rules: JourneyRules | None) -> JourneyRules:
    if rules is not None:
        return rules
    from bot.settings import Settings

    return JourneyRules.from_settings(Settings())  # type: ignore[call-arg]  # filled from the env


async def _enter(
    session: Any, row: jstore.JourneyRow, step: int, now: datetime, rules: PlanRules, *, service: bool = False
) -> int:
    """The staged candidates (profile_store.journeys wave table) through the planner's decision;
    `service` rows (the welcome) are capped by nothing and count for no cap."""
    campaign = Campaign(
        id=row.campaign_id, name=row.name, kind="journey", segment="{}", channel=row.channel,
        control_pct=row.control_pct, send_at=None,
    )
    # wave -1: the cap counts every other row (a journey's waves differ per person)
    d = replace(decision(campaign, 0, now, rules), wave=-1)
    if service:
        d = replace(d, cap_messages=NO_CAP)
    await store.stage_segment(
        session, jstore.wave_persons(), [(variant_name(step), None)], hash_key=d.hash_key, control_cut=d.control_cut
    )
    await store.decide(session, d)
    written = await jstore.write_entries(session, row.campaign_id, d.due_at, service=service)
    await store.clear_staging(session)
    return written


async def run_journeys(db: Database, *, now: datetime, rules: JourneyRules | None = None) -> dict[str, int]:
    """One pass over every journey that is on: journey name → rows written (entries and later
    steps). Journeys that are off enter nobody (0)."""
    rules = _rules(rules)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    zone = ZoneInfo(rules.plan.tz)

    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone).replace(tzinfo=None)

    now_local = local(now)
    today = now_local.date()
    result: dict[str, int] = {}
    async with db.transaction() as session:
        await store.lock_planning(session)
        rows = await ensure_journeys(session, now=now, rules=rules)
        for key, spec in JOURNEYS.items():
            row = rows[key]
            if row.status != "running":
                result[spec.name] = 0
                continue
            last = await jstore.last_run(session, spec.name)
            on_at = row.turned_on_at or now - rules.grace
            since = on_at if last is None else max(on_at, last - rules.grace)
            written = 0
            cid = row.campaign_id
            if key == "welcome":
                if await jstore.stage_welcome(session, cid, since_local=local(since), now_local=now_local):
                    written += await _enter(session, row, 0, now, rules.plan, service=True)
                for step in (1, 2):
                    days = timedelta(days=WELCOME_STEP_DAYS[step])
                    if await jstore.stage_welcome_step(
                        session, cid, step, due_local=now_local - days, now_local=now_local,
                        rows_since=since - days - timedelta(days=1),
                    ):
                        written += await _enter(session, row, step, now, rules.plan)
            elif key == "cart":
                hours = timedelta(hours=rules.cart_hours)
                if await jstore.stage_cart(
                    session, cid, since_local=local(since) - hours, cutoff_local=now_local - hours, now_local=now_local
                ):
                    written += await _enter(session, row, 0, now, rules.plan)
            elif key == "coupon":
                if await jstore.stage_coupon(
                    session, cid, first_day=today + timedelta(days=1),
                    last_day=today + timedelta(days=rules.coupon_days), now_local=now_local,
                ):
                    written += await _enter(session, row, 0, now, rules.plan)
            elif key == "birthday":
                if await jstore.stage_birthday(session, cid, year=today.year, month=today.month):
                    written += await _enter(session, row, 0, now, rules.plan)
            elif key == "dormant":
                if await jstore.stage_dormant(session, cid, day=today, since=now - timedelta(days=rules.dormant_days)):
                    written += await _enter(session, row, 0, now, rules.plan)
            await jstore.mark_run(session, spec.name, now, f"written {written}")
            result[spec.name] = written
    return result


# ---------------------------------------------------------------------------------- switches and content


@dataclass(frozen=True)
class JourneyInfo:
    key: str
    name: str
    on: bool
    entries: int
    sent: int
    steps: tuple[str, ...]


async def journey_list(db: Database, *, now: datetime, rules: JourneyRules | None = None) -> list[JourneyInfo]:
    rules = _rules(rules)
    async with db.transaction() as session:
        rows = await ensure_journeys(session, now=now, rules=rules)
    return [
        JourneyInfo(key, r.name, r.status == "running", r.entries, r.sent, tuple(step_contents(r.variants)))
        for key, r in rows.items()
    ]


async def switch(
    session: Any, key: str, *, on: bool, by: str, now: datetime, rules: JourneyRules | None = None
) -> tuple[bool, int]:
    """Turn a journey on or off, in the caller's transaction: (whether its state changed, planned
    rows ended by turning it off)."""
    rules = _rules(rules)
    rows = await ensure_journeys(session, now=now, rules=rules)
    row = rows[key]
    if (row.status == "running") == on:
        return False, 0
    return True, await jstore.set_status(session, row.campaign_id, on=on, by=by, at=now)


async def set_content(
    session: Any, key: str, step: int, content: str, *, now: datetime, rules: JourneyRules | None = None
) -> None:
    """Set one step's content (step 0 = the first message), in the caller's transaction."""
    rules = _rules(rules)
    rows = await ensure_journeys(session, now=now, rules=rules)
    row = rows[key]
    await jstore.set_variants(session, row.campaign_id, with_content(row.variants, step, content))


__all__ = [
    "BY_NAME",
    "JOURNEYS",
    "JourneyInfo",
    "JourneyRules",
    "JourneySpec",
    "journey_list",
    "run_journeys",
    "set_content",
    "step_contents",
    "switch",
    "variant_name",
]
