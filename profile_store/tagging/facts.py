"""Gather `PersonFacts` of persons, as of T, with aggregates run in the database.

`gather` covers the persons whose ids fall in [lo, hi] (a page of a full refresh); `gather_persons`
a set of persons wherever their ids fall (the incremental path: the persons a batch of callbacks
touched). The same statements either way, only the persons' filter differs (a range, or a set), so
the incremental result is the full refresh's by construction. Each query groups by person in SQL
and returns a few rows per person; Python only picks winners among them (ties, Unicode order) —
never a loop over raw orders.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, DateTime, String, and_, any_, bindparam, case, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from profile_store.models import Coupon as CouponCard
from profile_store.models import Event, Member, Order, OrderItem, Product
from profile_store.tagging.rules import (
    INTEREST_TYPES,
    Coupon,
    MemberRecord,
    PersonFacts,
    TagRules,
    window_start,
)

ORDERS = Order.__table__  # type: ignore[attr-defined]
ITEMS = OrderItem.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
MEMBERS = Member.__table__  # type: ignore[attr-defined]
PRODUCTS = Product.__table__  # type: ignore[attr-defined]
CARDS = CouponCard.__table__  # type: ignore[attr-defined]


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min)


class Windows:
    """The instants bounding T's windows (business times are naive local)."""

    def __init__(self, as_of: date, rules: TagRules) -> None:
        self.end = _start(as_of + timedelta(days=1))  # everything before the end of T exists
        self.year = _start(window_start(as_of, rules.window_days))
        self.rfm = _start(window_start(as_of, rules.rfm_window_days))
        self.browse = _start(window_start(as_of, rules.browse_days))


# The statements are built once (building SQLAlchemy statements costs more than running these
# small queries for one person, the incremental path); values come as bound parameters.
LO, HI = bindparam("lo", type_=String()), bindparam("hi", type_=String())
END, YEAR = bindparam("end", type_=DateTime()), bindparam("year", type_=DateTime())
BROWSE = bindparam("browse", type_=DateTime())
# A set of persons: on PostgreSQL one array parameter (`= ANY`), one statement whatever the set's
# size (asyncpg prepares each distinct statement text); elsewhere an expanding IN.
IDS_ARRAY = bindparam("ids", type_=ARRAY(String()))
IDS_LIST = bindparam("ids", type_=String(), expanding=True)
RANGE, ANY_OF, IN_LIST = "range", "any", "in"


@dataclass(frozen=True)
class _Statements:
    orders: Select[Any]
    items: Select[Any]
    activity: Select[Any]
    browsing: Select[Any]
    follows: Select[Any]
    contacts: Select[Any]
    source: Select[Any]
    coupons: Select[Any]
    members: Select[Any]


@lru_cache(maxsize=3)
def _statements(persons: str = RANGE) -> _Statements:
    """The statements, with the persons chosen by id range (RANGE) or by set (ANY_OF, IN_LIST)."""

    def chosen(person_id: Any) -> ColumnElement[bool]:
        if persons == RANGE:
            return and_(person_id >= LO, person_id <= HI)
        return person_id == any_(IDS_ARRAY) if persons == ANY_OF else person_id.in_(IDS_LIST)

    o, i, p, e, c, m = ORDERS.c, ITEMS.c, PRODUCTS.c, EVENTS.c, CARDS.c, MEMBERS.c
    paid = and_(chosen(o.person_id), o.status == "paid", o.paid_at < END)
    recent = o.paid_at >= YEAR
    # 1. Paid orders, one scan: grouped by person, channel, store and whether in the window;
    #    Python adds the groups up (a person has a handful of them). Grouped by position: the
    #    grouped expressions carry bound values, which PostgreSQL would not recognise as the
    #    selected ones if they were repeated.
    orders = (
        select(
            o.person_id, o.channel, func.coalesce(o.store_id, ""), recent, func.count(), func.sum(o.amount_fen),
            func.max(o.paid_at), func.max(o.amount_fen), func.sum(case((o.coupon_code != "", 1), else_=0)),
            func.sum(func.coalesce(o.list_amount_fen, o.amount_fen)),
        )
        .where(paid)
        .group_by(text("1, 2, 3, 4"))
    )
    # 2. Items of the window's paid orders by SKU (its category with it): Σ qty × unit_price and
    #    when last bought, per category; distinct orders per SKU for the core SKUs. Items are
    #    narrowed by their own person_id too, so both sides are index range scans (without it
    #    PostgreSQL hash-joins the page's orders against a full scan of order_item, every page).
    items = (
        select(
            o.person_id, i.sku, p.category, func.sum(i.qty * i.unit_price_fen), func.max(o.paid_at),
            func.count(func.distinct(o.order_id)),
        )
        .select_from(ORDERS.join(ITEMS, i.order_id == o.order_id).outerjoin(PRODUCTS, p.sku == i.sku))
        .where(paid, recent, chosen(i.person_id))
        .group_by(o.person_id, i.sku, p.category)
    )
    events = and_(chosen(e.person_id), e.occurred_at < END)
    year = e.occurred_at >= YEAR
    # 3. Activity: last event, and whether any (interest) event fell in the window.
    activity = (
        select(
            e.person_id, func.max(e.occurred_at), func.sum(case((year, 1), else_=0)),
            func.sum(case((and_(year, e.type.in_(INTEREST_TYPES)), 1), else_=0)),
        )
        .where(events)
        .group_by(e.person_id)
    )
    # 4. Browsing of the browse window, by category (the event's own, else its product's).
    category = func.coalesce(func.nullif(e.category, ""), p.category)
    browsing = (
        select(e.person_id, category, func.count(), func.max(e.occurred_at))
        .select_from(EVENTS.outerjoin(PRODUCTS, p.sku == e.sku))
        .where(events, e.type == "browse", e.occurred_at >= BROWSE, category.is_not(None), category != "")
        .group_by(e.person_id, category)
    )

    # 5. Follow state per official account and contact state per guide: the last event decides
    #    (ties in time: the later event id).
    def last_of(types: tuple[str, str], key: Any) -> Select[Any]:
        ranked = (
            select(
                e.person_id.label("person_id"), key.label("holder"), e.type.label("type"),
                func.row_number()
                .over(partition_by=(e.person_id, key), order_by=(e.occurred_at.desc(), e.event_id.desc()))
                .label("n"),
            )
            .where(events, e.type.in_(types), key.is_not(None), key != "")
            .subquery()
        )
        return select(ranked.c.person_id, ranked.c.holder, ranked.c.type).where(ranked.c.n == 1)

    # 6. Source: the qr_state of the first follow / add_contact / scan carrying one.
    first = (
        select(
            e.person_id.label("person_id"), e.qr_state.label("qr_state"),
            func.row_number().over(partition_by=e.person_id, order_by=(e.occurred_at.asc(), e.event_id.asc()))
            .label("n"),
        )
        .where(events, e.type.in_(("follow", "add_contact", "scan")), e.qr_state.is_not(None), e.qr_state != "")
        .subquery()
    )
    # 7. Coupons gotten up to T, each with its fate by the end of T (matched by coupon code).
    fate = EVENTS.alias("fate")
    coupons = (
        select(
            e.person_id, e.occurred_at, c.valid_days, _fate_exists(fate, e.coupon_code, "coupon_consume"),
            _fate_exists(fate, e.coupon_code, "coupon_delete"),
        )
        .select_from(EVENTS.outerjoin(CARDS, c.card_id == e.card_id))
        .where(events, e.type == "coupon_get")
    )
    # 8. Member records that exist at T.
    members = select(m.person_id, m.register_time, m.row_seq, m.level, m.city, m.gender, m.birthday).where(
        chosen(m.person_id), or_(m.register_time.is_(None), m.register_time < END)
    )
    return _Statements(
        orders, items, activity, browsing, last_of(("follow", "unfollow"), e.appid),
        last_of(("add_contact", "del_contact"), e.guide_id),
        select(first.c.person_id, first.c.qr_state).where(first.c.n == 1), coupons, members,
    )


async def gather(
    session: AsyncSession, lo: str, hi: str, as_of: date, rules: TagRules, wanted: Collection[str] | None = None
) -> dict[str, PersonFacts]:
    """Facts of every person with lo <= person_id <= hi (restricted to `wanted` when given)."""
    return await _gather(session, _statements(RANGE), {"lo": lo, "hi": hi}, as_of, rules, wanted)


async def gather_persons(
    session: AsyncSession, person_ids: Sequence[str], as_of: date, rules: TagRules
) -> dict[str, PersonFacts]:
    """Facts of these persons, wherever their ids fall (a few hundred at a time, at most)."""
    if not person_ids:
        return {}
    persons = ANY_OF if session.get_bind().dialect.name == "postgresql" else IN_LIST
    ids = list(person_ids)
    return await _gather(session, _statements(persons), {"ids": ids}, as_of, rules, set(ids))


async def _gather(
    session: AsyncSession,
    q: _Statements,
    chosen: dict[str, Any],
    as_of: date,
    rules: TagRules,
    wanted: Collection[str] | None,
) -> dict[str, PersonFacts]:
    w = Windows(as_of, rules)
    params = {**chosen, "end": w.end, "year": w.year, "browse": w.browse}
    facts: dict[str, PersonFacts] = {}

    def of(person_id: str) -> PersonFacts | None:
        if wanted is not None and person_id not in wanted:
            return None
        found = facts.get(person_id)
        if found is None:
            found = facts[person_id] = PersonFacts()
        return found

    async def rows(query: Select[Any]) -> list[Any]:
        return list((await session.execute(query, params)).all())

    for r in await rows(q.orders):
        f = of(r[0])
        if f is None:
            continue
        channel, store_id, in_window, last, top = r[1], r[2], bool(r[3]), r[6], r[7]
        n, amount = int(r[4]), int(r[5] or 0)
        f.orders_total += n
        f.amount_total += amount
        if f.last_paid is None or last > f.last_paid:
            f.last_paid = last
        if last >= w.rfm:
            f.paid_in_rfm_window = True
        if not in_window:
            continue
        f.orders += n
        f.amount += amount
        f.max_order = int(top) if f.max_order is None else max(f.max_order, int(top))
        f.with_coupon += int(r[8] or 0)
        f.list_amount += int(r[9] or 0)
        seen = f.channels.get(channel, (0, 0))
        f.channels[channel] = (seen[0] + n, seen[1] + amount)
        if channel == "pos" and store_id:
            count, latest = f.pos_stores.get(store_id, (0, last))
            f.pos_stores[store_id] = (count + n, max(latest, last))
    for r in await rows(q.items):
        if (f := of(r[0])) is None:
            continue
        sku, category, value, last, orders = r[1], r[2], int(r[3] or 0), r[4], int(r[5])
        if category:
            seen_value, seen_last = f.categories.get(category, (0, last))
            f.categories[category] = (seen_value + value, max(seen_last, last))
        if orders >= rules.core_sku_orders:
            f.skus[sku] = orders
    for r in await rows(q.activity):
        if (f := of(r[0])) is not None:
            f.last_event, f.events_in_window, f.interest_in_window = r[1], int(r[2] or 0), int(r[3] or 0)
    for r in await rows(q.browsing):
        if (f := of(r[0])) is not None:
            f.browsed[r[1]] = (int(r[2]), r[3])
    for r in await rows(q.follows):
        if r[2] == "follow" and (f := of(r[0])) is not None:
            f.following = True
    for r in await rows(q.contacts):
        if r[2] == "add_contact" and (f := of(r[0])) is not None:
            f.guides.append(r[1])
    for r in await rows(q.source):
        if (f := of(r[0])) is not None:
            f.source = r[1]
    for r in await rows(q.coupons):
        if (f := of(r[0])) is not None:
            f.coupons.append(Coupon(r[1], None if r[2] is None else int(r[2]), bool(r[3]), bool(r[4])))
    for r in await rows(q.members):
        if (f := of(r[0])) is not None:
            f.members.append(MemberRecord(r[1], int(r[2] or 0), r[3], r[4] or "", r[5] or None, r[6]))
    return facts


def _fate_exists(fate: Any, code: Any, kind: str) -> ColumnElement[bool]:
    """Whether a coupon code had a `kind` event by the end of T (a code with no value has none)."""
    return (
        select(fate.c.event_id)
        .where(fate.c.coupon_code == code, fate.c.type == kind, fate.c.occurred_at < END, code != "")
        .exists()
    )
