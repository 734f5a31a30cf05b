"""The campaign planner: who of a campaign's segment gets which message, through which channel,
when — or why not. One `campaign_target` row per (campaign, wave, person), written set-based
(profile_store.campaigns holds the SQL; nothing here loops over persons).

Rules, in this precedence, for each person of the wave:

1. **control**: `bucket(person) < control_pct × 100`, bucket = first 8 hex digits of
   md5("<campaign id>:<person_id>") mod 10 000 — the same on SQLite and PostgreSQL, and the same
   for a person in every plan and wave of a campaign. A draft previewed before it has an id
   hashes with id 0: its control *count* is a fair estimate, its persons are not the final ones.
2. **opted_out**: an opt-out of channel `all`, or (the person is reachable by some channel the
   campaign allows and) an opt-out for every such channel (`oa` covers oa_custom and oa_template).
3. **unreachable**: no channel the campaign allows reaches the person.
4. **capped**: the person already has `cap_messages` (2) or more other marketing rows within
   `cap_days` (7) days of this send, either side — sent (`sent_at`), or not sent yet and still to
   be (planned or in flight, by `due_at`; not held back, failed or expired), of any campaign or
   journey (this campaign wave's own rows aside). |t − due| < 7 days: a message
   exactly 7 × 24 h away no longer counts ("the 8th day frees it"). Also capped: a person whose
   only channels left are WeCom with its monthly quota used up (WeCom's own cap).
5. **planned**, through the person's preferred lane when the campaign allows it, it reaches the
   person and they have not opted out of it — by tags.md 偏好渠道: 门店 → `wecom` (their guide),
   小程序 / 公众号商城 → the official account (`oa_custom`, else `oa_template`), 电商 → `sms` —
   otherwise (no preference, or that lane closed) through the first channel, in this order, that
   the campaign allows (any | wecom | oa | sms), reaches the person and is not opted out:
   - `wecom`: some guide holds the person (the latest `add_contact` event, up to now, whose
     guide is still in profile.guides: that guide sends) and a non-shared external_userid node is
     known, and WeCom's per-customer quota (tencent.md: as many a month as the month has days)
     is not used up: other `wecom` rows sent, or still to be sent and due, in the due date's
     local calendar month, fewer than its days;
   - `oa_custom`: a `message` event with appid and openid within the 48 hours before the due
     time (and up to now) — the customer-service window must still be open at the send;
   - `oa_template`: profile.oa_follower = 是;
   - `sms`: a non-shared `phone` identity node.

Due time: the campaign's `send_at` (for wave k: plus `after_days`), or now if that is past or
unset, moved out of the quiet hours (local time, default 21:00–09:00, start included, end
excluded: 20:59 stays, 21:00 and 02:00 wait for 09:00, 09:00 stays). All rows of a wave, held
ones included, carry that due time (measurement compares the control group from it).

Variants (千人千面): the first variant whose `when` segment holds the person; a variant with
`when` null holds everyone left; no variants → one variant "default". Persons no variant holds
are not targeted (counted as `no_variant`, outside `targeted`).

Later waves (`plan_wave`, planned when due): the wave-0 persons that were sent a message plus
the wave-0 control group; with `only_not_bought`, only those without a paid order after their
wave-0 send (control: after the wave-0 due time). Same rules, their wave-0 variant.

Planning twice writes nothing new for persons already planned (primary key, ON CONFLICT DO
NOTHING); the report then counts the rows stored (`written` says how many this call added;
`wecom_quota_exhausted` is as evaluated by this call). Plans are serialised by an advisory lock
on PostgreSQL (SQLite has one writer anyway), so overlapping campaigns see each other's rows.
A row of another campaign counts for the cap and the quota whatever that campaign's status:
cancelling a campaign must end its planned rows (the dispatcher's side).
"""

from __future__ import annotations

import calendar
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nlp.segment import Segment, from_json
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.models import Campaign
from profile_store.segments.sql import compile_segment
from profile_store.times import utc as _aware

CHANNELS_ALLOWED = {"any": ("wecom", "oa", "sms"), "wecom": ("wecom",), "oa": ("oa",), "sms": ("sms",)}
OA_CUSTOM_WINDOW = timedelta(hours=48)
DEFAULT_VARIANT = "default"


@dataclass(frozen=True)
class PlanRules:
    """The customer's protection (settings QIANMIAN_CAP_MESSAGES, _CAP_DAYS, _QUIET_HOURS, _TZ)."""

    cap_messages: int = 2
    cap_days: int = 7
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(9, 0)
    tz: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, settings: Any) -> PlanRules:
        start, end = parse_quiet_hours(settings.quiet_hours)
        return cls(settings.cap_messages, settings.cap_days, start, end, settings.tz)


def parse_quiet_hours(value: str) -> tuple[time | None, time | None]:
    """"21:00-09:00" → (21:00, 09:00); "off" → (None, None)."""
    if value.strip().lower() == "off":
        return None, None
    start, _, end = value.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def out_of_quiet_hours(moment: datetime, rules: PlanRules) -> datetime:
    """The first time at or after `moment` (aware) outside the quiet hours, as aware UTC."""
    moment = _aware(moment)
    start, end = rules.quiet_start, rules.quiet_end
    if start is None or end is None or start == end:
        return moment.astimezone(UTC)
    zone = ZoneInfo(rules.tz)
    local = moment.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    day = local.date()
    if start > end:  # over midnight: [start, 24:00) ∪ [00:00, end)
        if t >= start:
            return datetime.combine(day + timedelta(days=1), end, zone).astimezone(UTC)
        if t < end:
            return datetime.combine(day, end, zone).astimezone(UTC)
    elif start <= t < end:
        return datetime.combine(day, end, zone).astimezone(UTC)
    return moment.astimezone(UTC)


@dataclass
class PlanReport:
    campaign_id: int | None
    wave: int
    due_at: datetime | None
    targeted: int = 0
    control: int = 0
    opted_out: int = 0
    unreachable: int = 0
    capped: int = 0
    planned: int = 0  # messages to send (for a stored plan: planned or already dispatched)
    by_channel: dict[str, int] = field(default_factory=dict)  # planned messages per channel
    by_variant: dict[str, int] = field(default_factory=dict)  # targeted persons per variant
    planned_by_variant: dict[str, int] = field(default_factory=dict)
    wecom_quota_exhausted: int = 0  # non-control persons WeCom would have reached but for its quota
    no_variant: int = 0  # persons of the segment no variant holds (not targeted)
    written: int = 0  # rows this call wrote (0 for a preview, and for a plan already made)
    preview: bool = False

    @property
    def adds_up(self) -> bool:
        return self.targeted == self.planned + self.capped + self.opted_out + self.control + self.unreachable


def _segment(value: Any) -> Segment:
    return from_json(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def variants_of(campaign: Campaign) -> list[tuple[str, Segment | None]]:
    """(name, when) of the campaign's variants, in order; up to the first without `when`."""
    raw = json.loads(campaign.variants or "[]")
    if not raw:
        return [(DEFAULT_VARIANT, None)]
    found: list[tuple[str, Segment | None]] = []
    for i, v in enumerate(raw):
        name = str(v.get("name") or f"v{i + 1}")
        when = v.get("when")
        found.append((name, None if when in (None, "", {}) else _segment(when)))
        if found[-1][1] is None:
            break
    return found


def wave_spec(campaign: Campaign, wave: int) -> dict[str, Any]:
    waves = json.loads(campaign.waves or "[]") or [{"wave": 0, "after_days": 0, "only_not_bought": False}]
    for spec in waves:
        if int(spec.get("wave", 0)) == wave:
            return dict(spec)
    if wave == 0:
        return {"wave": 0, "after_days": 0, "only_not_bought": False}
    raise ValueError(f"campaign {campaign.name!r} has no wave {wave}")


def due_time(campaign: Campaign, wave: int, now: datetime, rules: PlanRules) -> datetime:
    spec = wave_spec(campaign, wave)
    base = _aware(campaign.send_at) if campaign.send_at is not None else _aware(now)
    base = max(base + timedelta(days=float(spec.get("after_days", 0) or 0)), _aware(now))
    return out_of_quiet_hours(base, rules)


def decision(campaign: Campaign, wave: int, now: datetime, rules: PlanRules) -> store.Decision:
    allowed = CHANNELS_ALLOWED.get(campaign.channel or "any")
    if allowed is None:
        raise ValueError(f"campaign channel must be one of {sorted(CHANNELS_ALLOWED)}, not {campaign.channel!r}")
    zone = ZoneInfo(rules.tz)
    due = due_time(campaign, wave, now, rules)
    due_local = due.astimezone(zone)
    first = datetime(due_local.year, due_local.month, 1, tzinfo=zone)
    month_days = calendar.monthrange(due_local.year, due_local.month)[1]
    after = first + timedelta(days=month_days)
    cut = round(float(campaign.control_pct) * 100)
    return store.Decision(
        campaign_id=campaign.id or 0,
        wave=wave,
        hash_key=f"{campaign.id or 0}:",
        control_cut=min(max(cut, 0), store.BUCKETS),
        due_at=due,
        due_local=due_local.replace(tzinfo=None),
        now_local=_aware(now).astimezone(zone).replace(tzinfo=None),
        custom_since_local=(due_local - OA_CUSTOM_WINDOW).replace(tzinfo=None),
        allow_wecom="wecom" in allowed,
        allow_oa="oa" in allowed,
        allow_sms="sms" in allowed,
        cap_messages=rules.cap_messages,
        cap_days=rules.cap_days,
        month_start=datetime(first.year, first.month, 1, tzinfo=zone).astimezone(UTC),
        month_end=datetime(after.year, after.month, 1, tzinfo=zone).astimezone(UTC),
        month_days=month_days,
    )


def _rules(rules: PlanRules | None) -> PlanRules:
    if rules is not None:
        return rules
    from bot.settings import Settings

    return PlanRules.from_settings(Settings())  # type: ignore[call-arg]  # filled from the env


def _count(report: PlanReport, outcome: str, channel: str, variant: str, n: int) -> None:
    report.targeted += n
    report.by_variant[variant] = report.by_variant.get(variant, 0) + n
    if outcome == store.CONTROL:
        report.control += n
    elif outcome == store.OPTED_OUT:
        report.opted_out += n
    elif outcome == store.UNREACHABLE:
        report.unreachable += n
    elif outcome == store.CAPPED:
        report.capped += n
    else:  # planned, or already at the dispatcher (sending, sent, delivered, failed, expired)
        report.planned += n
        report.by_channel[channel] = report.by_channel.get(channel, 0) + n
        report.planned_by_variant[variant] = report.planned_by_variant.get(variant, 0) + n


async def _stage_wave0(session: Any, campaign: Campaign, today: date, d: store.Decision) -> tuple[int, int]:
    segment = compile_segment(_segment(campaign.segment), today=today)
    variants = [
        (name, None if when is None else compile_segment(when, today=today)) for name, when in variants_of(campaign)
    ]
    return await store.stage_segment(session, segment, variants, hash_key=d.hash_key, control_cut=d.control_cut)


async def preview(
    db: Database, draft: Campaign, *, now: datetime, today: date, rules: PlanRules | None = None
) -> PlanReport:
    """What planning wave 0 of `draft` would give now, without writing any row."""
    rules = _rules(rules)
    d = decision(draft, 0, now, rules)
    report = PlanReport(campaign_id=draft.id, wave=0, due_at=d.due_at, preview=True)
    async with db.transaction() as session:
        _, report.no_variant = await _stage_wave0(session, draft, today, d)
        await store.decide(session, d)
        for outcome, channel, variant, quota_hit, n in await store.decided_counts(session):
            _count(report, outcome, channel, variant, n)
            report.wecom_quota_exhausted += n if quota_hit else 0
        await store.clear_staging(session)
    return report


async def plan(
    db: Database, campaign_id: int, *, now: datetime, today: date, rules: PlanRules | None = None
) -> PlanReport:
    """Plan wave 0 of a stored campaign: one campaign_target row per person of its segment."""
    return await plan_wave(db, campaign_id, 0, now=now, today=today, rules=rules)


async def plan_wave(
    db: Database, campaign_id: int, wave: int, *, now: datetime, today: date, rules: PlanRules | None = None
) -> PlanReport:
    """Plan one wave of a stored campaign (wave 0: its segment; a later wave: see the module)."""
    rules = _rules(rules)
    async with db.transaction() as session:
        await store.lock_planning(session)
        campaign = await store.get_campaign(session, campaign_id)
        if campaign is None:
            raise LookupError(f"no campaign {campaign_id}")
        d = decision(campaign, wave, now, rules)
        report = PlanReport(campaign_id=campaign_id, wave=wave, due_at=d.due_at)
        if wave == 0:
            _, report.no_variant = await _stage_wave0(session, campaign, today, d)
        else:
            zone = ZoneInfo(rules.tz)
            offset = _aware(now).astimezone(zone).utcoffset() or timedelta(0)
            await store.stage_wave(
                session,
                campaign_id,
                only_not_bought=bool(wave_spec(campaign, wave).get("only_not_bought")),
                hash_key=d.hash_key,
                control_cut=d.control_cut,
                now_local=d.now_local,
                tz=rules.tz,
                tz_offset_seconds=int(offset.total_seconds()),
            )
        await store.decide(session, d)
        quota = Counter[int]()
        for _outcome, _channel, _variant, quota_hit, n in await store.decided_counts(session):
            quota[quota_hit] += n
        report.wecom_quota_exhausted = quota[1]
        report.written = await store.write_targets(session, campaign_id, wave, d.due_at)
        for outcome, channel, variant, n in await store.target_counts(session, campaign_id, wave):
            _count(report, outcome, channel, variant, n)
        await store.clear_staging(session)
    return report


__all__ = [
    "PlanReport",
    "PlanRules",
    "decision",
    "due_time",
    "out_of_quiet_hours",
    "parse_quiet_hours",
    "plan",
    "plan_wave",
    "preview",
    "variants_of",
]
