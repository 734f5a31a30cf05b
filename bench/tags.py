"""Tag refresh benchmark: full refresh at N persons (~5 orders, ~10 events each) on SQLite and
PostgreSQL — wall time and peak memory — and the incremental update latency per person.

Same-run baselines: the full refresh is compared with one plain GROUP BY person_id over orders
and one over events (the least any refresh must read); the incremental update with a
transaction that only counts one person's orders. Each measured step runs in its own process.

    QIANMIAN_BENCH_PG=postgresql://… .venv/bin/python bench/tags.py --persons 100000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from importing import run_measured

from profile_store.db import Database

AS_OF = date(2026, 11, 1)
HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ steps (each in its own process)


async def _refresh(url: str, as_of: date) -> dict[str, object]:
    from profile_store.tagging.refresh import refresh_all

    db = Database(url)
    started = time.perf_counter()
    report = await refresh_all(db, as_of)
    seconds = time.perf_counter() - started
    await db.dispose()
    return {"persons": report.persons, "changes": report.changes, "seconds": round(seconds, 2)}


async def _baseline(url: str) -> dict[str, object]:
    db = Database(url)
    started = time.perf_counter()
    rows = 0
    async with db.engine.connect() as conn:
        for sql in (
            "SELECT person_id, COUNT(*), SUM(amount_fen), MAX(paid_at) FROM orders WHERE status = 'paid'"
            " GROUP BY person_id",
            "SELECT person_id, COUNT(*), MAX(occurred_at) FROM event GROUP BY person_id",
        ):
            result = await conn.stream(text(sql))
            async for partition in result.partitions(10_000):
                rows += len(partition)
    seconds = time.perf_counter() - started
    await db.dispose()
    return {"rows": rows, "seconds": round(seconds, 2)}


async def _incremental(url: str, samples: int, as_of: date) -> dict[str, object]:
    from profile_store.tagging.refresh import load_rules, refresh_persons

    db = Database(url)
    async with db.transaction() as session:
        ids = list((await session.execute(text("SELECT person_id FROM person WHERE status = 'active'"))).scalars())
        rules = await load_rules(session)
    chosen = random.Random(1).sample(ids, min(samples, len(ids)))
    updates, floors = [], []
    for pid in chosen:
        started = time.perf_counter()
        async with db.transaction() as session:
            await refresh_persons(session, [pid], as_of, rules)
        updates.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with db.transaction() as session:
            await session.execute(text("SELECT COUNT(*) FROM orders WHERE person_id = :p"), {"p": pid})
        floors.append(time.perf_counter() - started)
    await db.dispose()
    updates.sort()
    return {
        "samples": len(updates),
        "median_ms": round(statistics.median(updates) * 1000, 2),
        "p95_ms": round(updates[int(len(updates) * 0.95) - 1] * 1000, 2),
        "baseline_median_ms": round(statistics.median(floors) * 1000, 2),
    }


# ------------------------------------------------------------------ driver


def _step(name: str, url: str, *extra: str) -> tuple[float, float, dict[str, object]]:
    env = dict(os.environ)
    wall, rss, out = run_measured([sys.executable, __file__, name, "--url", url, *extra], env)
    return wall, rss, json.loads(out.strip().splitlines()[-1])


def _fill(database: str, persons: int) -> tuple[str, dict[str, object]]:
    cmd = [sys.executable, str(HERE / "tag_data.py"), "--database", database, "--persons", str(persons), "--keep"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    filled = json.loads(out.strip().splitlines()[-1])
    if database == "sqlite":
        return f"sqlite:///{filled['path']}", filled
    admin = os.environ["QIANMIAN_BENCH_PG"]
    return admin.rsplit("/", 1)[0] + "/qm_bench_tag_data", filled


def measure(database: str, persons: int, samples: int) -> dict[str, object]:
    url, filled = _fill(database, persons)
    print(f"{database} {persons:,}: filled in {filled['fill_seconds']}s", file=sys.stderr)
    try:
        base_wall, _, _ = _step("_baseline", url)
        first_wall, first_rss, first = _step("_refresh", url, "--as-of", AS_OF.isoformat())
        # The nightly case: profiles exist, the date rolls by a day, changes go to history.
        next_wall, next_rss, nightly = _step("_refresh", url, "--as-of", (AS_OF + timedelta(days=1)).isoformat())
        _, _, incremental = _step("_incremental", url, "--samples", str(samples), "--as-of", AS_OF.isoformat())
    finally:
        if database == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            for f in path.parent.iterdir():
                f.unlink()
            path.parent.rmdir()
    result = {
        "persons": persons,
        "rows": filled["counts"],
        "baseline_group_by_seconds": round(base_wall, 2),
        "first_refresh": {"wall_seconds": round(first_wall, 2), "peak_mib": round(first_rss), **first},
        "nightly_refresh": {"wall_seconds": round(next_wall, 2), "peak_mib": round(next_rss), **nightly},
        "refresh_over_baseline": round(next_wall / max(base_wall, 1e-9), 1),
        "incremental": incremental,
    }
    print(f"{database} {persons:,}: refresh {first_wall:.1f}s / nightly {next_wall:.1f}s "
          f"(peak {max(first_rss, next_rss):.0f} MiB; GROUP BY baseline {base_wall:.1f}s); incremental median "
          f"{incremental['median_ms']} ms (baseline {incremental['baseline_median_ms']} ms)", file=sys.stderr)
    return result


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("step", nargs="?", default="all")
    parser.add_argument("--url")
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--persons", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    if args.step == "_refresh":
        return asyncio.run(_refresh(args.url, args.as_of))
    if args.step == "_baseline":
        return asyncio.run(_baseline(args.url))
    if args.step == "_incremental":
        return asyncio.run(_incremental(args.url, args.samples, args.as_of))
    results: dict[str, object] = {}
    for size in (int(s) for s in args.persons.split(",")):
        for database in args.databases.split(","):
            if database == "postgresql" and not os.environ.get("QIANMIAN_BENCH_PG"):
                print("QIANMIAN_BENCH_PG not set: PostgreSQL skipped", file=sys.stderr)
                continue
            results[f"{database}_{size}"] = measure(database, size, args.samples)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), ensure_ascii=False))
