"""A segment (nlp.segment) tested against ONE person in memory: the journey engine's path (a
journey asks about one person the moment an event arrives, a query over everyone would be waste).

Written from the node docstrings, independently of `sql.py`; the tests hold the two to the same
answers over random trees. Plain Python over a `PersonRecord` (the person's stored tags, labels,
orders with their lines, events) and a `World` (stores' cities, coupon cards, products); the only
SQL is in `load_person` / `load_world`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nlp.segment import (
    LIST_TAG_KEYS,
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
from profile_store.models import Coupon, Product, Store
from profile_store.tagging.rules import LEVELS
from profile_store.tagging.store import LIST_TAGS, TAG_COLUMNS


@dataclass(frozen=True)
class Line:
    sku: str
    category: str | None  # the product's (None: SKU not in products)
    brand: str | None
    qty: int
    unit_price_fen: int


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    paid_at: datetime
    amount_fen: int
    channel: str
    store_id: str
    status: str  # paid | refunded
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    type: str
    occurred_at: datetime
    sku: str | None = None
    category: str | None = None  # the event's own
    card_id: str | None = None
    coupon_code: str | None = None
    campaign_id: str | None = None


@dataclass
class PersonRecord:
    person_id: str
    tags: dict[str, Any]  # stored tags (lists decoded), absent tags left out
    labels: frozenset[str] = frozenset()
    orders: tuple[OrderRecord, ...] = ()  # paid and refunded
    events: tuple[EventRecord, ...] = ()
    # coupon code → moments of `coupon_consume` / `coupon_delete` events of that code, by anyone
    coupon_fates: dict[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)


@dataclass
class World:
    store_city: dict[str, str] = field(default_factory=dict)
    card_valid_days: dict[str, int] = field(default_factory=dict)
    products: dict[str, tuple[str, str]] = field(default_factory=dict)  # sku → (category, brand)


# ---------------------------------------------------------------------------------- evaluation


def matches(segment: Segment, person: PersonRecord, today: date, world: World) -> bool:
    """Whether the person is in the segment as of `today` (the person being an active person
    with a profile, as the SQL universe requires)."""
    return _Evaluator(person, today, world).test(segment)


def _span(window: Window, today: date) -> tuple[datetime, datetime]:
    first, last = window.span(today)
    if last > today:
        last = today
    return datetime.combine(first, time()), datetime.combine(last, time()) + timedelta(days=1)


def _typed(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "birthday_month":
        return int(value)
    if key == "coupon_redemption_rate":
        return float(value)
    return str(value)


def _level(value: Any) -> int | None:
    value = str(value).upper()
    return LEVELS.index(value) if value in LEVELS else None


class _Evaluator:
    def __init__(self, person: PersonRecord, today: date, world: World) -> None:
        self.person = person
        self.today = today
        self.world = world
        self.end_of_today = datetime.combine(today, time()) + timedelta(days=1)

    def test(self, node: Segment) -> bool:
        if isinstance(node, Everyone):
            return True
        if isinstance(node, And):
            return all(self.test(part) for part in node.parts)
        if isinstance(node, Or):
            return any(self.test(part) for part in node.parts)
        if isinstance(node, Not):
            return not self.test(node.part)
        if isinstance(node, Saved):
            raise ValueError("a saved segment must be resolved before it is evaluated")
        if isinstance(node, Tag):
            return self.tag(node.key, node.cmp)
        if isinstance(node, Label):
            return node.name in self.person.labels
        if isinstance(node, GuideHolds):
            return node.guide_id in (self.person.tags.get("guides") or [])
        if isinstance(node, StoreCity):
            store = self.person.tags.get("preferred_store")
            return store is not None and self.world.store_city.get(store) == node.city
        if isinstance(node, OrderMetric):
            return self.order_metric(node)
        if isinstance(node, Bought):
            return self.bought(node)
        if isinstance(node, Did):
            return self.did(node)
        if isinstance(node, CartNotBought):
            return self.cart_not_bought(node)
        if isinstance(node, CouponHeld):
            return self.coupon_held(node)
        if isinstance(node, CampaignTouch):
            return self.campaign(node)
        if isinstance(node, FirstOrder):
            start, end = _span(node.window, self.today)
            paid = [o.paid_at for o in self.paid_orders() if o.paid_at < end]
            return bool(paid) and start <= min(paid)
        if isinstance(node, Returning):
            start, end = _span(node.window, self.today)
            paid = [o.paid_at for o in self.paid_orders()]
            return any(t < start for t in paid) and any(start <= t < end for t in paid)
        raise TypeError(f"not a segment node: {node!r}")

    # ---- tags

    def tag(self, key: str, cmp: Compare) -> bool:
        actual = self.person.tags.get(key)
        if cmp.value is None and cmp.op in ("eq", "ne"):
            return (actual is None) == (cmp.op == "eq")
        if actual is None:
            return False
        if key in LIST_TAG_KEYS:
            held = {str(v) for v in actual}
            if cmp.op == "eq":
                return str(cmp.value) in held
            if cmp.op == "ne":
                return str(cmp.value) not in held
            if cmp.op == "in":
                return any(str(v) in held for v in cmp.value)
            raise ValueError(f"a list tag compares with eq / ne / in, not {cmp.op!r}")
        if key == "level":
            digit = _level(actual)
            if digit is None:
                return False
            if cmp.op == "in":
                return digit in {_level(v) for v in cmp.value}
            value = _level(cmp.value)
            high = _level(cmp.high) if cmp.high is not None else None
            if value is None or (cmp.op == "between" and high is None):
                return False
            return Compare(cmp.op, value, high).test(digit)
        if cmp.op == "in":
            return Compare("in", tuple(_typed(key, v) for v in cmp.value)).test(actual)
        return Compare(cmp.op, _typed(key, cmp.value), _typed(key, cmp.high)).test(actual)

    # ---- orders

    def paid_orders(self) -> list[OrderRecord]:
        return [o for o in self.person.orders if o.status == "paid" and o.paid_at < self.end_of_today]

    def orders_in(self, window: Window, where: Where) -> list[OrderRecord]:
        start, end = _span(window, self.today)
        found = []
        for o in self.paid_orders():
            if not start <= o.paid_at < end:
                continue
            if where.channels and o.channel not in where.channels:
                continue
            if where.store_id is not None and (o.channel != "pos" or o.store_id != where.store_id):
                continue
            found.append(o)
        return found

    @staticmethod
    def line_is(line: Line, item: Item) -> bool:
        if item.kind == "sku":
            return line.sku == item.value
        if item.kind == "category":
            return line.category == item.value
        if item.kind == "brand":
            return line.brand == item.value
        raise ValueError(f"unknown item kind {item.kind!r}")

    def order_metric(self, node: OrderMetric) -> bool:
        orders = self.orders_in(node.window, node.where)
        if node.item is None:
            values = [o.amount_fen for o in orders]
        else:
            item = node.item
            values = []
            for o in orders:
                lines = [ln for ln in o.lines if self.line_is(ln, item)]
                if lines:
                    values.append(sum(ln.qty * ln.unit_price_fen for ln in lines))
        actual: Any
        if node.measure == "count":
            actual = len(values)
        elif node.measure == "amount":
            actual = sum(values)
        elif node.measure == "aov":
            actual = Fraction(sum(values), len(values)) if values else None
        elif node.measure == "max":
            actual = max(values) if values else None
        else:
            raise ValueError(f"unknown measure {node.measure!r}")
        return node.cmp.test(actual)

    def bought(self, node: Bought) -> bool:
        for o in self.orders_in(node.window, node.where):
            if node.item is None or any(self.line_is(ln, node.item) for ln in o.lines):
                return True
        return False

    # ---- events

    def events_in(self, type_: str, window: Window | None) -> list[EventRecord]:
        start, end = _span(window, self.today) if window is not None else (datetime.min, self.end_of_today)
        return [e for e in self.person.events if e.type == type_ and start <= e.occurred_at < end]

    def event_is(self, event: EventRecord, item: Item) -> bool:
        product = self.world.products.get(event.sku) if event.sku else None
        if item.kind == "sku":
            return event.sku == item.value
        if item.kind == "category":
            category = event.category or (product[0] if product else None)
            return category == item.value
        if item.kind == "brand":
            return product is not None and product[1] == item.value
        raise ValueError(f"unknown item kind {item.kind!r}")

    def did(self, node: Did) -> bool:
        return any(node.item is None or self.event_is(e, node.item) for e in self.events_in(node.type, node.window))

    def cart_not_bought(self, node: CartNotBought) -> bool:
        _, end = _span(node.window, self.today)
        for e in self.events_in("add_cart", node.window):
            if not e.sku or (node.item is not None and not self.event_is(e, node.item)):
                continue
            bought_later = any(
                e.occurred_at < o.paid_at < end and any(ln.sku == e.sku for ln in o.lines) for o in self.paid_orders()
            )
            if not bought_later:
                return True
        return False

    def fate(self, code: str | None, kind: str) -> bool:
        if not code:
            return False
        return any(k == kind and at < self.end_of_today for k, at in self.person.coupon_fates.get(code, ()))

    def coupon_held(self, node: CouponHeld) -> bool:
        for g in self.events_in("coupon_get", node.window):
            if self.fate(g.coupon_code, "coupon_consume") or self.fate(g.coupon_code, "coupon_delete"):
                continue
            valid_days = self.world.card_valid_days.get(g.card_id) if g.card_id else None
            if valid_days is None or g.occurred_at.date() + timedelta(days=valid_days) >= self.today:
                return True
        return False

    def campaign(self, node: CampaignTouch) -> bool:
        mine = [e for e in self.person.events if e.campaign_id == node.campaign and e.occurred_at < self.end_of_today]
        if node.action == "received":
            return bool(mine)
        if node.action == "joined":
            return any(e.type == "coupon_get" for e in mine)
        if node.action == "redeemed":
            return any(
                e.type == "coupon_consume" or (e.type == "coupon_get" and self.fate(e.coupon_code, "coupon_consume"))
                for e in mine
            )
        raise ValueError(f"unknown campaign action {node.action!r}")


# ---------------------------------------------------------------------------------- loading


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _decode_tags(row: Any) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    for column in TAG_COLUMNS:
        value = row._mapping[column]
        if value is None:
            continue
        tags[column] = json.loads(value) if column in LIST_TAGS else value
    return tags


async def load_person(session: AsyncSession, person_id: str, *, profile: str = "profile") -> PersonRecord:
    """Everything `matches` reads about one person (tags from the profile relation `profile`)."""
    columns = ", ".join(TAG_COLUMNS)
    row = (
        await session.execute(text(f"SELECT {columns} FROM {profile} WHERE person_id = :p"), {"p": person_id})
    ).first()
    tags = _decode_tags(row) if row is not None else {}
    labels = frozenset(
        (await session.execute(text("SELECT label FROM person_label WHERE person_id = :p"), {"p": person_id}))
        .scalars()
        .all()
    )
    lines: dict[str, list[Line]] = {}
    for r in await session.execute(
        text(
            "SELECT i.order_id, i.sku, pr.category, pr.brand, i.qty, i.unit_price_fen"
            " FROM orders o JOIN order_item i ON i.order_id = o.order_id LEFT JOIN product pr ON pr.sku = i.sku"
            " WHERE o.person_id = :p ORDER BY i.order_id, i.line_no"
        ),
        {"p": person_id},
    ):
        lines.setdefault(r[0], []).append(Line(r[1], r[2], r[3], int(r[4]), int(r[5])))
    orders = tuple(
        OrderRecord(r[0], _moment(r[1]), int(r[2]), r[3], r[4] or "", r[5], tuple(lines.get(r[0], ())))
        for r in await session.execute(
            text(
                "SELECT order_id, paid_at, amount_fen, channel, store_id, status FROM orders"
                " WHERE person_id = :p ORDER BY paid_at, order_id"
            ),
            {"p": person_id},
        )
    )
    events = tuple(
        EventRecord(r[0], r[1], _moment(r[2]), r[3], r[4], r[5], r[6], r[7])
        for r in await session.execute(
            text(
                "SELECT event_id, type, occurred_at, sku, category, card_id, coupon_code, campaign_id FROM event"
                " WHERE person_id = :p ORDER BY occurred_at, event_id"
            ),
            {"p": person_id},
        )
    )
    codes = sorted({e.coupon_code for e in events if e.type == "coupon_get" and e.coupon_code})
    return PersonRecord(person_id, tags, labels, orders, events, await _fates(session, codes))


async def _fates(session: AsyncSession, codes: Iterable[str]) -> dict[str, tuple[tuple[str, datetime], ...]]:
    fates: dict[str, list[tuple[str, datetime]]] = {}
    for code in codes:
        for r in await session.execute(
            text(
                "SELECT type, occurred_at FROM event WHERE coupon_code = :c"
                " AND type IN ('coupon_consume', 'coupon_delete')"
            ),
            {"c": code},
        ):
            fates.setdefault(code, []).append((r[0], _moment(r[1])))
    return {code: tuple(found) for code, found in fates.items()}


async def load_world(session: AsyncSession) -> World:
    stores = {r[0]: r[1] for r in await session.execute(select(Store.store_id, Store.city))}  # type: ignore[call-overload]
    cards = {r[0]: int(r[1]) for r in await session.execute(select(Coupon.card_id, Coupon.valid_days))}  # type: ignore[call-overload]
    products = {
        r[0]: (r[1], r[2])
        for r in await session.execute(select(Product.sku, Product.category, Product.brand))  # type: ignore[call-overload]
    }
    return World(stores, cards, products)
