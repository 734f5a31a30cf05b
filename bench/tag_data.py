"""Synthetic profile data for the tag refresh benchmark, written straight into the tables.

No CSV files, no importer, no identity graph: persons are minted directly (`P000000001`, ...)
and every member, order, order item and event row already carries its `person_id`, which is
all a tag refresh reads. One million persons (~5 M orders, ~10 M items, ~10 M events) load in
minutes:

- rows are generated with numpy, `CHUNK_PERSONS` persons at a time (memory stays bounded whatever
  the size); the next chunk is generated in a worker thread while the current one is written;
- they are written with the drivers' bulk paths: asyncpg's binary COPY on PostgreSQL (events on
  a second connection, in parallel with the rest), sqlite3's executemany in one transaction per
  chunk on SQLite;
- the filled tables' secondary indexes are dropped first and rebuilt at the end from their own
  stored definitions (the schema ends as migrated); PostgreSQL is then ANALYZEd.

The same seed and sizes give the same rows (person `created_at` aside, which is the fill time).

    python bench/tag_data.py --database sqlite --persons 20000
    QIANMIAN_BENCH_PG=postgresql://postgres@127.0.0.1:55449/postgres \\
        python bench/tag_data.py --database postgresql --persons 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from importing import fresh_pg  # bench/ is on the path when run as a script
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.db import Database
from profile_store.models import Coupon, Guide, Product, Store

Ints = NDArray[np.int64]
Objects = NDArray[np.object_]
Mask = NDArray[np.bool_]

# ---------------------------------------------------------------- the shape of the data

CHUNK_PERSONS = 10_000  # persons generated and written per transaction (part of what a seed means)
# Business times are naive local times, kept as whole seconds since EPOCH while generating.
EPOCH = date(2022, 1, 1)
END = datetime(2026, 11, 1)  # nothing happens at or after this moment
HISTORY_START = datetime(2024, 1, 1)  # orders and events
REGISTER_START = datetime(2022, 11, 1)  # member cards: the last 4 years
BIRTHDAY_FIRST, BIRTHDAY_LAST = date(1960, 1, 1), date(2005, 12, 31)
DAY = 86_400

CITIES = (("上海", "华东"), ("北京", "其他"), ("广州", "其他"), ("成都", "其他"), ("杭州", "华东"))
STORES = 12
GUIDES_PER_STORE = 3  # GS<store:03d><k>: k = 0 is the store manager, 1..2 guides
CATEGORIES = ("连衣裙", "T恤", "外套", "女鞋", "男鞋", "牛仔裤", "童装", "衬衫", "配饰", "针织衫")
BRANDS = ("云裳", "木棉", "青禾", "北极光")
PRODUCTS = 200
PRICES_YUAN = (59, 99, 129, 199, 299, 399, 599, 899, 1299, 1999)
# card_id, name, kind, value (yuan), threshold (fen), valid days; the discount in fen on an order.
COUPONS = (("C30", "30元无门槛券", "cash", 30.0, 0, 30), ("C50", "满300减50", "cash", 50.0, 30_000, 30))
COUPON_OFF_FEN = (3_000, 5_000)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀英", "霞", "平", "欣怡", "子涵", "浩然", "雨桐")
APPIDS = ("wxapp1", "wxapp2")  # the brand's official account, and a regional one (8% of followers)

MEMBER_SHARE = 0.6
ORDER_CHANNELS = ("pos", "miniapp", "ecom", "oa_mall")
ORDER_CHANNEL_P = (0.50, 0.25, 0.18, 0.07)
ORDER_COUPON_SHARE = 0.25
REFUND_SHARE = 0.05

# Event types by code. The "base" types are drawn per person; the others only ever follow an
# earlier event of the same person: unfollow a follow, del_contact an add_contact, and
# coupon_consume / coupon_delete a coupon_get (reusing its card and code).
TYPES = ("browse", "click", "add_cart", "message", "scan", "follow", "add_contact", "coupon_get",
         "unfollow", "del_contact", "coupon_consume", "coupon_delete")
T = {name: code for code, name in enumerate(TYPES)}
BASE_TYPES = np.array([T[t] for t in TYPES[:8]])
BASE_P = np.array([34, 10, 8, 9, 5, 6, 4, 12], dtype=float) / 88
# parent type → (follow-up type, probability); a coupon has at most one fate (consumed or deleted).
FOLLOW_UPS = ((T["follow"], T["unfollow"], 0.15), (T["add_contact"], T["del_contact"], 0.10),
              (T["coupon_get"], T["coupon_consume"], 0.35), (T["coupon_get"], T["coupon_delete"], 0.10))
# How many events one base event makes on average, so that events_per_person holds overall.
EVENTS_PER_BASE = 1 + sum(float(BASE_P[BASE_TYPES == parent][0]) * p for parent, _, p in FOLLOW_UPS)
EVENT_CHANNEL = np.array(["miniapp", "miniapp", "miniapp", "oa", "oa", "oa", "wecom", "oa",
                          "oa", "wecom", "pos", "oa"], dtype=object)
WECOM_MESSAGE_SHARE = 0.3  # the rest of the messages are on the official account

# Columns written per table (everything else is NULL or its default).
COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "anchor_node_id", "status", "created_at", "updated_at"),
    "member": ("member_id", "person_id", "name", "gender", "birthday", "city", "level", "register_time",
               "register_channel", "register_store_id", "row_seq"),
    "orders": ("order_id", "person_id", "channel", "store_id", "paid_at", "amount_fen", "list_amount_fen",
               "coupon_code", "status", "member_id"),
    "order_item": ("order_id", "line_no", "person_id", "sku", "qty", "unit_price_fen"),
    "event": ("event_id", "fact_key", "person_id", "type", "occurred_at", "channel", "appid", "openid",
              "miniapp_openid", "external_userid", "guide_id", "store_id", "qr_state", "sku", "category",
              "card_id", "coupon_code", "origin"),
}


def _seconds(moment: datetime) -> int:
    return int((moment - datetime.combine(EPOCH, datetime.min.time())).total_seconds())


# ---------------------------------------------------------------- values as the driver wants them


class _Values:
    """Converts generated numbers to the Python values one back-end's driver binds.

    asyncpg takes `datetime` / `date` objects. On SQLite the values are stored as the text
    SQLAlchemy's SQLite DateTime / Date write ("2025-01-02 03:04:05.000000", "1990-01-02"), so
    comparisons with bound parameters keep working; it is assembled from per-day and
    per-second-of-day lookup tables, ten times faster than formatting each stamp.
    """

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        if sqlite:
            days = (END.date() - EPOCH).days + 1
            self._day_text = np.array([f"{d} " for d in np.datetime64(EPOCH) + np.arange(days)], dtype=object)
            self._clock_text = np.array(
                [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000000" for s in range(DAY)], dtype=object
            )

    def stamps(self, seconds: Ints) -> list[Any]:
        """Naive local times given as seconds since EPOCH."""
        if self.sqlite:
            return list((self._day_text[seconds // DAY] + self._clock_text[seconds % DAY]).tolist())
        return list((np.datetime64(EPOCH, "s") + seconds).tolist())

    def dates(self, days: Ints, first: date) -> list[Any]:
        """Calendar dates given as days since `first`."""
        values = np.datetime64(first, "D") + days
        if self.sqlite:
            return list(np.datetime_as_string(values, unit="D").tolist())
        return list(values.tolist())

    def utc(self, moment: datetime) -> Any:
        """A system timestamp (aware UTC): naive UTC text on SQLite, as UTCDateTime stores it."""
        if self.sqlite:
            return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return moment.astimezone(UTC)


# ---------------------------------------------------------------- generation


@dataclass
class _Chunk:
    """One chunk's rows: table → one Python list per column of COLUMNS[table]."""

    tables: dict[str, list[list[Any]]] = field(default_factory=dict)

    def rows(self, table: str) -> int:
        return len(self.tables[table][0])


def _masked(size: int, mask: Mask, values: Any) -> Objects:
    """An object column: `values` (a scalar, or an array aligned with the rows) where `mask`, else NULL."""
    out = np.full(size, None, dtype=object)
    out[mask] = values[mask] if isinstance(values, np.ndarray) else values
    return out


def _strings(template: str, numbers: Ints) -> Objects:
    """`template % n` for every n (e.g. "P%09d"), as an object array."""
    return np.array(list(map(template.__mod__, numbers.tolist())), dtype=object)


def _counts(rng: np.random.Generator, size: int, mean: float, shape: float) -> Ints:
    """Rows per person: Poisson around a gamma-distributed rate (a few heavy, some none)."""
    if mean <= 0:
        return np.zeros(size, dtype=np.int64)
    return rng.poisson(rng.gamma(shape, mean / shape, size)).astype(np.int64)


def _moments(rng: np.random.Generator, size: int, start: datetime, opens: int, closes: int) -> Ints:
    """Random whole-second moments from `start` to END, between `opens` and `closes` o'clock."""
    first = _seconds(start) // DAY
    days = rng.integers(first, _seconds(END) // DAY, size)
    return days * DAY + rng.integers(opens * 3600, closes * 3600, size)


class _Generator:
    """Makes chunk after chunk; ids keep counting across chunks, so chunks must come in order."""

    def __init__(self, persons: int, seed: int, orders_per_person: float, events_per_person: float,
                 values: _Values) -> None:
        self.persons = persons
        self.seed = seed
        self.orders_per_person = orders_per_person
        self.events_per_person = events_per_person
        self.values = values
        self.created_at = values.utc(datetime.now(UTC))
        self.next_order = 1
        self.next_event = 1
        self.next_code = 1
        rng = np.random.default_rng([seed, 1 << 20])
        self.price_fen: Ints = rng.choice(np.array(PRICES_YUAN), PRODUCTS).astype(np.int64) * 100
        # Popularity falls with the SKU number: SKU0000 is the best seller.
        popularity = 1.0 / (np.arange(PRODUCTS) + 8.0)
        self.product_p = popularity / popularity.sum()
        self.skus = _strings("SKU%04d", np.arange(PRODUCTS, dtype=np.int64))
        self.sku_category = np.array([CATEGORIES[i % len(CATEGORIES)] for i in range(PRODUCTS)], dtype=object)
        self.store_ids = _strings("S%03d", np.arange(1, STORES + 1, dtype=np.int64))
        self.store_cities = np.array([CITIES[i % len(CITIES)][0] for i in range(STORES)], dtype=object)
        self.names = np.array([s + g for s in SURNAMES for g in GIVEN], dtype=object)

    # ------------------------------------------------------------ reference data

    def reference(self) -> list[Any]:
        """Stores, guides, products and coupons, as model objects (a few hundred rows)."""
        rows: list[Any] = []
        for s in range(1, STORES + 1):
            city, region = CITIES[(s - 1) % len(CITIES)]
            rows.append(Store(store_id=f"S{s:03d}", name=f"{city}{s}号店", city=city, region=region))
            for k in range(GUIDES_PER_STORE):
                rows.append(Guide(guide_id=f"GS{s:03d}{k}", name=f"导购{s}-{k}", store_id=f"S{s:03d}",
                                  role="manager" if k == 0 else "guide"))
        for i in range(PRODUCTS):
            category, brand = CATEGORIES[i % len(CATEGORIES)], BRANDS[i // 50 % len(BRANDS)]
            rows.append(Product(sku=f"SKU{i:04d}", name=f"{brand}{category}{i}", category=category, brand=brand,
                                list_price_fen=int(self.price_fen[i])))
        for card_id, name, kind, value, threshold, days in COUPONS:
            rows.append(Coupon(card_id=card_id, name=name, kind=kind, value=value, threshold_fen=threshold,
                               valid_days=days))
        return rows

    # ------------------------------------------------------------ per-person data

    def chunk(self, number: int) -> _Chunk:
        """Persons number*CHUNK_PERSONS+1 .. (number+1)*CHUNK_PERSONS, everything about them."""
        rng = np.random.default_rng([self.seed, number])
        first = number * CHUNK_PERSONS + 1
        index = np.arange(first, min(first + CHUNK_PERSONS, self.persons + 1), dtype=np.int64)
        n = len(index)
        person_ids = _strings("P%09d", index)
        home = rng.integers(0, STORES, n)  # the store each person mostly shops at (0-based)
        member = rng.random(n) < MEMBER_SHARE
        member_ids = _masked(n, member, _strings("M%09d", index))
        out = _Chunk()
        out.tables["person"] = [
            person_ids.tolist(), index.tolist(), ["active"] * n, [self.created_at] * n, [self.created_at] * n,
        ]
        self._members(rng, out, index, person_ids, member_ids, home, member)
        self._orders(rng, out, person_ids, member_ids, home)
        self._events(rng, out, index, person_ids, home)
        return out

    def _members(self, rng: np.random.Generator, out: _Chunk, index: Ints, person_ids: Objects,
                 member_ids: Objects, home: Ints, member: Mask) -> None:
        m = int(member.sum())
        v = self.values
        gender = rng.choice(np.array(["F", "M", None], dtype=object), m, p=[0.5, 0.3, 0.2])
        birthday = rng.integers(0, (BIRTHDAY_LAST - BIRTHDAY_FIRST).days + 1, m)
        level = np.minimum(5, rng.exponential(1 / 0.8, m).astype(np.int64))  # V0 common, V5 rare
        registered = rng.integers(_seconds(REGISTER_START), _seconds(END), m)
        # Cards are mostly registered at the home store, some online (no store).
        channel = rng.choice(np.array(["pos", "miniapp", "oa"], dtype=object), m, p=[0.6, 0.3, 0.1])
        store = np.where(channel == "pos", self.store_ids[home[member]], "")
        out.tables["member"] = [
            member_ids[member].tolist(), person_ids[member].tolist(),
            self.names[rng.integers(0, len(self.names), m)].tolist(), gender.tolist(),
            v.dates(birthday, BIRTHDAY_FIRST), self.store_cities[home[member]].tolist(),
            _strings("V%d", level).tolist(), v.stamps(registered), channel.tolist(), store.tolist(),
            index[member].tolist(),
        ]

    def _orders(self, rng: np.random.Generator, out: _Chunk, person_ids: Objects, member_ids: Objects,
                home: Ints) -> None:
        n = len(person_ids)
        per_person = _counts(rng, n, self.orders_per_person, shape=1.5)
        owner = np.repeat(np.arange(n), per_person)
        m = len(owner)
        numbers = np.arange(self.next_order, self.next_order + m, dtype=np.int64)
        self.next_order += m
        order_ids = _strings("O%010d", numbers)
        channel = rng.choice(len(ORDER_CHANNELS), m, p=ORDER_CHANNEL_P)
        pos = channel == 0
        # At the till: the home store mostly, any store sometimes; online orders have no store.
        store = np.where(rng.random(m) < 0.8, home[owner], rng.integers(0, STORES, m))
        store_id = np.where(pos, self.store_ids[store], "")
        paid_at = _moments(rng, m, HISTORY_START, 9, 22)

        # Items: 1-3 lines an order, list price × quantity, sold at a discount now and then.
        lines = rng.choice(np.array([1, 2, 3]), m, p=[0.3, 0.4, 0.3])
        item_order = np.repeat(np.arange(m), lines)
        starts = np.cumsum(lines) - lines
        line_no = np.arange(len(item_order)) - np.repeat(starts, lines) + 1
        sku = rng.choice(PRODUCTS, len(item_order), p=self.product_p)
        qty = np.where(rng.random(len(item_order)) < 0.2, 2, 1)
        list_fen = self.price_fen[sku]
        unit_fen = list_fen * rng.choice(np.array([100, 100, 90, 80, 70]), len(item_order)) // 100
        list_total = np.add.reduceat(qty * list_fen, starts) if m else np.zeros(0, dtype=np.int64)
        paid_total = np.add.reduceat(qty * unit_fen, starts) if m else np.zeros(0, dtype=np.int64)

        # A coupon on a quarter of the orders: C50 needs 300 yuan, C30 has no threshold.
        coupon = rng.random(m) < ORDER_COUPON_SHARE
        card = np.where((paid_total >= COUPONS[1][4]) & (rng.random(m) < 0.5), 1, 0)
        amount = np.where(coupon, np.maximum(0, paid_total - np.array(COUPON_OFF_FEN)[card]), paid_total)
        code_no = np.arange(self.next_code, self.next_code + m, dtype=np.int64)
        self.next_code += m
        codes = np.where(coupon, np.array(["C30-2", "C50-2"], dtype=object)[card] + _strings("%09d", code_no), "")
        status = np.where(rng.random(m) < REFUND_SHARE, "refunded", "paid")
        # Members show their card at the till most of the time.
        shown = pos & (rng.random(m) < 0.85)
        out.tables["orders"] = [
            order_ids.tolist(), person_ids[owner].tolist(), np.array(ORDER_CHANNELS, dtype=object)[channel].tolist(),
            store_id.tolist(), self.values.stamps(paid_at), amount.tolist(), list_total.tolist(), codes.tolist(),
            status.tolist(), _masked(m, shown, member_ids[owner]).tolist(),
        ]
        out.tables["order_item"] = [
            order_ids[item_order].tolist(), line_no.tolist(), person_ids[owner][item_order].tolist(),
            self.skus[sku].tolist(), qty.tolist(), unit_fen.tolist(),
        ]

    def _events(self, rng: np.random.Generator, out: _Chunk, index: Ints, person_ids: Objects, home: Ints) -> None:
        n = len(person_ids)
        # Base events, then the follow-ups they cause (each later than its parent, within 30 days).
        per_person = _counts(rng, n, self.events_per_person / EVENTS_PER_BASE, shape=1.0)
        owner = np.repeat(np.arange(n), per_person)
        kind = rng.choice(BASE_TYPES, len(owner), p=BASE_P)
        at = _moments(rng, len(owner), HISTORY_START, 8, 23)
        card = rng.choice(2, len(owner), p=[0.6, 0.4])
        code_no = np.full(len(owner), -1, dtype=np.int64)
        gets = kind == T["coupon_get"]
        code_no[gets] = np.arange(self.next_code, self.next_code + int(gets.sum()))
        self.next_code += int(gets.sum())
        fate = rng.random(len(owner))
        parents, child_types = [], []
        taken: dict[int, float] = {}  # parent type → share of `fate` already given to a follow-up
        for parent_type, child_type, p in FOLLOW_UPS:
            # Follow-ups of one parent type take disjoint slices of `fate`: a coupon is consumed or
            # deleted, never both.
            low = taken.get(parent_type, 0.0)
            taken[parent_type] = low + p
            chosen = np.flatnonzero((kind == parent_type) & (fate >= low) & (fate < low + p))
            parents.append(chosen)
            child_types.append(np.full(len(chosen), child_type))
        parent = np.concatenate(parents)
        # A minute to 30 days later, and before END (every parent is at least an hour before it).
        room = np.minimum(30 * DAY, _seconds(END) - at[parent]) - 60
        later = at[parent] + 60 + (rng.random(len(parent)) * room).astype(np.int64)
        owner = np.concatenate([owner, owner[parent]])
        kind = np.concatenate([kind, *child_types])
        at = np.concatenate([at, later])
        card = np.concatenate([card, card[parent]])
        code_no = np.concatenate([code_no, code_no[parent]])
        # Each person's events in time order; event ids count up in that order.
        order = np.lexsort((at, owner))
        owner, kind, at, card, code_no = owner[order], kind[order], at[order], card[order], code_no[order]
        e = len(owner)
        event_ids = _strings("E%010d", np.arange(self.next_event, self.next_event + e, dtype=np.int64))
        self.next_event += e

        # Identifiers a person shows on each channel, and the guide who added them on WeCom.
        appid = np.array(APPIDS, dtype=object)[(rng.random(n) < 0.08).astype(np.int64)]
        guide = (np.array(["GS"], dtype=object) + _strings("%03d", home + 1)
                 + _strings("%d", rng.integers(0, GUIDES_PER_STORE, n)))
        channel = EVENT_CHANNEL[kind]
        wecom_message = (kind == T["message"]) & (rng.random(e) < WECOM_MESSAGE_SHARE)
        channel[wecom_message] = "wecom"
        oa = np.isin(kind, [T["follow"], T["unfollow"], T["scan"]]) | ((kind == T["message"]) & ~wecom_message)
        miniapp = np.isin(kind, [T["browse"], T["add_cart"], T["click"]])
        wecom = np.isin(kind, [T["add_contact"], T["del_contact"]]) | wecom_message
        coupon = code_no >= 0

        # QR codes: followers scanned a store poster (or the campaign poster), contacts a store's or
        # their guide's code, scans are at any store.
        store_state = np.array(["store_"], dtype=object) + self.store_ids
        qr = _masked(e, kind == T["scan"], store_state[rng.integers(0, STORES, e)])
        r = rng.random(e)
        follow = kind == T["follow"]
        qr[follow & (r < 0.35)] = store_state[home[owner]][follow & (r < 0.35)]
        qr[follow & (r >= 0.35) & (r < 0.45)] = "poster_1111"
        added = kind == T["add_contact"]
        qr[added] = np.where(r[added] < 0.5, store_state[home[owner[added]]], "guide_" + guide[owner[added]])

        store = np.isin(kind, [T["add_contact"], T["del_contact"], T["coupon_consume"]])
        sku = rng.choice(PRODUCTS, e, p=self.product_p)
        cards = np.array([c[0] for c in COUPONS], dtype=object)
        codes = _masked(e, coupon, np.array(["C30-1", "C50-1"], dtype=object)[card])
        codes[coupon] = codes[coupon] + _strings("%09d", code_no[coupon])
        out.tables["event"] = [
            event_ids.tolist(), (np.array(["id|"], dtype=object) + event_ids).tolist(),  # fact_key as facts.fact_key
            person_ids[owner].tolist(), np.array(TYPES, dtype=object)[kind].tolist(), self.values.stamps(at),
            channel.tolist(), _masked(e, oa, appid[owner]).tolist(),
            _masked(e, oa, _strings("oA%09d", index)[owner]).tolist(),
            _masked(e, miniapp, _strings("oM%09d", index)[owner]).tolist(),
            _masked(e, wecom, _strings("wm%09d", index)[owner]).tolist(),
            _masked(e, wecom, guide[owner]).tolist(),
            _masked(e, store, self.store_ids[home[owner]]).tolist(), qr.tolist(),
            _masked(e, miniapp, self.skus[sku]).tolist(), _masked(e, miniapp, self.sku_category[sku]).tolist(),
            _masked(e, coupon, cards[card]).tolist(), codes.tolist(), ["import"] * e,
        ]


# ---------------------------------------------------------------- writing


async def _driver(session: AsyncSession) -> Any:
    """The driver's own connection under the session (asyncpg / aiosqlite), as bulk.stage does."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver


async def _secondary_indexes(session: AsyncSession) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the filled tables' indexes that back no constraint."""
    tables = list(COLUMNS)
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " WHERE t.relname = ANY(:tables) AND t.relnamespace = current_schema()::regnamespace"
            " AND NOT x.indisprimary AND NOT x.indisunique"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
            " ORDER BY 1"), {"tables": tables})
    else:  # autoindexes of PRIMARY KEY / UNIQUE have no statement and cannot be dropped
        rows = await session.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({', '.join(repr(t) for t in tables)}) ORDER BY name"))
    return [(str(name), str(sql)) for name, sql in rows.all()]


async def _write(db: Database, chunk: _Chunk) -> None:
    """One chunk: COPY on PostgreSQL, executemany in one transaction on SQLite.

    PostgreSQL spends more time on COPY than we spend generating, so the events go through a
    second connection (its own transaction) at the same time as the rest: two server processes.
    """
    if db.is_postgres:
        tables = list(COLUMNS)
        await asyncio.gather(_write_tables(db, chunk, ["event"]),
                             _write_tables(db, chunk, [t for t in tables if t != "event"]))
    else:
        await _write_tables(db, chunk, list(COLUMNS))


async def _write_tables(db: Database, chunk: _Chunk, tables: Sequence[str]) -> None:
    async with db.transaction() as session:
        driver = await _driver(session)
        if db.is_postgres:
            # Losing the last chunks on a server crash is fine for generated data.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
        for table in tables:
            columns = COLUMNS[table]
            records: Iterable[Sequence[Any]] = zip(*chunk.tables[table], strict=True)
            if db.is_postgres:
                await driver.copy_records_to_table(table, records=records, columns=list(columns))
            else:
                placeholders = ", ".join("?" for _ in columns)
                await driver.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", records
                )


async def fill(
    db: Database,
    persons: int,
    *,
    seed: int = 7,
    orders_per_person: float = 5,
    events_per_person: float = 10,
) -> dict[str, int]:
    """Fill a migrated, empty database with `persons` persons and their facts; rows per table."""
    generator = _Generator(persons, seed, orders_per_person, events_per_person, _Values(db.is_sqlite))
    reference = generator.reference()
    async with db.transaction() as session:
        session.add_all(reference)
    counts = {"store": STORES, "guide": STORES * GUIDES_PER_STORE, "product": PRODUCTS, "coupon": len(COUPONS)}
    counts.update({table: 0 for table in COLUMNS})
    # Secondary indexes are dropped while the rows go in and rebuilt afterwards from their own
    # stored definitions: the time indexes (paid_at, occurred_at) get keys in random order, and
    # keeping them up to date costs more than sorting once; on SQLite every chunk would also
    # rewrite most of their pages through the WAL.
    async with db.transaction() as session:
        indexes = await _secondary_indexes(session)
        for name, _ in indexes:
            await session.execute(text(f"DROP INDEX {name}"))
    try:
        await _fill_chunks(db, generator, persons, counts)
    finally:
        async with db.transaction() as session:
            if db.is_postgres:
                await session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            for _, statement in indexes:
                await session.execute(text(statement))
    if db.is_postgres:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))  # fresh statistics for the planner
    return counts


async def _fill_chunks(db: Database, generator: _Generator, persons: int, counts: dict[str, int]) -> None:
    chunks = -(-persons // CHUNK_PERSONS)
    # Generate chunk k+1 in a thread while chunk k is written (numpy and the database's own work
    # overlap; generation is sequential, so ids keep counting in order).
    pending = asyncio.ensure_future(asyncio.to_thread(generator.chunk, 0)) if chunks else None
    try:
        for number in range(chunks):
            assert pending is not None
            chunk = await pending
            pending = asyncio.ensure_future(asyncio.to_thread(generator.chunk, number + 1)) \
                if number + 1 < chunks else None
            await _write(db, chunk)
            for table in COLUMNS:
                counts[table] += chunk.rows(table)
    finally:
        if pending is not None:  # a failed write: let the running generation finish quietly
            await asyncio.gather(pending, return_exceptions=True)


# ---------------------------------------------------------------- command line


async def _run(url: str, args: argparse.Namespace) -> dict[str, object]:
    db = Database(url)
    try:
        start = time.perf_counter()
        await db.migrate()
        migrated = time.perf_counter()
        counts = await fill(db, args.persons, seed=args.seed, orders_per_person=args.orders_per_person,
                            events_per_person=args.events_per_person)
        done = time.perf_counter()
    finally:
        await db.dispose()
    return {
        "database": args.database, "persons": args.persons, "seed": args.seed, "counts": counts,
        "migrate_seconds": round(migrated - start, 2), "fill_seconds": round(done - migrated, 2),
        "rows_per_s": round(sum(counts.values()) / max(done - migrated, 1e-9)),
    }


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders-per-person", type=float, default=5)
    parser.add_argument("--events-per-person", type=float, default=10)
    parser.add_argument("--pg-url", default=os.environ.get("QIANMIAN_BENCH_PG", ""),
                        help="admin URL of a server; database qm_bench_tag_data is (re)created on it")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file (its path is printed)")
    args = parser.parse_args()
    if args.database == "postgresql":
        if not args.pg_url:
            sys.exit("no --pg-url / QIANMIAN_BENCH_PG")
        return asyncio.run(_run(fresh_pg(args.pg_url, "qm_bench_tag_data"), args))
    work = Path(tempfile.mkdtemp(prefix="qm-bench-tags-"))
    try:
        result = asyncio.run(_run(f"sqlite:///{work / 'tags.db'}", args))
        result["sqlite_mib"] = round(sum(f.stat().st_size for f in work.iterdir()) / 2**20)
        if args.keep:
            result["path"] = str(work / "tags.db")
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(), ensure_ascii=False))
