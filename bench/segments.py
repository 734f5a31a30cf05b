"""Segment query benchmark: compiled segments (profile_store.segments.sql) against hand-written
SQL for the same segments, at N persons on PostgreSQL (or SQLite).

The data is synthetic and written straight into the tables (no CSV, no importer, no identity
graph): persons, their profiles (tags drawn at random: the queries only read them), ~3 orders a
person over two years with 1–3 lines each, products and stores. Same seed, same rows. Secondary
indexes are dropped while loading and rebuilt from their own definitions afterwards; the tables
are then VACUUM ANALYZEd.

Each segment's compiled query and its hand-written twin run alternately (after one warm-up each),
`--reps` times; the medians and the ratio compiled / hand are printed, and both must return the
same persons.

    .venv/bin/python bench/segments.py --database postgresql --persons 1000000
    .venv/bin/python bench/segments.py --database sqlite --persons 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from nlp.segment import (
    And,
    Bought,
    Compare,
    Item,
    Not,
    OrderMetric,
    Segment,
    StoreCity,
    Tag,
    days,
    eq,
)
from profile_store.db import Database, async_url
from profile_store.segments.sql import compile_segment

T = date(2026, 11, 1)
DB_NAME = "qm_bench_segments"
CHUNK = 100_000  # persons generated and written at a time
HISTORY_DAYS = 730
STORES = (
    ("S01", "上海"),
    ("S02", "上海"),
    ("S03", "上海"),
    ("S04", "北京"),
    ("S05", "北京"),
    ("S06", "北京"),
    ("S07", "广州"),
    ("S08", "广州"),
    ("S09", "成都"),
    ("S10", "成都"),
    ("S11", "杭州"),
    ("S12", "杭州"),
)
CITIES = ("上海", "北京", "广州", "成都", "杭州")
CATEGORIES = ("连衣裙", "T恤", "外套", "女鞋", "男鞋", "牛仔裤", "童装", "衬衫", "配饰", "针织衫")
BRANDS = ("云裳", "木棉", "青禾", "北极光")
PRODUCTS = 200
LIFECYCLES = ("忠诚", "购买", "注册", "兴趣", "认知", "沉睡", "流失")
LEVELS = ("V0", "V1", "V2", "V3", "V4", "V5")
CHANNELS = ("pos", "miniapp", "ecom", "oa_mall")
TABLES = ("person", "profile", "orders", "order_item", "product", "store")


# ---------------------------------------------------------------------------------- the segments


def window(n: int) -> tuple[datetime, datetime]:
    return datetime.combine(T - timedelta(days=n - 1), datetime.min.time()), datetime.combine(
        T + timedelta(days=1), datetime.min.time()
    )


S90, END = window(90)
S365, _ = window(365)
UNIVERSE = "FROM profile p JOIN person ps ON ps.person_id = p.person_id WHERE ps.status = 'active'"


@dataclass(frozen=True)
class Case:
    name: str
    segment: Segment
    hand: str
    params: dict[str, Any]


CASES = (
    Case(
        "上海门店 ∧ 价格导向 ∧ 近90天消费≥2次",
        And(
            (
                StoreCity("上海"),
                Tag("price_orientation", eq("价格导向")),
                OrderMetric("count", Compare("ge", 2), days(90)),
            )
        ),
        f"SELECT p.person_id {UNIVERSE}"
        " AND p.preferred_store IN (SELECT store_id FROM store WHERE city = '上海')"
        " AND p.price_orientation = '价格导向'"
        " AND p.person_id IN (SELECT person_id FROM orders WHERE status = 'paid' AND paid_at >= :s90"
        " AND paid_at < :end GROUP BY person_id HAVING count(*) >= 2)",
        {"s90": S90, "end": END},
    ),
    Case(
        "上海门店 ∧ 近一年客单价>300元 ∧ ¬近90天买过连衣裙",
        And(
            (
                StoreCity("上海"),
                OrderMetric("aov", Compare("gt", 30_000), days(365)),
                Not(Bought(days(90), Item("category", "连衣裙"))),
            )
        ),
        f"SELECT p.person_id {UNIVERSE}"
        " AND p.preferred_store IN (SELECT store_id FROM store WHERE city = '上海')"
        " AND p.person_id IN (SELECT person_id FROM orders WHERE status = 'paid' AND paid_at >= :s365"
        " AND paid_at < :end GROUP BY person_id HAVING avg(amount_fen) > 30000)"
        " AND NOT EXISTS (SELECT 1 FROM orders o JOIN order_item i ON i.order_id = o.order_id"
        " JOIN product pr ON pr.sku = i.sku WHERE o.person_id = p.person_id AND o.status = 'paid'"
        " AND o.paid_at >= :s90 AND o.paid_at < :end AND pr.category = '连衣裙')",
        {"s90": S90, "s365": S365, "end": END},
    ),
    Case(
        "忠诚 ∧ 近90天消费<2次 (含无订单)",
        And((Tag("lifecycle", eq("忠诚")), OrderMetric("count", Compare("lt", 2), days(90)))),
        f"SELECT p.person_id {UNIVERSE}"
        " AND p.lifecycle = '忠诚'"
        " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.person_id = p.person_id AND o.status = 'paid'"
        " AND o.paid_at >= :s90 AND o.paid_at < :end GROUP BY o.person_id HAVING count(*) >= 2)",
        {"s90": S90, "end": END},
    ),
    # the correlated aggregate's worst case: a tag next to it that keeps most persons (60 %)
    Case(
        "会员 ∧ 近一年消费≥2次",
        And((Tag("is_member", eq("是")), OrderMetric("count", Compare("ge", 2), days(365)))),
        f"SELECT p.person_id {UNIVERSE}"
        " AND p.is_member = '是'"
        " AND p.person_id IN (SELECT person_id FROM orders WHERE status = 'paid' AND paid_at >= :s365"
        " AND paid_at < :end GROUP BY person_id HAVING count(*) >= 2)",
        {"s365": S365, "end": END},
    ),
)


# ---------------------------------------------------------------------------------- the data


def _ids(prefix: str, start: int, n: int, width: int) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]


def _pick(rng: np.random.Generator, values: Sequence[Any], n: int, p: Sequence[float] | None = None) -> list[Any]:
    index = rng.choice(len(values), size=n, p=p)
    return [values[i] for i in index.tolist()]


def generate(rng: np.random.Generator, first: int, n: int, order_seq: int) -> dict[str, list[tuple[Any, ...]]]:
    """Rows of persons first .. first+n-1; orders numbered from `order_seq`."""
    now = datetime.now(UTC)
    pids = _ids("P", first, n, 9)
    persons = [(pid, first + k, "active", now, now) for k, pid in enumerate(pids)]
    # profiles: tags at random (the benchmark reads them, it does not check them)
    store_ids = [s for s, _ in STORES]
    preferred = _pick(rng, [*store_ids, None, None, None, None, None], n)
    orientation = _pick(rng, ("价格导向", "品质导向", None), n, (0.35, 0.35, 0.30))
    lifecycle = _pick(rng, LIFECYCLES, n)
    member = rng.random(n) < 0.6
    city = _pick(rng, CITIES, n)
    level = _pick(rng, LEVELS, n)
    orders_365 = rng.poisson(1.5, n).tolist()
    profiles = [
        (
            pids[k],
            T,
            now,
            orders_365[k],
            orders_365[k] * 20_000,
            0,
            0,
            lifecycle[k],
            orientation[k],
            preferred[k],
            "是" if member[k] else None,
            city[k] if member[k] else None,
            level[k] if member[k] else None,
        )
        for k in range(n)
    ]
    # orders: ~3 a person over two years, 95 % paid
    per_person = rng.poisson(3.0, n)
    total = int(per_person.sum())
    owner = np.repeat(np.arange(n), per_person)
    span = HISTORY_DAYS * 86_400
    start = np.datetime64(datetime.combine(T - timedelta(days=HISTORY_DAYS - 1), datetime.min.time()), "s")
    paid_at = (start + rng.integers(0, span, total).astype("timedelta64[s]")).astype(object).tolist()
    amount = np.round(rng.lognormal(10.0, 0.8, total)).astype(np.int64).tolist()  # ~ 220 元 median
    channel = _pick(rng, CHANNELS, total, (0.5, 0.25, 0.18, 0.07))
    own_store = [preferred[i] or store_ids[i % len(store_ids)] for i in range(n)]
    status = np.where(rng.random(total) < 0.95, "paid", "refunded").tolist()
    order_ids = _ids("O", order_seq, total, 10)
    owners = owner.tolist()
    orders = [
        (
            order_ids[j],
            pids[owners[j]],
            channel[j],
            own_store[owners[j]] if channel[j] == "pos" else "",
            paid_at[j],
            amount[j],
            amount[j],
            "",
            status[j],
        )
        for j in range(total)
    ]
    # lines: 1–3 an order
    lines_per = rng.integers(1, 4, total)
    line_owner = np.repeat(np.arange(total), lines_per).tolist()
    n_lines = len(line_owner)
    offsets = np.cumsum(lines_per) - lines_per
    line_no = (np.arange(n_lines) - np.repeat(offsets, lines_per)).tolist()
    sku = rng.integers(0, PRODUCTS, n_lines).tolist()
    qty = rng.integers(1, 4, n_lines).tolist()
    price = (rng.integers(6, 200, n_lines) * 1000).tolist()
    items = [
        (order_ids[line_owner[x]], line_no[x], pids[owners[line_owner[x]]], f"SKU{sku[x]:04d}", qty[x], price[x])
        for x in range(n_lines)
    ]
    return {"person": persons, "profile": profiles, "orders": orders, "order_item": items}


COLUMNS = {
    "person": ("person_id", "anchor_node_id", "status", "created_at", "updated_at"),
    "profile": (
        "person_id",
        "as_of",
        "computed_at",
        "orders_365d",
        "amount_365d_fen",
        "orders_total",
        "amount_total_fen",
        "lifecycle",
        "price_orientation",
        "preferred_store",
        "is_member",
        "city",
        "level",
    ),
    "orders": (
        "order_id",
        "person_id",
        "channel",
        "store_id",
        "paid_at",
        "amount_fen",
        "list_amount_fen",
        "coupon_code",
        "status",
    ),
    "order_item": ("order_id", "line_no", "person_id", "sku", "qty", "unit_price_fen"),
    "product": ("sku", "name", "category", "brand", "list_price_fen"),
    "store": ("store_id", "name", "city", "region"),
}


async def write(db: Database, table: str, rows: list[tuple[Any, ...]]) -> None:
    async with db.transaction() as session:
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        columns = COLUMNS[table]
        if db.is_postgres:
            await raw.copy_records_to_table(table, records=rows, columns=list(columns))
        else:
            values = [tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row) for row in rows]
            values = [
                tuple(v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v for v in row)
                for row in values
            ]
            marks = ", ".join("?" for _ in columns)
            await raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)


async def secondary_indexes(db: Database) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' non-unique indexes."""
    async with db.transaction() as session:
        if db.is_postgres:
            rows = await session.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                    " AND tablename = ANY(:t) AND indexdef NOT LIKE 'CREATE UNIQUE%'"
                ),
                {"t": list(TABLES)},
            )
        else:
            rows = await session.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                    " AND sql NOT LIKE 'CREATE UNIQUE%' AND tbl_name IN (" + ", ".join(f"'{t}'" for t in TABLES) + ")"
                )
            )
        return [(r[0], r[1]) for r in rows]


async def load(db: Database, persons: int, seed: int) -> None:
    await db.migrate()
    indexes = await secondary_indexes(db)
    async with db.transaction() as session:
        for name, _ in indexes:
            await session.execute(text(f"DROP INDEX {name}"))
    rng = np.random.default_rng(seed)
    products = [
        (f"SKU{i:04d}", f"商品{i}", CATEGORIES[i % len(CATEGORIES)], BRANDS[i % len(BRANDS)], 10_000 + 1000 * i)
        for i in range(PRODUCTS)
    ]
    await write(db, "product", products)
    await write(db, "store", [(s, f"{c}{s}店", c, "") for s, c in STORES])
    order_seq = 0
    started = time.perf_counter()
    for first in range(0, persons, CHUNK):
        rows = generate(rng, first, min(CHUNK, persons - first), order_seq)
        order_seq += len(rows["orders"])
        for table in ("person", "profile", "orders", "order_item"):
            await write(db, table, rows[table])
        print(
            f"  loaded {first + len(rows['person']):>9,} persons, {order_seq:>10,} orders"
            f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    async with db.transaction() as session:
        for _name, definition in indexes:
            await session.execute(text(definition))
    print(f"  indexes rebuilt ({time.perf_counter() - started:.0f} s)", flush=True)
    if db.is_postgres:
        engine = create_async_engine(db.url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            for table in TABLES:
                await conn.execute(text(f"VACUUM ANALYZE {table}"))
        await engine.dispose()
    else:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))
    print(f"  vacuumed and analysed ({time.perf_counter() - started:.0f} s)", flush=True)


# ---------------------------------------------------------------------------------- the runs


async def run_compiled(db: Database, case: Case) -> list[str]:
    async with db.read() as session:
        query = compile_segment(case.segment, today=T)
        return list((await session.execute(query)).scalars())


async def run_hand(db: Database, case: Case) -> list[str]:
    async with db.read() as session:
        return list((await session.execute(text(case.hand), case.params)).scalars())


async def explain(db: Database, case: Case) -> None:
    compiled = str(
        compile_segment(case.segment, today=T).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    async with db.read() as session:
        for label, sql, params in (("compiled", compiled, {}), ("hand", case.hand, case.params)):
            plan = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), params)
            print(f"--- {case.name}: {label}")
            print("\n".join(r[0] for r in plan))


async def measure(db: Database, reps: int, show_plans: bool) -> list[dict[str, Any]]:
    results = []
    for case in CASES:
        compiled, hand = await run_compiled(db, case), await run_hand(db, case)  # warm-up
        same = sorted(compiled) == sorted(hand)
        times: dict[str, list[float]] = {"compiled": [], "hand": []}
        for rep in range(reps):
            order = (("compiled", run_compiled), ("hand", run_hand))
            for label, run in order if rep % 2 == 0 else tuple(reversed(order)):
                started = time.perf_counter()
                await run(db, case)
                times[label].append(time.perf_counter() - started)
        c, h = statistics.median(times["compiled"]), statistics.median(times["hand"])
        results.append(
            {"case": case.name, "persons": len(compiled), "same": same, "compiled_s": c, "hand_s": h, "ratio": c / h}
        )
        print(
            f"{case.name}: {len(compiled):,} persons, same set: {same}; median compiled {c * 1000:.0f} ms,"
            f" hand {h * 1000:.0f} ms, ratio {c / h:.2f}",
            flush=True,
        )
        if show_plans and db.is_postgres:
            await explain(db, case)
    return results


async def admin(url: str, *statements: str) -> None:
    engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument(
        "--pg", default=os.environ.get("QIANMIAN_BENCH_PG", "postgresql://postgres@127.0.0.1:55432/postgres"),
        help="admin URL (default: QIANMIAN_BENCH_PG, as bench/run sets it)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file (bench/run)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database (no load)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each query")
    args = parser.parse_args()
    if args.database == "postgresql":
        url = args.pg.rsplit("/", 1)[0] + "/" + DB_NAME
        if not args.reuse:
            await admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    else:
        url = f"sqlite:///{Path(tempfile.gettempdir()) / (DB_NAME + '.db')}"
        if not args.reuse:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    db = Database(url)
    ok = True
    try:
        if not args.reuse:
            print(f"loading {args.persons:,} persons into {args.database} ({DB_NAME}) …", flush=True)
            started = time.perf_counter()
            await load(db, args.persons, args.seed)
            print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
        results = await measure(db, args.reps, args.explain)
        ok = all(r["same"] for r in results)
        worst = max(r["ratio"] for r in results)
        slowest = max(r["compiled_s"] for r in results)
        print(
            f"summary: slowest compiled median {slowest:.3f} s, worst ratio compiled/hand {worst:.2f}, same sets: {ok}"
        )
        if args.json is not None:
            args.json.write_text(json.dumps({"persons": args.persons, "database": args.database, "cases": results}))
    finally:
        await db.dispose()
        if not args.keep:
            if args.database == "postgresql":
                await admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            else:
                Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
