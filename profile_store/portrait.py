"""The portrait: what a guide or marketer sees of one customer (issue "portrait built from
tags"). One function, `portrait(...)`, used by the QR-scan push, the `查一下…` command and the
portrait page; the wording lives in bot/texts.py and bot/portrait_text.py.

Tags are computed for the asked date right here (one person: a few milliseconds), so a portrait
is never staler than the data — except on the live push, which takes the stored profile the
callback's own transaction has just brought up to date (`stored=True`); personal data is masked
unless the caller may see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.identity import IdentityGraph
from profile_store.labels import labels_of
from profile_store.pii import mask_name, mask_phone
from profile_store.tagging.history import TagChange, last_change
from profile_store.tagging.refresh import compute_range, load_rules
from profile_store.tagging.rules import Coupon, TagRules, outstanding, window_start
from profile_store.tagging.store import stored_profile

RECENT_BROWSING = 3
TIMELINE_ORDERS = 10


@dataclass(frozen=True)
class LastPurchase:
    paid_at: datetime
    store: str  # store name, or the channel when not a store order
    channel: str
    amount_fen: int


@dataclass(frozen=True)
class HeldCoupon:
    name: str
    expires_on: date | None


@dataclass
class Portrait:
    person_id: str
    as_of: date
    name: str  # masked unless include_pii
    phone: str  # masked unless include_pii
    metrics: dict[str, Any]
    tags: dict[str, Any]
    labels: list[str]
    lifecycle_change: TagChange | None
    store_names: dict[str, str] = field(default_factory=dict)
    sku_names: dict[str, str] = field(default_factory=dict)
    guide_names: dict[str, str] = field(default_factory=dict)
    last_purchase: LastPurchase | None = None
    coupons: list[HeldCoupon] = field(default_factory=list)
    browsing: list[str] = field(default_factory=list)  # recent browsed products, newest first
    # Only with `details=True` (the portrait page): spending by category over the tags' one-year
    # window, largest first, and the latest paid orders, newest first.
    category_spend: list[CategorySpend] = field(default_factory=list)
    timeline: list[PastOrder] = field(default_factory=list)


@dataclass(frozen=True)
class CategorySpend:
    category: str  # "" for items whose product (or its category) is unknown
    amount_fen: int  # Σ qty × unit_price of the items, as the preferred_category tag counts them


@dataclass(frozen=True)
class PastOrder:
    order_id: str
    paid_at: datetime
    channel: str
    store: str  # store name (or id), "" when not a store order
    amount_fen: int
    items: tuple[tuple[str, int], ...]  # (product name or sku, qty), in file order


async def portrait(
    session: AsyncSession,
    graph: IdentityGraph,
    person_id: str,
    as_of: date,
    *,
    include_pii: bool = False,
    details: bool = False,
    stored: bool = False,
) -> Portrait | None:
    """`stored`: take metrics and tags from the `profile` row when it is of `as_of` (the live
    path keeps it current within the callback's own transaction) instead of computing them."""
    person = await graph.canonical(session, person_id)
    if person is None:
        return None
    rules: TagRules | None = None
    kept = await stored_profile(session, person, as_of) if stored else None
    if kept is None:
        rules = await load_rules(session)
        computed = (await compute_range(session, [person], as_of, rules))[person]
        kept = computed.metrics, computed.tags
    metrics, tags = kept
    end = datetime.combine(as_of + timedelta(days=1), time.min)
    name, phone = await _contact(session, graph, person, include_pii)
    found = Portrait(
        person_id=person,
        as_of=as_of,
        name=name,
        phone=phone,
        metrics=metrics,
        tags=tags,
        labels=(await labels_of(session, [person])).get(person, []),
        lifecycle_change=await last_change(session, person, "lifecycle"),
    )
    row = (
        await session.execute(
            text(
                "SELECT o.paid_at, o.store_id, o.channel, o.amount_fen, s.name FROM orders o"
                " LEFT JOIN store s ON s.store_id = o.store_id"
                " WHERE o.person_id = :p AND o.status = 'paid' AND o.paid_at < :end"
                " ORDER BY o.paid_at DESC, o.order_id DESC LIMIT 1"
            ).bindparams(bindparam("end", end, type_=DateTime())),
            {"p": person},
        )
    ).first()
    if row is not None:
        found.last_purchase = LastPurchase(_as_datetime(row[0]), row[4] or row[1] or "", row[2], int(row[3]))
    found.coupons = await _coupons(session, person, as_of, end)
    found.browsing = await _browsing(session, person, end)
    stores = [s for s in (tags.get("preferred_store"),) if s]
    names = await _names(
        session, {"store": stores, "product": tags.get("core_sku", []), "guide": tags.get("guides", [])}
    )
    found.store_names, found.sku_names, found.guide_names = names["store"], names["product"], names["guide"]
    if details:
        rules = rules or await load_rules(session)
        year = datetime.combine(window_start(as_of, rules.window_days), time.min)
        found.category_spend = await _category_spend(session, person, year, end)
        found.timeline = await _timeline(session, person, end)
    return found


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def _contact(session: AsyncSession, graph: IdentityGraph, person: str, include_pii: bool) -> tuple[str, str]:
    """The name on the most recently registered member card and the phone (one not shared with
    other persons), masked unless `include_pii`; "" where there is none. One statement: the
    live push reads a portrait for every scan."""
    name, sealed = (
        await session.execute(
            text(
                "SELECT (SELECT name FROM member WHERE person_id = :p AND name <> ''"
                "   ORDER BY register_time IS NULL, register_time DESC, row_seq DESC LIMIT 1),"
                " (SELECT sealed FROM identity_node WHERE person_id = :p AND kind = 'phone' AND shared = false"
                "   AND sealed IS NOT NULL ORDER BY id LIMIT 1)"
            ),
            {"p": person},
        )
    ).one()
    phone = graph.vault.decrypt(sealed) if sealed else ""
    if include_pii:
        return name or "", phone
    return (mask_name(name) if name else ""), (mask_phone(phone) if phone else "")


async def _coupons(session: AsyncSession, person: str, as_of: date, end: datetime) -> list[HeldCoupon]:
    """Coupons gotten, not consumed or deleted (by code, in SQL) and not expired at T."""
    rows = (
        await session.execute(
            text(
                "SELECT g.occurred_at, c.name, c.valid_days, g.card_id FROM event g"
                " LEFT JOIN coupon c ON c.card_id = g.card_id"
                " WHERE g.person_id = :p AND g.type = 'coupon_get' AND g.occurred_at < :end"
                " AND NOT EXISTS (SELECT 1 FROM event f WHERE f.coupon_code = g.coupon_code AND g.coupon_code <> ''"
                "   AND f.type IN ('coupon_consume', 'coupon_delete') AND f.occurred_at < :end)"
                " ORDER BY g.occurred_at"
            ).bindparams(bindparam("end", end, type_=DateTime())),
            {"p": person},
        )
    ).all()
    held = []
    for got_at, name, valid_days, card_id in rows:
        coupon = Coupon(_as_datetime(got_at), None if valid_days is None else int(valid_days), False, False)
        if outstanding(coupon, as_of):  # the tag's own rule, so the card and the tag agree
            expires = None if coupon.valid_days is None else coupon.got_at.date() + timedelta(days=coupon.valid_days)
            held.append(HeldCoupon(name or card_id or "", expires))
    return held


async def _browsing(session: AsyncSession, person: str, end: datetime) -> list[str]:
    rows = (
        await session.execute(
            text(
                "SELECT COALESCE(p.name, e.category, e.sku) FROM event e LEFT JOIN product p ON p.sku = e.sku"
                " WHERE e.person_id = :p AND e.type IN ('browse', 'add_cart') AND e.occurred_at < :end"
                " ORDER BY e.occurred_at DESC LIMIT 10"
            ).bindparams(bindparam("end", end, type_=DateTime())),
            {"p": person},
        )
    ).scalars()
    seen: list[str] = []
    for name in rows:
        if name and name not in seen:
            seen.append(name)
    return seen[:RECENT_BROWSING]


# The tables a portrait names things from: store ids, SKUs and guides' userids, by their key.
_NAMED = {"store": "store_id", "product": "sku", "guide": "guide_id"}


async def _names(session: AsyncSession, wanted: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """table → {id: name} for the ids asked of each table (blank names left out), in one
    statement for all tables."""
    found: dict[str, dict[str, str]] = {table: {} for table in wanted}
    asked = {table: sorted(set(ids)) for table, ids in wanted.items() if ids}
    if not asked:
        return found
    parts = [
        f"SELECT '{table}', {_NAMED[table]}, name FROM {table} WHERE {_NAMED[table]} IN :{table}" for table in asked
    ]
    query = text(" UNION ALL ".join(parts)).bindparams(*(bindparam(table, expanding=True) for table in asked))
    for table, key, name in (await session.execute(query, asked)).all():
        if name:
            found[table][key] = name
    return found


async def _category_spend(session: AsyncSession, person: str, start: datetime, end: datetime) -> list[CategorySpend]:
    """Paid items of [start, end) by their product's category."""
    rows = (
        await session.execute(
            text(
                "SELECT COALESCE(p.category, ''), SUM(i.qty * i.unit_price_fen) FROM orders o"
                " JOIN order_item i ON i.order_id = o.order_id LEFT JOIN product p ON p.sku = i.sku"
                " WHERE o.person_id = :p AND o.status = 'paid' AND o.paid_at >= :start AND o.paid_at < :end"
                " GROUP BY COALESCE(p.category, '')"
            ).bindparams(bindparam("start", start, type_=DateTime()), bindparam("end", end, type_=DateTime())),
            {"p": person},
        )
    ).all()
    spend = [CategorySpend(str(category), int(total or 0)) for category, total in rows]
    # Sorted here: PostgreSQL and SQLite order text differently (collation); ties go by name.
    return sorted(spend, key=lambda c: (-c.amount_fen, c.category))


async def _timeline(session: AsyncSession, person: str, end: datetime) -> list[PastOrder]:
    """The latest paid orders before `end` with their items (two queries, not one per order)."""
    orders = (
        await session.execute(
            text(
                "SELECT o.order_id, o.paid_at, o.channel, o.store_id, s.name, o.amount_fen FROM orders o"
                " LEFT JOIN store s ON s.store_id = o.store_id"
                " WHERE o.person_id = :p AND o.status = 'paid' AND o.paid_at < :end"
                " ORDER BY o.paid_at DESC, o.order_id DESC LIMIT :n"
            ).bindparams(bindparam("end", end, type_=DateTime())),
            {"p": person, "n": TIMELINE_ORDERS},
        )
    ).all()
    if not orders:
        return []
    items: dict[str, list[tuple[str, int]]] = {}
    lines = await session.execute(
        text(
            "SELECT i.order_id, COALESCE(NULLIF(p.name, ''), i.sku), i.qty FROM order_item i"
            " LEFT JOIN product p ON p.sku = i.sku WHERE i.order_id IN :ids ORDER BY i.order_id, i.line_no"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": [row[0] for row in orders]},
    )
    for order_id, name, qty in lines.all():
        items.setdefault(order_id, []).append((str(name), int(qty)))
    return [
        PastOrder(
            order_id,
            _as_datetime(paid_at),
            channel,
            store_name or store_id or "",
            int(amount),
            tuple(items.get(order_id, [])),
        )
        for order_id, paid_at, channel, store_id, store_name, amount in orders
    ]
