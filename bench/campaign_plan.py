"""Campaign planning benchmark: plan one campaign over N persons (campaigns.plan) on PostgreSQL,
against a baseline in the same run — a plain INSERT INTO campaign_target SELECT … FROM profile
of the same persons (the cost of writing the rows, with no rule at all).

The data is synthetic, COPYed straight into person / profile / identity_node / event /
campaign_target (no CSV, no importer, no identity graph), like bench/segments.py; same seed,
same rows. Per person: 40 % a guide's WeCom contact (an external_userid node and one or two
add_contact events; profile.guides), 50 % OA followers, 10 % wrote to the OA in the last two
days, 70 % a phone (1 % of them shared), 2 % opted out of something; as history, an earlier
campaign sent to 50 % of them within the last three days and a journey message planned for 20 %
in two days (so the frequency cap holds some back). Secondary indexes are dropped while loading
and rebuilt, then the tables are VACUUM ANALYZEd.

The measurement runs in a child process (its own peak RSS, `resource.getrusage`): the baseline
(rolled back), then the plan (wave 0, three variants by tag, 10 % control), then a preview.

    .venv/bin/python bench/campaign_plan.py --persons 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: the segment bench's helpers

from children import stop_children_on_sigterm  # bench/ is on the path when run as a script
from segments import admin  # the same throwaway-database helper as the segment bench
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from campaigns.plan import PlanRules, plan, preview
from nlp.segment import Everyone, Tag, eq, to_json
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.models import Campaign

T = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # 10:00 Asia/Shanghai
SEND = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # the next day 10:00
DB_NAME = "qm_bench_campaign_plan"
CHUNK = 100_000
STORES = [f"S{i:02d}" for i in range(1, 13)]
GUIDES = [f"G{i:03d}" for i in range(1, 201)]
TABLES = ("person", "profile", "identity_node", "event", "campaign_target", "opt_out")
LIFECYCLES = ("忠诚", "购买", "注册", "兴趣", "认知", "沉睡", "流失")

COLUMNS = {
    "person": ("person_id", "anchor_node_id", "status", "created_at", "updated_at"),
    "profile": (
        "person_id", "as_of", "computed_at", "orders_365d", "amount_365d_fen", "orders_total", "amount_total_fen",
        "lifecycle", "price_orientation", "preferred_store", "oa_follower", "wecom_contact", "guides", "is_member",
    ),
    "identity_node": ("id", "kind", "value", "person_id", "shared"),
    "event": (
        "event_id", "fact_key", "person_id", "type", "occurred_at", "channel", "appid", "openid", "external_userid",
        "guide_id", "origin",
    ),
    "campaign_target": (
        "campaign_id", "wave", "person_id", "variant", "channel", "guide_id", "store_id", "outcome", "due_at",
        "attempts", "sent_at", "last_error",
    ),
    "opt_out": ("person_id", "channel", "at", "reason"),
}


def generate(rng: np.random.Generator, first: int, n: int) -> dict[str, list[tuple[Any, ...]]]:
    now = datetime.now(UTC)
    pids = [f"P{i:09d}" for i in range(first, first + n)]
    wecom = rng.random(n) < 0.40
    two_guides = wecom & (rng.random(n) < 0.25)
    follower = rng.random(n) < 0.50
    wrote = follower & (rng.random(n) < 0.20)  # 10 % of all
    phone = rng.random(n) < 0.70
    shared_phone = phone & (rng.random(n) < 0.01)
    opted = rng.random(n) < 0.02
    opt_channel = rng.choice(np.array(["wecom", "oa", "sms", "all"]), n)
    orientation = rng.choice(np.array(["价格导向", "品质导向", ""]), n, p=[0.35, 0.35, 0.30])
    lifecycle = rng.integers(0, len(LIFECYCLES), n)
    store = rng.integers(0, len(STORES) + 4, n)
    g1 = rng.integers(0, len(GUIDES), n)
    g2 = rng.integers(0, len(GUIDES), n)
    sent_before = rng.random(n) < 0.50
    journey = rng.random(n) < 0.20
    add_day = rng.integers(1, 300, n)
    msg_minutes = rng.integers(1, 47 * 60, n)
    sent_minutes = rng.integers(1, 3 * 24 * 60, n)

    persons: list[tuple[Any, ...]] = []
    profiles: list[tuple[Any, ...]] = []
    nodes: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    targets: list[tuple[Any, ...]] = []
    opts: list[tuple[Any, ...]] = []
    node_id = first * 4
    for k in range(n):
        pid = pids[k]
        i = first + k
        guides: list[str] = []
        if wecom[k]:
            guides = [GUIDES[g1[k]]]
            if two_guides[k] and g2[k] != g1[k]:
                guides.append(GUIDES[g2[k]])
        persons.append((pid, i, "active", now, now))
        profiles.append((
            pid, T, now, 1, 10_000, 1, 10_000, LIFECYCLES[lifecycle[k]], orientation[k] or None,
            STORES[store[k]] if store[k] < len(STORES) else None, "是" if follower[k] else None,
            "是" if guides else None, json.dumps(guides, ensure_ascii=False) if guides else None, "是",
        ))
        if guides:
            node_id += 1
            nodes.append((node_id, "external_userid", f"wm{i}", pid, False))
            base = datetime(2026, 11, 1) - timedelta(days=int(add_day[k]))
            for j, guide in enumerate(guides):
                at = base + timedelta(hours=j)
                events.append((f"A{i}_{j}", f"A{i}_{j}", pid, "add_contact", at, "wecom", None, None, f"wm{i}",
                               guide, "import"))
        if follower[k]:
            node_id += 1
            nodes.append((node_id, "openid", f"wxoa:o{i}", pid, False))
            events.append((f"F{i}", f"F{i}", pid, "follow", datetime(2026, 5, 1, 10), "oa", "wxoa", f"o{i}", None,
                           None, "import"))
            if wrote[k]:
                at = datetime(2026, 11, 1, 10) - timedelta(minutes=int(msg_minutes[k]))
                events.append((f"M{i}", f"M{i}", pid, "message", at, "oa", "wxoa", f"o{i}", None, None, "import"))
        if phone[k]:
            node_id += 1
            nodes.append((node_id, "phone", f"h{i:012d}", None if shared_phone[k] else pid, bool(shared_phone[k])))
        if opted[k]:
            opts.append((pid, str(opt_channel[k]), now, "TD"))
        if sent_before[k]:
            at = NOW - timedelta(minutes=int(sent_minutes[k]))
            targets.append((900_001, 0, pid, "default", "sms", "", "", "sent", at, 1, at, ""))
        if journey[k]:
            due = NOW + timedelta(days=2)
            targets.append((900_002, 0, pid, "default", "oa_template", "", "", "planned", due, 0, None, ""))
    return {
        "person": persons, "profile": profiles, "identity_node": nodes, "event": events,
        "campaign_target": targets, "opt_out": opts,
    }


async def write(db: Database, table: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    async with db.transaction() as session:
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))


async def secondary_indexes(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                " AND tablename = ANY(:t) AND indexdef NOT LIKE 'CREATE UNIQUE%'"
            ),
            {"t": list(TABLES)},
        )
        return [(r[0], r[1]) for r in rows]


async def vacuum(url: str, tables: tuple[str, ...]) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for table in tables:
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
    await engine.dispose()


async def load(db: Database, persons: int, seed: int) -> dict[str, int]:
    await db.migrate()
    indexes = await secondary_indexes(db)
    async with db.transaction() as session:
        for name, _ in indexes:
            await session.execute(text(f"DROP INDEX {name}"))
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(TABLES, 0)
    started = time.perf_counter()
    for first in range(0, persons, CHUNK):
        rows = generate(rng, first, min(CHUNK, persons - first))
        for table in TABLES:
            await write(db, table, rows[table])
            counts[table] += len(rows[table])
        print(f"  loaded {first + len(rows['person']):>9,} persons ({time.perf_counter() - started:.0f} s)", flush=True)
    async with db.transaction() as session:
        for _name, definition in indexes:
            await session.execute(text(definition))
    await vacuum(db.url, TABLES)
    print(f"  indexes rebuilt, vacuumed and analysed ({time.perf_counter() - started:.0f} s)", flush=True)
    return counts


# ---------------------------------------------------------------------------------- the measurement


def campaign(name: str) -> Campaign:
    variants = [
        {"name": "coupon", "when": json.loads(to_json(Tag("price_orientation", eq("价格导向")))), "content": "30元券"},
        {"name": "new", "when": json.loads(to_json(Tag("price_orientation", eq("品质导向")))), "content": "新品"},
        {"name": "member", "when": None, "content": "会员礼"},
    ]
    return Campaign(
        name=name, segment=to_json(Everyone()), variants=json.dumps(variants, ensure_ascii=False), send_at=SEND,
        control_pct=10.0,
    )


def rss_mb() -> float:
    """Peak RSS (MB) by getrusage. Linux keeps ru_maxrss across fork and exec, so the child starts
    at its parent's RSS; `hwm_mb` (VmHWM, reset by exec) is the child's own peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(url: str) -> dict[str, Any]:
    db = Database(url)
    rules = PlanRules()
    result: dict[str, Any] = {"rss_mb_start": rss_mb(), "hwm_mb_start": hwm_mb()}
    try:
        # --reuse: forget the campaigns of an earlier run (the history campaigns 900001/2 stay)
        async with db.transaction() as session:
            await session.execute(text("DELETE FROM campaign_target WHERE campaign_id < 900000"))
            await session.execute(text("DELETE FROM campaign"))
        # baseline: the same persons' rows, no rule at all (rolled back: nothing stays)
        async with db.sessions() as session:
            started = time.perf_counter()
            inserted = await session.execute(
                text(
                    "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
                    " outcome, due_at, attempts, last_error) SELECT 999, 0, person_id, '', '', '',"
                    " COALESCE(preferred_store, ''), 'planned', :due, 0, '' FROM profile"
                ),
                {"due": SEND},
            )
            result["baseline_rows"] = int(getattr(inserted, "rowcount", 0))
            result["baseline_s"] = time.perf_counter() - started
            await session.rollback()
        await vacuum(db.url, ("campaign_target",))
        async with db.transaction() as session:
            cid = await store.create_campaign(session, campaign("bench"))
        started = time.perf_counter()
        report = await plan(db, cid, now=NOW, today=T, rules=rules)
        result["plan_s"] = time.perf_counter() - started
        result["rss_mb_after_plan"] = rss_mb()
        result["report"] = {
            k: getattr(report, k)
            for k in ("targeted", "control", "opted_out", "unreachable", "capped", "planned", "by_channel",
                      "by_variant", "wecom_quota_exhausted", "written")
        }
        result["adds_up"] = report.adds_up
        started = time.perf_counter()
        again = await plan(db, cid, now=NOW, today=T, rules=rules)
        result["replan_s"] = time.perf_counter() - started
        result["replan_written"] = again.written
        draft = campaign("bench-preview")
        draft.id = cid
        started = time.perf_counter()
        seen = await preview(db, draft, now=NOW, today=T, rules=rules)
        result["preview_s"] = time.perf_counter() - started
        result["preview_same"] = (seen.targeted, seen.control, seen.planned, seen.capped) == (
            report.targeted, report.control, report.planned, report.capped
        )
        result["rss_mb_peak"] = rss_mb()
        result["hwm_mb_peak"] = hwm_mb()
    finally:
        await db.dispose()
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument(
        "--pg", default=os.environ.get("QIANMIAN_BENCH_PG", "postgresql://postgres@127.0.0.1:55432/postgres"),
        help="admin URL (default: QIANMIAN_BENCH_PG)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database (no load)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: measure on this URL
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(await measure(args.measure), default=str))
        return 0
    url = args.pg.rsplit("/", 1)[0] + "/" + DB_NAME
    if not args.reuse:
        await admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    ok = False
    try:
        if not args.reuse:
            db = Database(url)
            print(f"loading {args.persons:,} persons into postgresql ({DB_NAME}) …", flush=True)
            started = time.perf_counter()
            counts = await load(db, args.persons, args.seed)
            await db.dispose()
            print(f"loaded in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
        # the measurement in a child process: its own peak RSS, not the loader's
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--measure", url, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await child.communicate()
        if child.returncode != 0:
            print(out.decode(), err.decode(), file=sys.stderr)
            return 1
        result = json.loads(out.decode().strip().splitlines()[-1])
        result["persons"] = args.persons
        n = result["report"]["targeted"]
        print(json.dumps(result, ensure_ascii=False, indent=1))
        print(
            f"summary: plan {n:,} persons in {result['plan_s']:.1f} s ({n / result['plan_s']:,.0f} rows/s);"
            f" baseline INSERT … SELECT {result['baseline_rows']:,} rows in {result['baseline_s']:.1f} s"
            f" ({result['baseline_rows'] / result['baseline_s']:,.0f} rows/s), ratio"
            f" {result['plan_s'] / result['baseline_s']:.1f}; re-plan {result['replan_s']:.1f} s (wrote"
            f" {result['replan_written']}); preview {result['preview_s']:.1f} s; peak RSS of the planning process"
            f" {result['rss_mb_peak']:.0f} MB by getrusage (at start {result['rss_mb_start']:.0f} MB), own VmHWM"
            f" {result['hwm_mb_peak']:.0f} MB (at start {result['hwm_mb_start']:.0f} MB); adds up: {result['adds_up']}"
        )
        ok = bool(result["adds_up"]) and result["plan_s"] < 60 and bool(result["preview_same"])
        if args.json is not None:
            args.json.write_text(json.dumps(result, ensure_ascii=False))
    finally:
        if not args.keep:
            await admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    return 0 if ok else 1


if __name__ == "__main__":
    stop_children_on_sigterm()
    sys.exit(asyncio.run(main()))
