"""The sample's persons and their rows, as plain Python.

Persons are the lines of `expected_profiles.jsonl` (identities and tags as the spec authors
computed them). Each row of orders.csv / events.csv is attributed to the expected person holding
one of its identifiers (phones normalised per data.md §1 here, independently of the product); a
row none of whose identifiers belongs to anybody (e.g. only a shared store phone) is
unattributed. Rows the import must reject (data.md §2) are left out. Only rows up to the end of
T exist.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from tests.segment_oracle.windows import DEFAULT, T, Window

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "sample"
DATA = SAMPLE / "data"

CHANNELS = {"pos", "miniapp", "ecom", "oa_mall"}
ONLINE = ("miniapp", "ecom", "oa_mall")
EVENT_TYPES = {
    "follow",
    "unfollow",
    "scan",
    "add_contact",
    "del_contact",
    "browse",
    "add_cart",
    "click",
    "message",
    "coupon_get",
    "coupon_consume",
    "coupon_delete",
}

IdentityKey = frozenset[tuple[str, Any]]


def identity_key(identities: dict[str, list[Any]]) -> IdentityKey:
    """A person as the set of its identifiers; openids as (appid, openid) pairs."""
    return frozenset(
        (kind, tuple(value) if isinstance(value, list) else value)
        for kind, values in identities.items()
        for value in values
    )


def phone(raw: str) -> str | None:
    """data.md §1: digits only, a leading 86 / 0086 dropped when 13 / 15 digits remain; valid is
    11 digits starting with 1."""
    digits = re.sub(r"\D", "", raw or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits if len(digits) == 11 and digits.startswith("1") else None


def _time(raw: str) -> datetime | None:
    try:
        return datetime.strptime(raw.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _money(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _rows(name: str) -> Iterator[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield {k: (v or "").strip() for k, v in row.items()}


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    city: str


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    brand: str


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit_price: Decimal


@dataclass
class Order:
    order_id: str
    channel: str
    store_id: str
    at: datetime
    amount: Decimal
    list_amount: Decimal | None
    coupon_code: str
    status: str
    lines: list[Line] = field(default_factory=list)

    @property
    def day(self) -> date:
        return self.at.date()


@dataclass
class Event:
    event_id: str
    type: str
    at: datetime
    sku: str
    category: str
    card_id: str
    coupon_code: str
    guide_id: str
    store_id: str
    qr_state: str
    campaign_id: str

    @property
    def day(self) -> date:
        return self.at.date()


def _load_stores() -> dict[str, Store]:
    return {r["store_id"]: Store(r["store_id"], r["name"], r["city"]) for r in _rows("stores.csv")}


def _load_products() -> dict[str, Product]:
    return {r["sku"]: Product(r["sku"], r["category"], r["brand"]) for r in _rows("products.csv")}


STORES = _load_stores()
PRODUCTS = _load_products()
VALID_DAYS = {r["card_id"]: int(r["valid_days"]) for r in _rows("coupons.csv")}


def _matches(item: tuple[str, str] | None, sku: str, category: str = "") -> bool:
    """Is an order line / event (sku, and for events its own category) about `item`?"""
    if item is None:
        return True
    kind, value = item
    product = PRODUCTS.get(sku)
    if kind == "sku":
        return sku == value
    if kind == "category":
        return (category or (product.category if product else "")) == value
    if kind == "brand":
        return product is not None and product.brand == value
    raise ValueError(kind)


Where = tuple[str, ...] | str | None  # channels, or a store_id, or anywhere


def _placed(order: Order, where: Where) -> bool:
    if where is None:
        return True
    if isinstance(where, str):  # a store: that store's pos orders
        return order.channel == "pos" and order.store_id == where
    return order.channel in where


@dataclass(frozen=True)
class Orders:
    """Some paid orders of one person, and the aggregates commands compare."""

    orders: tuple[Order, ...]

    @property
    def count(self) -> int:
        return len(self.orders)

    @property
    def amount(self) -> Decimal:
        return sum((o.amount for o in self.orders), Decimal(0))

    @property
    def aov(self) -> Decimal | None:
        """amount / count; None (compares false) without orders."""
        return self.amount / self.count if self.orders else None

    @property
    def max(self) -> Decimal | None:
        return max((o.amount for o in self.orders), default=None)

    def __bool__(self) -> bool:
        return bool(self.orders)


def gt(value: Decimal | None, bound: float) -> bool:
    return value is not None and value > Decimal(str(bound))


def ge(value: Decimal | None, bound: float) -> bool:
    return value is not None and value >= Decimal(str(bound))


def lt(value: Decimal | None, bound: float) -> bool:
    return value is not None and value < Decimal(str(bound))


def le(value: Decimal | None, bound: float) -> bool:
    return value is not None and value <= Decimal(str(bound))


@dataclass
class Person:
    key: IdentityKey
    ref: str
    tags: dict[str, Any]
    metrics: dict[str, Any]
    all_orders: list[Order] = field(default_factory=list)  # paid and refunded, up to T
    events: list[Event] = field(default_factory=list)  # up to T
    sample: Sample | None = field(default=None, repr=False)

    def __hash__(self) -> int:
        return hash(self.key)

    # ------------------------------------------------------------------ tags (as the spec authors computed them)
    def tag(self, key: str) -> Any:
        return self.tags.get(key)

    @property
    def member(self) -> bool:
        return self.tags.get("is_member") == "是"

    @property
    def follower(self) -> bool:
        return self.tags.get("oa_follower") == "是"

    @property
    def contact(self) -> bool:
        return self.tags.get("wecom_contact") == "是"

    @property
    def level(self) -> int | None:
        level = self.tags.get("level")
        return int(level[1:]) if level else None

    @property
    def store_city(self) -> str | None:
        """The city of the 常去门店 (preferred_store)."""
        store = STORES.get(self.tags.get("preferred_store") or "")
        return store.city if store else None

    def holds(self, guide_id: str) -> bool:
        """The guide currently holds the person as a WeCom contact (tag `guides`)."""
        return guide_id in (self.tags.get("guides") or [])

    # ------------------------------------------------------------------ orders
    @property
    def paid(self) -> list[Order]:
        return [o for o in self.all_orders if o.status == "paid"]

    def orders(self, window: Window = DEFAULT, where: Where = None, item: tuple[str, str] | None = None) -> Orders:
        """Paid orders on a local date of `window`, placed at `where`, containing `item`."""
        return Orders(
            tuple(
                o
                for o in self.paid
                if o.day in window
                and _placed(o, where)
                and (item is None or any(_matches(item, ln.sku) for ln in o.lines))
            )
        )

    def bought(self, window: Window = DEFAULT, item: tuple[str, str] | None = None, where: Where = None) -> bool:
        return bool(self.orders(window, where, item))

    def item_amount(self, window: Window, item: tuple[str, str]) -> Decimal:
        """Σ qty × unit_price of the paid lines about `item` in `window`."""
        return sum(
            (
                ln.qty * ln.unit_price
                for o in self.orders(window, item=item).orders
                for ln in o.lines
                if _matches(item, ln.sku)
            ),
            Decimal(0),
        )

    def first_order_in(self, window: Window) -> bool:
        """新客: the first paid order ever falls in the window."""
        first = min((o.day for o in self.paid), default=None)
        return first is not None and first in window

    def returning(self, window: Window) -> bool:
        """老客: a paid order before the window and one within it."""
        return any(o.day < window.first for o in self.paid) and any(o.day in window for o in self.paid)

    # ------------------------------------------------------------------ events
    def did(self, type: str, window: Window = DEFAULT, item: tuple[str, str] | None = None) -> bool:
        return any(e.type == type and e.day in window and _matches(item, e.sku, e.category) for e in self.events)

    def cart_not_bought(self, window: Window = DEFAULT, item: tuple[str, str] | None = None) -> bool:
        """An add_cart in the window (about `item`) whose sku has no later paid order containing
        it, within the window."""
        for event in self.events:
            if event.type != "add_cart" or event.day not in window or not _matches(item, event.sku, event.category):
                continue
            later = [
                o
                for o in self.paid
                if o.day in window and o.at > event.at and any(ln.sku == event.sku for ln in o.lines)
            ]
            if not later:
                return True
        return False

    def coupon_held(self, window: Window | None = None) -> bool:
        """Holds a coupon gotten (in the window) still outstanding at T: not consumed, not deleted
        (by T), not expired (get date + valid_days ≥ T). Consume / delete matched by coupon_code."""
        assert self.sample is not None
        for event in self.events:
            if event.type != "coupon_get" or (window is not None and event.day not in window):
                continue
            if event.coupon_code in self.sample.consumed or event.coupon_code in self.sample.deleted:
                continue
            valid = VALID_DAYS.get(event.card_id)
            if valid is not None and event.day + timedelta(days=valid) >= T:
                return True
        return False


@dataclass
class Sample:
    persons: list[Person]
    by_identity: dict[tuple[str, Any], Person]
    consumed: set[str]  # coupon codes with a coupon_consume event up to T
    deleted: set[str]
    unattributed: dict[str, int]

    def who(self, pred: Any) -> set[IdentityKey]:
        return {p.key for p in self.persons if pred(p)}

    def attribute(self, identifiers: Iterable[tuple[str, Any]]) -> Person | None:
        found = {id(p): p for ident in identifiers if (p := self.by_identity.get(ident)) is not None}
        assert len(found) <= 1, f"a row's identifiers belong to several expected persons: {identifiers}"
        return next(iter(found.values()), None)


def _identifiers(row: dict[str, str]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if row.get("member_id"):
        found.append(("member_id", row["member_id"]))
    if (p := phone(row.get("phone", ""))) is not None:
        found.append(("phone", p))
    for kind in ("unionid", "miniapp_openid", "external_userid"):
        if row.get(kind):
            found.append((kind, row[kind]))
    if row.get("openid") and row.get("appid"):
        found.append(("openid", (row["appid"], row["openid"])))
    return found


@cache
def load_sample() -> Sample:
    persons: list[Person] = []
    by_identity: dict[tuple[str, Any], Person] = {}
    with (SAMPLE / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        for text in handle:
            line = json.loads(text)
            person = Person(identity_key(line["identities"]), line["person_id"], line["tags"], line["metrics"])
            persons.append(person)
            for ident in person.key:
                assert ident not in by_identity, ident
                by_identity[ident] = person
    sample = Sample(persons, by_identity, set(), set(), {"orders": 0, "events": 0})
    for person in persons:
        person.sample = sample
    end = datetime.combine(T, datetime.max.time())

    lines: dict[str, list[Line]] = {}
    for row in _rows("order_items.csv"):
        lines.setdefault(row["order_id"], []).append(Line(row["sku"], int(row["qty"]), Decimal(row["unit_price"])))
    for row in _rows("orders.csv"):
        at, amount = _time(row["paid_at"]), _money(row["amount"])
        if not row["order_id"] or at is None or amount is None:
            continue  # rejected by the import
        if row["status"] not in ("paid", "refunded") or row["channel"] not in CHANNELS:
            continue
        if at > end:
            continue
        order = Order(
            row["order_id"],
            row["channel"],
            row["store_id"],
            at,
            amount,
            _money(row["list_amount"]),
            row["coupon_code"],
            row["status"],
            lines.get(row["order_id"], []),
        )
        owner = sample.attribute(_identifiers(row))
        if owner is None:
            sample.unattributed["orders"] += 1
        else:
            owner.all_orders.append(order)
    for row in _rows("events.csv"):
        at = _time(row["occurred_at"])
        if not row["event_id"] or at is None or row["type"] not in EVENT_TYPES or at > end:
            continue
        event = Event(
            row["event_id"],
            row["type"],
            at,
            row["sku"],
            row["category"],
            row["card_id"],
            row["coupon_code"],
            row["guide_id"],
            row["store_id"],
            row["qr_state"],
            row["campaign_id"],
        )
        if event.type == "coupon_consume":
            sample.consumed.add(event.coupon_code)
        if event.type == "coupon_delete":
            sample.deleted.add(event.coupon_code)
        owner = sample.attribute(_identifiers(row))
        if owner is None:
            sample.unattributed["events"] += 1
        else:
            owner.events.append(event)
    return sample
