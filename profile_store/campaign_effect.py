"""The effect of a campaign (issue 6 item 6), aggregated in the database: the SQL behind
campaigns.measure. Only counts and sums come out of here (GROUP BY, the same on SQLite and
PostgreSQL); the rates, the uplift and its interval are worked out in campaigns.measure.

Definitions (a "row" is one campaign_target row: campaign, wave, person):

- Message counts, per group of rows: `outcomes` = rows per outcome (targeted = all of them).
- Arms: a row is *treated* when its outcome is sent or delivered, its send moment `sent_at`; it
  is *control* when its outcome is control, its send moment `due_at` (when it would have been
  sent). A row is *measured* when it has an arm, a send moment, and that moment is before the end
  of T. A group's arm size `n` = distinct persons with a measured row of that arm in the group (for
  a wave: rows).
- Conversion: a measured row converts when its person has a PAID order (any channel, online or
  offline; refunded orders never) with send moment < paid_at <= send moment + attribution_days ×
  24 h, and paid_at before the end of T. sent_at / due_at are aware UTC, paid_at naive local time
  in the business time zone: the window's ends are converted to local time exactly (PostgreSQL:
  `timezone(tz, …)`; SQLite: the zone's UTC offsets over the campaign's span, with every
  transition, as a CASE on epoch milliseconds). `converted` = distinct persons of the arm with a
  converting row; `orders` / `revenue_fen` = the number / Σ amount of the distinct converting
  orders of the group (an order falling into the windows of several waves counts once in each
  wave, once in the total). `open` = measured rows whose window ends after the end of T.
- Coupons of the campaign: coupon_get events (occurred_at before the end of T) whose campaign_id
  is the campaign's name or id; redeemed when a coupon_consume event (anyone's) with the same
  coupon_code exists before the end of T. A coupon belongs to the wave of its person's latest
  treated row sent at or before it was got (and to that row's store and guide); coupons of no such
  row count only in the total.
- Cross-channel: treated converting orders by (message channel of the row, orders.channel): the
  distinct orders and their Σ amount per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, distinct, exists, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.models import Campaign, CampaignTarget, Event, Guide, Order, Store
from profile_store.times import read_utc as _aware

CAMPAIGNS = Campaign.__table__  # type: ignore[attr-defined]
TARGETS = CampaignTarget.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
STORES = Store.__table__  # type: ignore[attr-defined]
GUIDES = Guide.__table__  # type: ignore[attr-defined]

TREATED_OUTCOMES = ("sent", "delivered")
CONTROL_OUTCOME = "control"
ARMS = ("treated", "control")
# The groupings of a campaign's rows: None is the total.
GROUPINGS = (None, "wave", "store_id", "guide_id")

_EPOCH = datetime(1970, 1, 1)
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class CampaignRef:
    """The campaign measured."""

    id: int
    name: str
    attribution_days: int
    status: str
    kind: str = "campaign"


@dataclass(frozen=True)
class ArmTally:
    """One arm of one group: persons measured, converted, converting orders and their amount,
    rows whose attribution window is still open at the end of T."""

    n: int = 0
    converted: int = 0
    orders: int = 0
    revenue_fen: int = 0
    open: int = 0


@dataclass
class Tally:
    """The raw aggregates of one group of rows (the total, a wave, a store, a guide)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    arms: dict[str, ArmTally] = field(default_factory=dict)
    coupons: int = 0
    redeemed: int = 0
    name: str = ""


@dataclass(frozen=True)
class CrossCell:
    message_channel: str
    purchase_channel: str
    orders: int
    revenue_fen: int


@dataclass(frozen=True)
class EffectTallies:
    campaign: CampaignRef
    as_of: date
    tz: str
    total: Tally
    waves: dict[int, Tally]
    stores: dict[str, Tally]
    guides: dict[str, Tally]
    cross: tuple[CrossCell, ...]
    first_moment: datetime | None  # the earliest send moment of a measured row (aware UTC)
    last_moment: datetime | None


# ---------------------------------------------------------------------------------- look-up


async def find_campaign(session: AsyncSession, name_or_id: str | int) -> CampaignRef | None:
    """A campaign by its name (exactly, then trimmed) or its numeric id; None when unknown."""
    c = CAMPAIGNS.alias("c")
    columns = (c.c.id, c.c.name, c.c.attribution_days, c.c.status, c.c.kind)
    found: Any = None
    if isinstance(name_or_id, int):
        found = (await session.execute(select(*columns).where(c.c.id == name_or_id))).first()
    else:
        wanted = name_or_id.strip()
        if wanted:
            found = (await session.execute(select(*columns).where(c.c.name.in_({name_or_id, wanted})))).first()
            if found is None and wanted.isdigit():
                found = (await session.execute(select(*columns).where(c.c.id == int(wanted)))).first()
    if found is None:
        return None
    return CampaignRef(int(found[0]), str(found[1]), int(found[2]), str(found[3]), str(found[4]))


# ---------------------------------------------------------------------------------- time


class _Clock:
    """Comparable local times on either back-end.

    PostgreSQL compares timestamps: an aware instant becomes naive local by `timezone(tz, x)`.
    SQLite has no time zones: local wall-clock times become integer milliseconds since
    1970-01-01 (of the wall clock), and an instant (stored as naive UTC text) gets the zone's
    offset in force at that instant — a CASE over the offset changes found in Python between
    `lo` and `hi`.
    """

    def __init__(self, dialect: str, tz: str, lo: datetime | None, hi: datetime | None) -> None:
        self.postgres = dialect == "postgresql"
        self.tz = tz
        self.zone = ZoneInfo(tz)
        self.changes = _offset_changes(self.zone, lo, hi) if not self.postgres else []

    def value(self, local: datetime) -> Any:
        """A naive local time as a bound value of the comparable scale."""
        if self.postgres:
            return literal(local)
        return literal(_ms(local))

    def local(self, naive_local: Any) -> Any:
        """A naive local column (paid_at, occurred_at) on the comparable scale."""
        if self.postgres:
            return naive_local
        return _sqlite_ms(naive_local)

    def of_instant(self, instant: Any, plus_days: int = 0) -> Any:
        """An aware UTC column (+ whole days of 24 h) as local time on the comparable scale."""
        if self.postgres:
            if plus_days:
                instant = instant + literal_column(f"interval '{int(plus_days) * 86_400} seconds'")
            return func.timezone(self.tz, instant)
        utc = _sqlite_ms(instant)
        if plus_days:
            utc = utc + int(plus_days) * _DAY_MS
        first, rest = self.changes[0][1], self.changes[1:]
        if not rest:
            return utc + first
        whens = []
        previous = first
        for at, offset in rest:
            whens.append((utc < at, previous))
            previous = offset
        return utc + case(*whens, else_=previous)


def _ms(naive: datetime) -> int:
    delta = naive - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _sqlite_ms(column_: Any) -> Any:
    """SQLite: a stored time text → integer milliseconds since 1970-01-01 (exact to the ms)."""
    return cast(func.round((func.julianday(column_) - 2440587.5) * 86_400_000.0), Integer)


def _offset_ms(zone: ZoneInfo, utc_naive: datetime) -> int:
    offset = utc_naive.replace(tzinfo=UTC).astimezone(zone).utcoffset() or timedelta(0)
    return int(offset.total_seconds() * 1000)


def _offset_changes(zone: ZoneInfo, lo: datetime | None, hi: datetime | None) -> list[tuple[int, int]]:
    """[(utc ms from which it holds, offset ms)]: the first entry holds before every change.
    Changes are searched day by day over [lo − 2 days, hi + 2 days] and pinned to the second."""
    lo = lo or datetime(2000, 1, 1)
    hi = hi or lo
    start = lo.replace(tzinfo=None) - timedelta(days=2)
    stop = hi.replace(tzinfo=None) + timedelta(days=2)
    changes = [(_ms(start), _offset_ms(zone, start))]
    day = start
    while day < stop:
        following = min(day + timedelta(days=1), stop)
        if _offset_ms(zone, following) != _offset_ms(zone, day):
            low, high = day, following  # the offset of `low` holds, that of `high` does not yet
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + timedelta(seconds=1)
                if _offset_ms(zone, middle) == _offset_ms(zone, low):
                    low = middle
                else:
                    high = middle
            changes.append((_ms(high), _offset_ms(zone, high)))
        day = following
    return changes


# ---------------------------------------------------------------------------------- aggregates


async def tally(
    session: AsyncSession, campaign: CampaignRef, *, today: date, tz: str = "Asia/Shanghai"
) -> EffectTallies:
    """Every aggregate of the campaign's effect as of `today` (T), times in the zone `tz`."""
    cid = campaign.id
    days = int(campaign.attribution_days)
    r = TARGETS.alias("r")
    of_campaign = r.c.campaign_id == cid
    arm = case(
        (r.c.outcome.in_(TREATED_OUTCOMES), literal_column("'treated'")),
        (r.c.outcome == CONTROL_OUTCOME, literal_column("'control'")),
        else_=None,
    )
    moment = case(
        (r.c.outcome.in_(TREATED_OUTCOMES), r.c.sent_at),
        (r.c.outcome == CONTROL_OUTCOME, r.c.due_at),
        else_=None,
    )
    span = (
        await session.execute(
            select(func.min(r.c.sent_at), func.max(r.c.sent_at), func.min(r.c.due_at), func.max(r.c.due_at)).where(
                of_campaign
            )
        )
    ).one()
    moments = [m for m in span if m is not None]
    lo = min((_utc_naive(m) for m in moments), default=None)
    hi = max((_utc_naive(m) for m in moments), default=None)
    if hi is not None:
        hi += timedelta(days=days)
    end_of_today = datetime.combine(today + timedelta(days=1), time.min)
    lo = lo if lo is not None else end_of_today  # (the offsets are scanned over lo − 2 d … hi + 2 d)
    hi = max(hi, end_of_today) if hi is not None else end_of_today
    dialect = session.get_bind().dialect.name
    clock = _Clock(dialect, tz, lo, hi)
    t_end = clock.value(end_of_today)

    start_at = clock.of_instant(moment)
    measured = (
        select(
            r.c.wave.label("wave"),
            r.c.person_id.label("person_id"),
            r.c.store_id.label("store_id"),
            r.c.guide_id.label("guide_id"),
            r.c.channel.label("channel"),
            arm.label("arm"),
            start_at.label("start_at"),
            clock.of_instant(moment, days).label("end_at"),
        )
        .where(of_campaign, arm.is_not(None), moment.is_not(None))
        .subquery("m")
    )
    m = measured
    in_time = m.c.start_at < t_end  # sent (or due) before the end of T
    o = ORDERS.alias("o")
    paid = clock.local(o.c.paid_at)
    converting = and_(
        o.c.person_id == m.c.person_id,
        o.c.status == "paid",
        paid > m.c.start_at,
        paid <= m.c.end_at,
        paid < t_end,
    )

    def key_of(source: Any, grouping: str | None) -> list[Any]:
        return [] if grouping is None else [source.c[grouping].label("k")]

    groups: dict[str | None, dict[Any, Tally]] = {g: {} for g in GROUPINGS}

    def group(grouping: str | None, key: Any) -> Tally:
        k: Any = None if grouping is None else (int(key) if grouping == "wave" else str(key or ""))
        return groups[grouping].setdefault(k, Tally())

    for grouping in GROUPINGS:
        keys = key_of(r, grouping)
        # message counts by outcome
        query = select(*keys, r.c.outcome, func.count()).where(of_campaign).group_by(*keys, r.c.outcome)
        for *k, outcome, count in (await session.execute(query)).all():
            tally_ = group(grouping, k[0] if k else None)
            tally_.outcomes[str(outcome)] = tally_.outcomes.get(str(outcome), 0) + int(count)
        # arm sizes and open windows
        keys = key_of(m, grouping)
        query = (
            select(
                *keys,
                m.c.arm,
                func.count(distinct(m.c.person_id)),
                func.sum(case((m.c.end_at > t_end, 1), else_=0)),
            )
            .where(in_time)
            .group_by(*keys, m.c.arm)
        )
        sizes = {
            (tuple(k), str(a)): (int(n or 0), int(still_open or 0))
            for *k, a, n, still_open in (await session.execute(query)).all()
        }
        # converting persons, orders and revenue
        hits = (
            select(*keys, m.c.arm.label("arm"), o.c.person_id.label("person_id"), o.c.order_id.label("order_id"),
                   o.c.amount_fen.label("amount_fen"))
            .select_from(m.join(o, converting))
            .where(in_time)
            .distinct()
            .subquery("h")
        )
        hkeys = [] if grouping is None else [hits.c.k]
        query = select(
            *hkeys, hits.c.arm, func.count(distinct(hits.c.person_id)), func.count(), func.sum(hits.c.amount_fen)
        ).group_by(*hkeys, hits.c.arm)
        converted = {
            (tuple(k), str(a)): (int(x or 0), int(orders or 0), int(amount or 0))
            for *k, a, x, orders, amount in (await session.execute(query)).all()
        }
        for found in set(sizes) | set(converted):
            n, still_open = sizes.get(found, (0, 0))
            x, orders, amount = converted.get(found, (0, 0, 0))
            key_values, arm_name = found
            group(grouping, key_values[0] if key_values else None).arms[arm_name] = ArmTally(
                n, x, orders, amount, still_open
            )

    await _coupons(session, campaign, clock, end_of_today, t_end, groups)
    cross = await _cross(session, m, o, converting, in_time)
    await _names(session, groups)
    first_last = (
        await session.execute(
            select(func.min(r.c.sent_at), func.max(r.c.sent_at)).where(
                of_campaign, r.c.outcome.in_(TREATED_OUTCOMES)
            )
        )
    ).one()
    return EffectTallies(
        campaign=campaign,
        as_of=today,
        tz=tz,
        total=groups[None].get(None, Tally()),
        waves=dict(sorted(groups["wave"].items())),
        stores=groups["store_id"],
        guides=groups["guide_id"],
        cross=cross,
        first_moment=_aware(first_last[0]),
        last_moment=_aware(first_last[1]),
    )


async def _coupons(
    session: AsyncSession,
    campaign: CampaignRef,
    clock: _Clock,
    end_of_today: datetime,
    t_end: Any,
    groups: dict[str | None, dict[Any, Tally]],
) -> None:
    """Coupons of the campaign got by the end of T, and those redeemed, by group."""
    e, c, r2, r = EVENTS.alias("e"), EVENTS.alias("c"), TARGETS.alias("r2"), TARGETS.alias("rc")
    wave_of = (
        select(func.max(r2.c.wave))
        .where(
            r2.c.campaign_id == campaign.id,
            r2.c.person_id == e.c.person_id,
            r2.c.outcome.in_(TREATED_OUTCOMES),
            r2.c.sent_at.is_not(None),
            clock.of_instant(r2.c.sent_at) <= clock.local(e.c.occurred_at),
        )
        .scalar_subquery()
    )
    consumed = exists().where(
        c.c.type == "coupon_consume",
        c.c.coupon_code == e.c.coupon_code,
        c.c.occurred_at < end_of_today,
    )
    coupons = (
        select(
            e.c.person_id.label("person_id"),
            wave_of.label("wave"),
            case((and_(e.c.coupon_code.is_not(None), e.c.coupon_code != "", consumed), 1), else_=0).label("redeemed"),
        )
        .where(
            e.c.type == "coupon_get",
            e.c.campaign_id.in_(sorted({campaign.name, str(campaign.id)})),
            e.c.occurred_at < end_of_today,
        )
        .subquery("cp")
    )
    source = coupons.outerjoin(
        r, and_(r.c.campaign_id == campaign.id, r.c.person_id == coupons.c.person_id, r.c.wave == coupons.c.wave)
    )
    for grouping in GROUPINGS:
        keys = [] if grouping is None else [r.c[grouping].label("k")]
        query = select(*keys, func.count(), func.sum(coupons.c.redeemed)).select_from(source)
        if grouping is not None:
            query = query.where(r.c.person_id.is_not(None)).group_by(*keys)
        for *k, count, redeemed in (await session.execute(query)).all():
            if not count:
                continue
            key: Any = None if grouping is None else (int(k[0]) if grouping == "wave" else str(k[0] or ""))
            tally_ = groups[grouping].setdefault(key, Tally())
            tally_.coupons, tally_.redeemed = int(count or 0), int(redeemed or 0)


async def _cross(session: AsyncSession, m: Any, o: Any, converting: Any, in_time: Any) -> tuple[CrossCell, ...]:
    """Treated converting orders by message channel × purchase channel."""
    hits = (
        select(
            m.c.channel.label("message"),
            o.c.channel.label("purchase"),
            o.c.order_id.label("order_id"),
            o.c.amount_fen.label("amount_fen"),
        )
        .select_from(m.join(o, converting))
        .where(in_time, m.c.arm == "treated")
        .distinct()
        .subquery("x")
    )
    query = select(hits.c.message, hits.c.purchase, func.count(), func.sum(hits.c.amount_fen)).group_by(
        hits.c.message, hits.c.purchase
    )
    cells = [
        CrossCell(str(msg or ""), str(buy or ""), int(n or 0), int(amount or 0))
        for msg, buy, n, amount in (await session.execute(query)).all()
    ]
    return tuple(sorted(cells, key=lambda cell: (cell.message_channel, cell.purchase_channel)))


async def _names(session: AsyncSession, groups: dict[str | None, dict[Any, Tally]]) -> None:
    """Stores' and guides' names from the reference tables."""
    for grouping, source, key_column in (("store_id", STORES, "store_id"), ("guide_id", GUIDES, "guide_id")):
        keys: Sequence[str] = sorted(k for k in groups[grouping] if k)
        for chunk_start in range(0, len(keys), 500):
            chunk = list(keys[chunk_start : chunk_start + 500])
            query = select(source.c[key_column], source.c.name).where(source.c[key_column].in_(chunk))
            for key, name in (await session.execute(query)).all():
                groups[grouping][str(key)].name = str(name or "")


def _utc_naive(value: datetime) -> datetime:
    """A stored instant as naive UTC (SQLite gives it back naive: it was stored as UTC)."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


__all__ = [
    "ARMS",
    "ArmTally",
    "CampaignRef",
    "CrossCell",
    "EffectTallies",
    "Tally",
    "find_campaign",
    "tally",
]
