"""复盘: the figures of a report command (nlp.intent.ReportCommand), aggregated in the database.

Every figure is a GROUP BY query over orders / order_item / event / the profile relation, the
same on SQLite and PostgreSQL; Python only merges a few aggregate rows. Money stays integer fen
(the renderer, bot.report_chart, turns it into 元); no user-facing text is made here.

Definitions (the window is `ReportCommand.window.span(T)`, last 30 days when None, on naive local
times: first day 00:00 <= t < the day after the last day, never after the end of T):

- `sales`: Σ amount of the paid orders placed in the window (refunded orders count for nothing;
  unattributed orders, person_id NULL, count in channel, store and city totals). By category:
  Σ qty × unit_price of those orders' lines, by the product's category.
- `orders`: the number of those orders (by category: of orders with a line of the category).
- `customers`: distinct persons with such an order. By lifecycle / rfm it is the distribution
  of the tag instead: active persons of the profile relation with that value, as of T (tags are
  never windowed); persons without an RFM class (no paid order in 730 days) are left out of the
  rfm breakdown.
- `aov`: sales / orders, in fen rounded half up (0 without orders).
- By store: the order's store_id (online orders without a store form the row ""), named from the
  store table; by city: the city of the order's store ("" when none is known); by lifecycle / rfm
  (sales, orders, aov): the paid orders of the persons with that tag value as of T.
- A campaign report (a campaign named, or only conversion / redemption asked: then every
  campaign, i.e. events carrying any campaign_id) is a funnel: `received` = distinct persons with
  an event of the campaign in the window; `coupons` = coupon_get events of the campaign in the
  window; `redeemed` = those coupons whose code has a coupon_consume event (anyone's) by the end
  of T, `redemption` = redeemed / coupons; `converted` = received persons with a paid order in
  the window at or after their first campaign event of the window, `conversion` = converted /
  received. Rates are 0.0 when their denominator is 0.

With `segment` (a segment tree), only its persons' orders, events and profiles count (so
unattributed orders drop out): its compiled SELECT (profile_store.segments.sql) is joined in as a
subquery over the same profile relation, so the whole report runs in the database and no person
id passes through Python. `members` (explicit person ids) does the same for a list of persons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import String, and_, case, column, distinct, func, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from nlp.intent import ReportCommand, ReportDimension, ReportMeasure
from nlp.segment import Segment, Window
from profile_store.bulk import analyze, stage, temp_table
from profile_store.models import Event, Order, OrderItem, Person, Product, Store
from profile_store.segments.sql import compile_segment
from profile_store.tagging.rules import RFM_CLASSES

ORDERS = Order.__table__  # type: ignore[attr-defined]
ITEMS = OrderItem.__table__  # type: ignore[attr-defined]
PRODUCTS = Product.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
STORES = Store.__table__  # type: ignore[attr-defined]
PERSONS = Person.__table__  # type: ignore[attr-defined]

DEFAULT_WINDOW = Window("days", 30)
ORDER_MEASURES: tuple[ReportMeasure, ...] = ("sales", "orders", "customers", "aov")
RATE_MEASURES: tuple[ReportMeasure, ...] = ("conversion", "redemption")
# Funnel steps of a campaign report, in order.
CAMPAIGN_STEPS = ("received", "coupons", "redeemed", "converted")
CAMPAIGN_COLUMNS = ("count", "rate")
# Tag values in the order a distribution lists them (tags.md).
LIFECYCLE_ORDER = ("忠诚", "购买", "注册", "兴趣", "认知", "沉睡", "流失")
RFM_ORDER = tuple(RFM_CLASSES.values())
MEMBERS_TABLE = "_qm_report_members"

Value = int | float | None


@dataclass(frozen=True)
class ReportRow:
    """One line of a breakdown: `key` is the value grouped by (channel code, store_id, city,
    category, tag value, or a campaign step), `name` a name the data gives it (the store's name;
    "" otherwise: the renderer names the key), `values` one per `Report.columns`."""

    key: str
    values: tuple[Value, ...]
    name: str = ""


@dataclass(frozen=True)
class Report:
    """The figures of one report. Title parts: `measures` asked, `by`, `campaign` (as asked),
    the window span `first`..`last` and `as_of` (T); `columns` names the values of each row and of
    `totals` (measure keys; money in fen, rates 0..1). A campaign report (`kind` "campaign") has
    the funnel as rows (`CAMPAIGN_STEPS`, columns count and rate) and no totals."""

    kind: Literal["figures", "campaign"]
    measures: tuple[ReportMeasure, ...]
    by: ReportDimension | None
    columns: tuple[str, ...]
    rows: tuple[ReportRow, ...]
    totals: tuple[Value, ...]
    first: date
    last: date
    as_of: date
    campaign: str | None = None
    campaign_ids: tuple[str, ...] = ()  # the campaign ids the name stands for (empty: unknown)
    members: int | None = None  # size of the segment the report is restricted to

    @property
    def empty(self) -> bool:
        """No data at all: every value is 0."""
        values = [v for row in self.rows for v in row.values] + list(self.totals)
        return not any(values)

    def value(self, row: ReportRow, column_: str) -> Value:
        return row.values[self.columns.index(column_)]

    def total(self, column_: str) -> Value:
        return self.totals[self.columns.index(column_)] if self.totals else None


# ---------------------------------------------------------------------------------- entry point


async def report(
    session: AsyncSession,
    command: ReportCommand,
    today: date,
    *,
    profile: str = "profile",
    members: Sequence[str] | None = None,
    segment: Segment | None = None,
) -> Report:
    """The figures `command` asks for, as of `today` (T), over the persons of `segment` (saved
    references resolved) or `members` when given, reading tags from the relation `profile`
    (`profile` or a same-shaped temporary table)."""
    if members is not None and segment is not None:
        raise ValueError("restrict a report to a segment or to members, not both")
    window = command.window or DEFAULT_WINDOW
    first, last = window.span(today)
    start = datetime.combine(first, time.min)
    end = datetime.combine(min(last, today) + timedelta(days=1), time.min)
    end = max(end, start)  # a window wholly after T is empty
    among: Any = None
    size: int | None = None
    if segment is not None:
        among, size = await _segment_members(session, segment, today, profile)
    elif members is not None:
        among, size = await _stage_members(session, members), len(set(members))
    base: dict[str, Any] = {"first": first, "last": last, "as_of": today, "members": size}
    measures = tuple(command.measures) or ("sales",)
    if command.campaign is not None or all(m in RATE_MEASURES for m in measures):
        ids = await campaign_ids(session, command.campaign) if command.campaign is not None else None
        rows = await _campaign(session, ids, start, end, today, among)
        return Report(
            kind="campaign",
            measures=measures,
            by=None,
            columns=CAMPAIGN_COLUMNS,
            rows=rows,
            totals=(),
            campaign=command.campaign,
            campaign_ids=tuple(ids or ()),
            **base,
        )
    columns = tuple(m for m in measures if m in ORDER_MEASURES) or ("sales",)
    by = command.by
    if by in ("lifecycle", "rfm"):
        assert by is not None
        figures, totals = await _by_tag(session, by, start, end, among, profile)
    elif by == "category":
        figures, totals = await _by_category(session, start, end, among)
    else:
        figures, totals = await _orders(session, by, start, end, among)
    rows = tuple(
        ReportRow(key, tuple(_pick(f, c) for c in columns), name=str(f.get("name") or ""))
        for key, f in _ordered(by, figures, columns[0])
    )
    return Report(
        kind="figures",
        measures=measures,
        by=by,
        columns=columns,
        rows=rows if by is not None else (),
        totals=tuple(_pick(totals, c) for c in columns),
        **base,
    )


async def campaign_ids(session: AsyncSession, name: str) -> list[str]:
    """The campaign ids a campaign name or id stands for ([] when unknown).

    There is no campaign table yet: a campaign is known only by the campaign_id its events
    carry, so the name is the id. The campaign table (next issue) looks names up here."""
    wanted = name.strip()
    if not wanted:
        return []
    e = EVENTS.alias("e")
    found = await session.execute(select(e.c.campaign_id).where(e.c.campaign_id == wanted).limit(1))
    return [str(v) for v in found.scalars()]


# ---------------------------------------------------------------------------------- helpers


async def _segment_members(session: AsyncSession, segment: Segment, today: date, profile: str) -> tuple[Any, int]:
    """The persons of a segment as a subquery the report's queries join (one person a row, as
    compile_segment selects them), and how many they are."""
    among = compile_segment(segment, today=today, profile=profile).subquery("m")
    size = int((await session.execute(select(func.count()).select_from(among))).scalar_one())
    return among, size


async def _stage_members(session: AsyncSession, members: Sequence[str]) -> Any:
    """The persons a report is restricted to, in a temporary table (any size: no IN list)."""
    await temp_table(session, MEMBERS_TABLE, "person_id TEXT PRIMARY KEY")
    await stage(session, MEMBERS_TABLE, ("person_id",), [(p,) for p in sorted(set(members))])
    await analyze(session, MEMBERS_TABLE)
    return table(MEMBERS_TABLE, column("person_id", String())).alias("m")


def _profile(name: str) -> Any:
    return table(name, column("person_id", String()), column("lifecycle", String()), column("rfm", String())).alias("p")


def _aov(sales: int, orders: int) -> int:
    """sales / orders in fen, rounded half up; 0 without orders."""
    return (2 * sales + orders) // (2 * orders) if orders else 0


def _figures(orders: Any, sales: Any, customers: Any) -> dict[str, Any]:
    o, s, c = int(orders or 0), int(sales or 0), int(customers or 0)
    return {"orders": o, "sales": s, "customers": c, "aov": _aov(s, o)}


def _pick(figures: dict[str, Any], column_: str) -> Value:
    value = figures.get(column_, 0)
    return value if isinstance(value, int | float) else 0


def _ordered(
    by: ReportDimension | None, figures: dict[str, dict[str, Any]], primary: str
) -> list[tuple[str, dict[str, Any]]]:
    """Tag distributions in the tags' own order; other breakdowns largest first, then by key."""
    if by in ("lifecycle", "rfm"):
        order = LIFECYCLE_ORDER if by == "lifecycle" else RFM_ORDER
        rank = {v: i for i, v in enumerate(order)}
        return sorted(figures.items(), key=lambda kv: (rank.get(kv[0], len(order)), kv[0]))
    return sorted(figures.items(), key=lambda kv: (-int(kv[1].get(primary) or 0), kv[0]))


def _paid(o: Any, start: datetime, end: datetime) -> list[Any]:
    return [o.c.status == "paid", o.c.paid_at >= start, o.c.paid_at < end]


# ---------------------------------------------------------------------------------- order figures


async def _orders(
    session: AsyncSession, by: ReportDimension | None, start: datetime, end: datetime, among: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Sales, orders, customers of the paid orders in [start, end), by channel / store / city."""
    o = ORDERS.alias("o")
    source: Any = o
    if among is not None:
        source = source.join(among, among.c.person_id == o.c.person_id)
    aggregates = (func.count(), func.sum(o.c.amount_fen), func.count(distinct(o.c.person_id)))
    totals_row = (await session.execute(select(*aggregates).select_from(source).where(*_paid(o, start, end)))).one()
    totals = _figures(*totals_row)
    if by is None:
        return {}, totals
    name: Any = literal_column("''")
    if by == "channel":
        key: Any = o.c.channel
    elif by == "store":
        s = STORES.alias("s")
        source = source.outerjoin(s, s.c.store_id == o.c.store_id)
        key, name = o.c.store_id, func.max(s.c.name)
    elif by == "city":
        s = STORES.alias("s")
        source = source.outerjoin(s, s.c.store_id == o.c.store_id)
        key = func.coalesce(s.c.city, "")
    else:
        raise ValueError(f"not an order dimension: {by!r}")
    query = select(key.label("k"), name.label("n"), *aggregates).select_from(source).where(*_paid(o, start, end))
    figures: dict[str, dict[str, Any]] = {}
    for k, n, count, amount, persons in (await session.execute(query.group_by(key))).all():
        figures[str(k or "")] = {**_figures(count, amount, persons), "name": n or ""}
    return figures, totals


async def _by_category(
    session: AsyncSession, start: datetime, end: datetime, among: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Σ qty × unit_price of the paid orders' lines by the product's category ("" unknown)."""
    o, i, pr = ORDERS.alias("o"), ITEMS.alias("i"), PRODUCTS.alias("pr")
    source: Any = o.join(i, i.c.order_id == o.c.order_id).outerjoin(pr, pr.c.sku == i.c.sku)
    if among is not None:
        source = source.join(among, among.c.person_id == o.c.person_id)
    aggregates = (
        func.count(distinct(o.c.order_id)),
        func.sum(i.c.qty * i.c.unit_price_fen),
        func.count(distinct(o.c.person_id)),
    )
    where = _paid(o, start, end)
    totals = _figures(*(await session.execute(select(*aggregates).select_from(source).where(*where))).one())
    key = func.coalesce(pr.c.category, "")
    query = select(key.label("k"), *aggregates).select_from(source).where(*where).group_by(key)
    figures = {
        str(k or ""): _figures(count, amount, persons)
        for k, count, amount, persons in (await session.execute(query)).all()
    }
    return figures, totals


async def _by_tag(
    session: AsyncSession, by: str, start: datetime, end: datetime, among: Any, profile: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Persons per tag value (as of T), and the paid orders of the window of those persons."""
    p, ps = _profile(profile), PERSONS.alias("ps")
    key = p.c[by]
    persons: Any = p.join(ps, and_(ps.c.person_id == p.c.person_id, ps.c.status == "active"))
    if among is not None:
        persons = persons.join(among, among.c.person_id == p.c.person_id)
    counted = select(key.label("k"), func.count()).select_from(persons).where(key.is_not(None)).group_by(key)
    figures: dict[str, dict[str, Any]] = {
        str(k): {**_figures(0, 0, n), "customers": int(n)} for k, n in (await session.execute(counted)).all()
    }
    o = ORDERS.alias("o")
    bought = persons.join(o, o.c.person_id == p.c.person_id)
    spent = (
        select(key.label("k"), func.count(), func.sum(o.c.amount_fen))
        .select_from(bought)
        .where(key.is_not(None), *_paid(o, start, end))
        .group_by(key)
    )
    for k, count, amount in (await session.execute(spent)).all():
        row = figures.setdefault(str(k), _figures(0, 0, 0))
        row.update(orders=int(count or 0), sales=int(amount or 0))
        row["aov"] = _aov(row["sales"], row["orders"])
    total_sales = sum(f["sales"] for f in figures.values())
    total_orders = sum(f["orders"] for f in figures.values())
    totals = _figures(total_orders, total_sales, sum(f["customers"] for f in figures.values()))
    return figures, totals


# ---------------------------------------------------------------------------------- campaigns


async def _campaign(
    session: AsyncSession, ids: list[str] | None, start: datetime, end: datetime, today: date, among: Any
) -> tuple[ReportRow, ...]:
    """The funnel of a campaign (`ids`; None: every campaign) over the window."""
    end_of_today = datetime.combine(today + timedelta(days=1), time.min)
    received = converted = coupons = redeemed = 0
    if ids != []:
        e = EVENTS.alias("e")
        of_campaign = (
            e.c.campaign_id.in_(ids) if ids is not None else and_(e.c.campaign_id.is_not(None), e.c.campaign_id != "")
        )
        in_window = [of_campaign, e.c.occurred_at >= start, e.c.occurred_at < end]
        events: Any = e
        if among is not None:
            events = events.join(among, among.c.person_id == e.c.person_id)
        # received, and converted: a paid order in the window at or after the first touch
        touched = (
            select(e.c.person_id.label("person_id"), func.min(e.c.occurred_at).label("first_at"))
            .select_from(events)
            .where(e.c.person_id.is_not(None), *in_window)
            .group_by(e.c.person_id)
            .subquery("t")
        )
        o = ORDERS.alias("o")
        bought = (
            select(literal_column("1"))
            .select_from(o)
            .where(
                o.c.person_id == touched.c.person_id,
                o.c.status == "paid",
                o.c.paid_at >= touched.c.first_at,
                o.c.paid_at < end,
            )
            .exists()
        )
        row = (
            await session.execute(select(func.count(), func.sum(case((bought, 1), else_=0))).select_from(touched))
        ).one()
        received, converted = int(row[0] or 0), int(row[1] or 0)
        # coupons gotten in the window, and which of them were consumed by the end of T
        c = EVENTS.alias("c")
        consumed = (
            select(c.c.coupon_code.label("code"))
            .where(
                c.c.type == "coupon_consume",
                c.c.occurred_at < end_of_today,
                c.c.coupon_code.is_not(None),
                c.c.coupon_code != "",
            )
            .distinct()
            .subquery("consumed")
        )
        gets = events.outerjoin(consumed, consumed.c.code == e.c.coupon_code)
        row = (
            await session.execute(
                select(func.count(), func.count(consumed.c.code))
                .select_from(gets)
                .where(e.c.type == "coupon_get", *in_window)
            )
        ).one()
        coupons, redeemed = int(row[0] or 0), int(row[1] or 0)
    return (
        ReportRow("received", (received, None)),
        ReportRow("coupons", (coupons, None)),
        ReportRow("redeemed", (redeemed, redeemed / coupons if coupons else 0.0)),
        ReportRow("converted", (converted, converted / received if received else 0.0)),
    )


__all__ = [
    "CAMPAIGN_STEPS",
    "Report",
    "ReportRow",
    "campaign_ids",
    "report",
]
