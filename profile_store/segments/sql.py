"""Compile a segment (nlp.segment) to ONE query of person ids, the same on SQLite and PostgreSQL.

The universe is the active persons that have a row in the profile relation (`profile`, or a
same-shaped temporary table of profiles as of another date, see `asof.py`). Every node becomes a
predicate on that relation's row `p`:

- tag conditions read `p`'s columns; list tags (core_sku, guides: JSON text) test "the list
  contains" by looking for the JSON-quoted element; levels compare by their digit (compiled to
  `level IN (...)` of the levels that pass);
- order and event conditions are EXISTS over orders / order_item / product / event, windowed by
  `Window.span(T)` on naive local times (`first 00:00 <= t < last+1 00:00`, never after T);
- `OrderMetric` is EXISTS over the persons grouped with HAVING; when a count or an amount of 0
  passes the comparison (消费不到2次), it is the complement: NOT EXISTS over the persons whose
  aggregate fails it, so people without orders are in.

Every predicate is two-valued (never SQL NULL): a column comparison is guarded by
`col IS NOT NULL AND …`, everything else is EXISTS. So `NOT (…)` is exactly "not in": a person
whose tag is NULL is in `Not(Tag(x eq v))`.

Plans (measured at 1 M persons on PostgreSQL, bench/segments.py):
- EXISTS / NOT EXISTS AND-ed at the top become hash or nested-loop semi / anti joins, linear at
  a million persons; under OR / NOT they stay subplans whose person_id correlation is pushed
  down, so each is an index lookup by person. `NOT IN (subquery)` is never used: PostgreSQL
  cannot hash it once it outgrows work_mem and runs it as a quadratic scan.
- An `OrderMetric` alone aggregates everyone's windowed orders once (EXISTS over the grouped
  persons): per-person lookups for a million persons cost more (2.8 s against 1.6 s). Next to a
  condition decided by the profile row (a tag equal to a value, StoreCity, GuideHolds) it is a
  correlated EXISTS (… GROUP BY … HAVING) run only for the persons left, an index-only scan of
  ix_orders_person_paid each (上海 ∧ 价格导向 ∧ 近90天≥2次: 0.47 s against 0.9 s).
- StoreCity is `preferred_store = ANY (ARRAY(SELECT … city))` on PostgreSQL: the stores are read
  once and tested while scanning the profiles, before any per-person subplan (as `IN (…)` it
  becomes a join applied after them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Float,
    Integer,
    String,
    and_,
    column,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.functions import FunctionElement

from nlp.segment import (
    LIST_TAG_KEYS,
    TAG_KEYS,
    And,
    Bought,
    CampaignTouch,
    CartNotBought,
    Compare,
    CouponHeld,
    Did,
    Everyone,
    FirstOrder,
    GuideHolds,
    Item,
    Label,
    Not,
    Or,
    OrderMetric,
    Returning,
    Saved,
    Segment,
    StoreCity,
    Tag,
    Where,
    Window,
)
from profile_store.models import Coupon, Event, Order, OrderItem, Person, PersonLabel, Product, Store
from profile_store.tagging.rules import LEVELS

ORDERS = Order.__table__  # type: ignore[attr-defined]
ITEMS = OrderItem.__table__  # type: ignore[attr-defined]
PRODUCTS = Product.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
CARDS = Coupon.__table__  # type: ignore[attr-defined]
STORES = Store.__table__  # type: ignore[attr-defined]
LABELS = PersonLabel.__table__  # type: ignore[attr-defined]
PERSONS = Person.__table__  # type: ignore[attr-defined]

INT_TAGS = ("birthday_month",)
FLOAT_TAGS = ("coupon_redemption_rate",)


class SegmentNotResolved(ValueError):
    """A `Saved` reference reached the compiler: the command layer must replace it first."""


# ---------------------------------------------------------------------------------- dialect bits


class _position(FunctionElement[int]):
    """1-based position of a substring, 0 when absent (instr / strpos): a case-sensitive
    "contains" on both back-ends (SQLite's LIKE ignores ASCII case)."""

    type = Integer()
    name = "instr"
    inherit_cache = True


@compiles(_position)
def _position_default(element: Any, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)})"


@compiles(_position, "postgresql")
def _position_pg(element: Any, compiler: Any, **kw: Any) -> str:
    haystack, needle = list(element.clauses)
    return f"strpos({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)})"


class _in_values(FunctionElement[bool]):
    """`col IN (subquery)` for a small subquery: on PostgreSQL `col = ANY (ARRAY(subquery))`, an
    InitPlan run once whose array is tested as a plain filter while scanning, before any
    per-row subplan (IN would become a join, applied after those subplans)."""

    type = Boolean()
    name = "in_values"
    inherit_cache = True


@compiles(_in_values)
def _in_values_default(element: Any, compiler: Any, **kw: Any) -> str:
    value, values = list(element.clauses)
    return f"{compiler.process(value, **kw)} IN {compiler.process(values, **kw)}"


@compiles(_in_values, "postgresql")
def _in_values_pg(element: Any, compiler: Any, **kw: Any) -> str:
    value, values = list(element.clauses)
    return f"{compiler.process(value, **kw)} = ANY (ARRAY{compiler.process(values, **kw)})"


class _date_plus_days(FunctionElement[date]):
    """The local date of a naive timestamp plus a number of days."""

    type = Date()
    name = "date_plus_days"
    inherit_cache = True


@compiles(_date_plus_days)
def _date_plus_days_default(element: Any, compiler: Any, **kw: Any) -> str:
    moment, days = list(element.clauses)
    return f"date({compiler.process(moment, **kw)}, printf('%+d days', {compiler.process(days, **kw)}))"


@compiles(_date_plus_days, "postgresql")
def _date_plus_days_pg(element: Any, compiler: Any, **kw: Any) -> str:
    moment, days = list(element.clauses)
    return f"(CAST({compiler.process(moment, **kw)} AS DATE) + {compiler.process(days, **kw)})"


# ---------------------------------------------------------------------------------- the profile relation


def profile_table(name: str = "profile") -> Any:
    """The profile relation by name (`profile` or a temporary table of the same shape)."""
    columns = [column("person_id", String())]
    for key in TAG_KEYS:
        kind: Any = Integer() if key in INT_TAGS else Float() if key in FLOAT_TAGS else String()
        columns.append(column(key, kind))
    return table(name, *columns).alias("p")


def coerce(key: str, value: Any) -> Any:
    """A comparison value in the type of the tag's column (a parser may give "12" for a month)."""
    if value is None:
        return None
    if key in INT_TAGS:
        return int(value)
    if key in FLOAT_TAGS:
        return float(value)
    return str(value)


def level_digit(level: Any) -> int | None:
    text = str(level).upper()
    return LEVELS.index(text) if text in LEVELS else None


def levels_passing(cmp: Compare) -> list[str]:
    """The levels V0..V5 a comparison on `level` accepts (compared by their digit)."""
    high = level_digit(cmp.high) if cmp.high is not None else None
    if cmp.op == "in":
        wanted = {level_digit(v) for v in cmp.value}
        return [lv for i, lv in enumerate(LEVELS) if i in wanted]
    value = level_digit(cmp.value)
    if value is None or (cmp.op == "between" and high is None):
        return []
    digit_cmp = Compare(cmp.op, value, high)
    return [lv for i, lv in enumerate(LEVELS) if digit_cmp.test(i)]


def window_bounds(window: Window, today: date) -> tuple[datetime, datetime]:
    """[start, end) in naive local time: the span's first day 00:00 to the day after its last
    (never after the end of T)."""
    first, last = window.span(today)
    last = min(last, today)
    return datetime.combine(first, time.min), datetime.combine(last + timedelta(days=1), time.min)


def _compare(expr: Any, cmp: Compare, value: Any = None, high: Any = None) -> ColumnElement[bool]:
    """`expr op value` for a non-NULL expr."""
    value = cmp.value if value is None else value
    high = cmp.high if high is None else high
    op = cmp.op
    if (op != "in" and value is None) or (op == "between" and high is None):
        # a NULL operand would make the predicate NULL, and NOT (…) would then lose people
        raise ValueError(f"comparison {op!r} needs a value: {cmp!r}")
    if op == "eq":
        return expr == value  # type: ignore[no-any-return]
    if op == "ne":
        return expr != value  # type: ignore[no-any-return]
    if op == "in":
        values = list(value)
        return expr.in_(values) if values else false()  # type: ignore[no-any-return]
    if op == "between":
        return and_(expr >= value, expr <= high)
    if op == "ge":
        return expr >= value  # type: ignore[no-any-return]
    if op == "gt":
        return expr > value  # type: ignore[no-any-return]
    if op == "le":
        return expr <= value  # type: ignore[no-any-return]
    if op == "lt":
        return expr < value  # type: ignore[no-any-return]
    raise ValueError(f"unknown comparison {op!r}")


# ---------------------------------------------------------------------------------- the compiler


class _Compiler:
    def __init__(self, today: date, p: Any) -> None:
        self.today = today
        self.p = p
        self.end_of_today = datetime.combine(today + timedelta(days=1), time.min)

    def compile(self, node: Segment) -> ColumnElement[bool]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise TypeError(f"not a segment node: {node!r}")
        return method(node)  # type: ignore[no-any-return]

    # ---- logic

    def _Everyone(self, node: Everyone) -> ColumnElement[bool]:
        return true()

    def _And(self, node: And) -> ColumnElement[bool]:
        # Next to a condition on the profile row, an aggregate is computed per remaining person
        # (correlated); alone, over everyone at once (see `_OrderMetric`).
        narrowed = any(_on_profile_row(part) for part in node.parts)
        return and_(
            true(),
            *(
                self._OrderMetric(part, correlated=True)
                if narrowed and isinstance(part, OrderMetric)
                else self.compile(part)
                for part in node.parts
            ),
        )

    def _Or(self, node: Or) -> ColumnElement[bool]:
        return or_(false(), *(self.compile(part) for part in node.parts))

    def _Not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.compile(node.part))

    def _Saved(self, node: Saved) -> ColumnElement[bool]:
        raise SegmentNotResolved(f"saved segment {node.name or '(the last one)'!r} must be resolved before compiling")

    # ---- the profile row

    def _Tag(self, node: Tag) -> ColumnElement[bool]:
        if node.key not in TAG_KEYS:
            raise ValueError(f"unknown tag {node.key!r}")
        col = self.p.c[node.key]
        cmp = node.cmp
        if cmp.value is None and cmp.op in ("eq", "ne"):
            return col.is_(None) if cmp.op == "eq" else col.is_not(None)  # type: ignore[no-any-return]
        if node.key in LIST_TAG_KEYS:
            return self._list_contains(col, cmp)
        if node.key == "level":
            allowed = levels_passing(cmp)
            return and_(col.is_not(None), col.in_(allowed)) if allowed else false()
        value = tuple(coerce(node.key, v) for v in cmp.value) if cmp.op == "in" else coerce(node.key, cmp.value)
        return and_(col.is_not(None), _compare(col, cmp, value, coerce(node.key, cmp.high)))

    def _list_contains(self, col: Any, cmp: Compare) -> ColumnElement[bool]:
        if cmp.op in ("eq", "ne"):
            values: Sequence[Any] = (cmp.value,)
        elif cmp.op == "in":
            values = tuple(cmp.value)
        else:
            raise ValueError(f"a list tag compares with eq / ne / in, not {cmp.op!r}")
        found = or_(false(), *(self._contains(col, v) for v in values))
        return and_(col.is_not(None), not_(found) if cmp.op == "ne" else found)

    def _contains(self, col: Any, value: Any) -> ColumnElement[bool]:
        needle = json.dumps(str(value), ensure_ascii=False)  # the element as the JSON list holds it
        return _position(col, literal(needle, String())) > 0

    def _GuideHolds(self, node: GuideHolds) -> ColumnElement[bool]:
        col = self.p.c.guides
        return and_(col.is_not(None), self._contains(col, node.guide_id))

    def _StoreCity(self, node: StoreCity) -> ColumnElement[bool]:
        col = self.p.c.preferred_store
        stores = select(STORES.c.store_id).where(STORES.c.city == node.city).scalar_subquery()
        return and_(col.is_not(None), _in_values(col, stores))

    def _Label(self, node: Label) -> ColumnElement[bool]:
        lab = LABELS.alias()
        return (
            select(literal_column("1")).where(lab.c.person_id == self.p.c.person_id, lab.c.label == node.name).exists()
        )

    # ---- orders

    def _paid(self, o: Any, start: datetime, end: datetime, where: Where) -> list[ColumnElement[bool]]:
        conds = [o.c.status == "paid", o.c.paid_at >= start, o.c.paid_at < end]
        if where.channels:
            conds.append(o.c.channel.in_(list(where.channels)))
        if where.store_id is not None:
            conds += [o.c.channel == "pos", o.c.store_id == where.store_id]
        return conds

    def _line_matches(self, i: Any, pr: Any, item: Item) -> ColumnElement[bool]:
        if item.kind == "sku":
            return i.c.sku == item.value  # type: ignore[no-any-return]
        if item.kind == "category":
            return pr.c.category == item.value  # type: ignore[no-any-return]
        if item.kind == "brand":
            return pr.c.brand == item.value  # type: ignore[no-any-return]
        raise ValueError(f"unknown item kind {item.kind!r}")

    def _order_lines(self, o: Any, item: Item) -> tuple[Any, Any, ColumnElement[bool]]:
        """orders ⋈ their lines (⋈ products unless by SKU), the lines, and the line condition."""
        i = ITEMS.alias()
        source = o.join(i, i.c.order_id == o.c.order_id)
        pr = None
        if item.kind != "sku":
            pr = PRODUCTS.alias()
            source = source.join(pr, pr.c.sku == i.c.sku)
        return source, i, self._line_matches(i, pr, item)

    def _Bought(self, node: Bought) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        o = ORDERS.alias()
        conds = [o.c.person_id == self.p.c.person_id, *self._paid(o, start, end, node.where)]
        source: Any = o
        if node.item is not None:
            source, _, matches = self._order_lines(o, node.item)
            conds.append(matches)
        return select(literal_column("1")).select_from(source).where(*conds).exists()

    def _OrderMetric(self, node: OrderMetric, correlated: bool = False) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        o = ORDERS.alias()
        conds = [o.c.person_id.is_not(None), *self._paid(o, start, end, node.where)]
        if correlated and node.item is None:
            conds.append(o.c.person_id == self.p.c.person_id)
        if node.item is None:
            grouped = select(o.c.person_id.label("person_id")).where(*conds).group_by(o.c.person_id)
            count, amount, top = func.count(), func.sum(o.c.amount_fen), func.max(o.c.amount_fen)
        else:
            source, i, matches = self._order_lines(o, node.item)
            per_order = (
                select(o.c.person_id.label("person_id"), func.sum(i.c.qty * i.c.unit_price_fen).label("v"))
                .select_from(source)
                .where(*conds, matches)
                .group_by(o.c.person_id, o.c.order_id)
                .subquery()
            )
            grouped = select(per_order.c.person_id).group_by(per_order.c.person_id)
            count, amount, top = func.count(), func.sum(per_order.c.v), func.max(per_order.c.v)
        passes = self._aggregate(node.measure, node.cmp, count, amount, top)
        zero_passes = node.measure in ("count", "amount") and node.cmp.test(0)
        having = not_(passes) if zero_passes else passes
        if correlated and node.item is None:
            found = grouped.having(having).exists()
        else:
            g = grouped.having(having).subquery()
            found = select(literal_column("1")).select_from(g).where(g.c.person_id == self.p.c.person_id).exists()
        return not_(found) if zero_passes else found

    @staticmethod
    def _aggregate(measure: str, cmp: Compare, count: Any, amount: Any, top: Any) -> ColumnElement[bool]:
        if measure == "count":
            return _compare(count, cmp)
        if measure == "amount":
            return _compare(amount, cmp)
        if measure == "max":
            return _compare(top, cmp)
        if measure == "aov":
            # amount / count op v  ⇔  amount op v × count (count > 0): exact, no division
            if cmp.op == "in":
                return or_(false(), *(amount == v * count for v in cmp.value))
            if cmp.op == "between":
                return and_(amount >= cmp.value * count, amount <= cmp.high * count)
            return _compare(amount, Compare(cmp.op, None), cmp.value * count)
        raise ValueError(f"unknown measure {measure!r}")

    def _FirstOrder(self, node: FirstOrder) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        return and_(self._any_paid(start, end), not_(self._any_paid(None, start)))

    def _Returning(self, node: Returning) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        return and_(self._any_paid(None, start), self._any_paid(start, end))

    def _any_paid(self, start: datetime | None, end: datetime) -> ColumnElement[bool]:
        o = ORDERS.alias()
        conds = [o.c.person_id == self.p.c.person_id, o.c.status == "paid", o.c.paid_at < end]
        if start is not None:
            conds.append(o.c.paid_at >= start)
        return select(literal_column("1")).select_from(o).where(*conds).exists()

    # ---- events

    def _event_item(self, e: Any, item: Item) -> tuple[Any, ColumnElement[bool]]:
        """The event's source (⋈ products when needed) and "the event is about `item`": its SKU,
        its category (its own, else its product's, as the browse preference reads it), or its
        product's brand."""
        if item.kind == "sku":
            return e, e.c.sku == item.value
        pr = PRODUCTS.alias()
        source = e.outerjoin(pr, pr.c.sku == e.c.sku)
        if item.kind == "category":
            return source, func.coalesce(func.nullif(e.c.category, ""), pr.c.category) == item.value
        if item.kind == "brand":
            return source, pr.c.brand == item.value
        raise ValueError(f"unknown item kind {item.kind!r}")

    def _Did(self, node: Did) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        e = EVENTS.alias()
        source: Any = e
        conds = [
            e.c.person_id == self.p.c.person_id,
            e.c.type == node.type,
            e.c.occurred_at >= start,
            e.c.occurred_at < end,
        ]
        if node.item is not None:
            source, matches = self._event_item(e, node.item)
            conds.append(matches)
        return select(literal_column("1")).select_from(source).where(*conds).exists()

    def _CartNotBought(self, node: CartNotBought) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        e, o, i = EVENTS.alias(), ORDERS.alias(), ITEMS.alias()
        bought_later = (
            select(literal_column("1"))
            .select_from(o.join(i, i.c.order_id == o.c.order_id))
            .where(
                o.c.person_id == e.c.person_id,
                o.c.status == "paid",
                o.c.paid_at > e.c.occurred_at,
                o.c.paid_at < end,
                i.c.sku == e.c.sku,
            )
            .exists()
        )
        source: Any = e
        conds = [
            e.c.person_id == self.p.c.person_id,
            e.c.type == "add_cart",
            e.c.occurred_at >= start,
            e.c.occurred_at < end,
            e.c.sku.is_not(None),
            e.c.sku != "",
            not_(bought_later),
        ]
        if node.item is not None:
            source, matches = self._event_item(e, node.item)
            conds.append(matches)
        return select(literal_column("1")).select_from(source).where(*conds).exists()

    def _fate(self, code: Any, kind: str) -> ColumnElement[bool]:
        """Whether a coupon code had a `kind` event by the end of T, by anyone (tagging/facts.py)."""
        f = EVENTS.alias()
        return (
            select(literal_column("1"))
            .where(f.c.coupon_code == code, f.c.type == kind, f.c.occurred_at < self.end_of_today, code != "")
            .exists()
        )

    def _CouponHeld(self, node: CouponHeld) -> ColumnElement[bool]:
        start, end = window_bounds(node.window, self.today)
        g, c = EVENTS.alias(), CARDS.alias()
        # tags.md's outstanding: not consumed, not deleted, get date + valid_days ≥ T (unknown card:
        # never expires) — the rule of tagging.rules.outstanding.
        not_expired = or_(
            c.c.valid_days.is_(None),
            _date_plus_days(g.c.occurred_at, c.c.valid_days) >= literal(self.today, Date()),
        )
        return (
            select(literal_column("1"))
            .select_from(g.outerjoin(c, c.c.card_id == g.c.card_id))
            .where(
                g.c.person_id == self.p.c.person_id,
                g.c.type == "coupon_get",
                g.c.occurred_at >= start,
                g.c.occurred_at < end,
                not_(self._fate(g.c.coupon_code, "coupon_consume")),
                not_(self._fate(g.c.coupon_code, "coupon_delete")),
                not_expired,
            )
            .exists()
        )

    def _CampaignTouch(self, node: CampaignTouch) -> ColumnElement[bool]:
        e = EVENTS.alias()
        conds = [
            e.c.person_id == self.p.c.person_id,
            e.c.campaign_id == node.campaign,
            e.c.occurred_at < self.end_of_today,
        ]
        if node.action == "received":
            return select(literal_column("1")).where(*conds).exists()
        if node.action == "joined":
            return select(literal_column("1")).where(*conds, e.c.type == "coupon_get").exists()
        if node.action == "redeemed":
            # consumed its coupon: a consume event of the campaign, or the campaign's coupon the
            # person got was consumed (coupons are matched by code, whoever uses them)
            own = select(literal_column("1")).where(*conds, e.c.type == "coupon_consume").exists()
            g = EVENTS.alias()
            got = (
                select(literal_column("1"))
                .where(
                    g.c.person_id == self.p.c.person_id,
                    g.c.campaign_id == node.campaign,
                    g.c.type == "coupon_get",
                    g.c.occurred_at < self.end_of_today,
                    self._fate(g.c.coupon_code, "coupon_consume"),
                )
                .exists()
            )
            return or_(own, got)
        raise ValueError(f"unknown campaign action {node.action!r}")


def _on_profile_row(node: Segment) -> bool:
    """A condition decided by the profile row alone that keeps only some persons."""
    if isinstance(node, Tag):
        return node.cmp.op in ("eq", "in") and node.cmp.value is not None
    return isinstance(node, StoreCity | GuideHolds)


def compile_segment(segment: Segment, *, today: date, profile: str = "profile") -> Select[Any]:
    """SELECT person_id of the active persons with a row in `profile` that are in `segment` as of
    `today`. `Saved` references must be resolved first (SegmentNotResolved otherwise)."""
    p = profile_table(profile)
    person = PERSONS.alias("ps")
    predicate = _Compiler(today, p).compile(segment)
    return (
        select(p.c.person_id)
        .select_from(p.join(person, person.c.person_id == p.c.person_id))
        .where(person.c.status == "active", predicate)
    )


async def members(session: AsyncSession, segment: Segment, today: date, *, profile: str = "profile") -> list[str]:
    """Every person of the segment, by person_id."""
    query = compile_segment(segment, today=today, profile=profile)
    return sorted((await session.execute(query)).scalars())


async def count(session: AsyncSession, segment: Segment, today: date, *, profile: str = "profile") -> int:
    query = compile_segment(segment, today=today, profile=profile).subquery()
    return int((await session.execute(select(func.count()).select_from(query))).scalar_one())


async def sample(
    session: AsyncSession, segment: Segment, today: date, *, profile: str = "profile", n: int = 5
) -> list[str]:
    """A few persons of the segment, always the same ones for the same data (lowest ids)."""
    query = compile_segment(segment, today=today, profile=profile)
    column_ = query.selected_columns[0]
    return list((await session.execute(query.order_by(column_).limit(n))).scalars())


__all__ = [
    "SegmentNotResolved",
    "coerce",
    "compile_segment",
    "count",
    "level_digit",
    "levels_passing",
    "members",
    "profile_table",
    "sample",
    "window_bounds",
]
