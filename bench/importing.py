"""Import: orders.csv + events.csv at ~1 million rows, One ID included, on SQLite and PostgreSQL;
measured without (`--no-tags`, issue 2's import) and with the tags refresh that follows it.

Measured in the same run against a baseline that only reads the same CSV files with pandas and
bulk-copies the raw rows into an unindexed table (the floor any import pays). Each measurement
runs in its own process; peak memory is the resident memory of that process and its children
(the import's worker process) summed, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from children import stop_children_on_sigterm  # bench/ is on the path when run as a script
from sqlalchemy import text
from sqlalchemy.engine import make_url

from profile_store.bulk import stage, temp_table
from profile_store.db import Database


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (the import's worker included)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds and peak resident memory (MiB, the process tree summed, sampled every 0.1 s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {out}")
    return wall, peak / 1024, out


async def bare_load(db_url: str, data_dir: Path) -> int:
    """The baseline: read the CSVs in chunks and copy the raw rows into a table, nothing else."""
    db = Database(db_url)
    rows = 0
    try:
        for name in ("orders.csv", "events.csv"):
            cols = list(pd.read_csv(data_dir / name, nrows=0).columns)
            for chunk in pd.read_csv(data_dir / name, dtype=str, keep_default_na=False, chunksize=100_000):
                table = name[:-4]
                async with db.transaction() as session:
                    await temp_table(session, f"_bench_{table}", ", ".join(f"c{i} TEXT" for i in range(len(cols))))
                    await stage(session, f"_bench_{table}", [f"c{i}" for i in range(len(cols))],
                                list(chunk.itertuples(index=False, name=None)))
                    await session.execute(text(
                        f"CREATE TABLE IF NOT EXISTS bench_raw_{table} AS SELECT * FROM _bench_{table} WHERE false"))
                    await session.execute(text(f"INSERT INTO bench_raw_{table} SELECT * FROM _bench_{table}"))
                rows += len(chunk)
    finally:
        await db.dispose()
    return rows


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders + events rows, about")
    parser.add_argument("--pg-url", default=os.environ.get("QIANMIAN_BENCH_PG", ""))
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:  # child process of the baseline
        print(asyncio.run(bare_load(args.db_url, Path(args.data))))
        return {}

    work = Path(tempfile.mkdtemp(prefix="qm-bench-import-"))
    data = work / "data"
    qianmian = str(Path(sys.executable).with_name("qianmian"))
    # ~5 orders and ~10 events per customer: customers = rows / 15.
    customers = max(100, args.rows // 15)
    env = {**os.environ, "QIANMIAN_SECRET_KEY": secrets.token_urlsafe(32)}
    subprocess.run([qianmian, "generate", str(data), "--customers", str(customers), "--seed", "7"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    counted = sum(sum(1 for _ in open(data / f, encoding="utf-8")) - 1 for f in ("orders.csv", "events.csv"))
    only = work / "only"  # the two files measured, plus the reference files they point at
    only.mkdir()
    for f in ("orders.csv", "events.csv", "stores.csv", "products.csv", "guides.csv", "coupons.csv"):
        if (data / f).exists():
            (only / f).symlink_to(data / f)

    results: dict[str, object] = {"rows": counted, "customers": customers}
    for database in args.databases.split(","):
        if database == "sqlite":
            urls = {k: f"sqlite:///{work / (k + '.db')}" for k in ("bare", "import", "ids")}
        else:
            if not args.pg_url:
                results[database] = "skipped: no --pg-url / QIANMIAN_BENCH_PG"
                continue
            urls = {k: fresh_pg(args.pg_url, f"qm_bench_{k}") for k in ("bare", "import", "ids")}
        # Each measurement starts from a quiet server: the database the one before filled is
        # dropped (or autovacuum works through its million rows during the next) and what it
        # wrote is checkpointed, not flushed in the middle of the next.
        def quiet(done: str | None = None, *, database: str = database) -> None:
            if database == "postgresql":
                checkpoint(args.pg_url, drop=f"qm_bench_{done}" if done else None)

        quiet()
        bare_wall, bare_rss, _ = run_measured(
            [sys.executable, __file__, "--bare", "--db-url", urls["bare"], "--data", str(only)], env)
        # The import as issue 2 defines it (rows in, One ID included), then as a retailer runs it:
        # the same followed by every person's tags (issue 3), each into its own fresh database.
        quiet("bare")
        ids_wall, ids_rss, _ = run_measured(
            [qianmian, "import", "--no-tags", str(only)], {**env, "DATABASE_URL": urls["ids"]})
        quiet("ids")
        wall, rss, _ = run_measured([qianmian, "import", str(only)], {**env, "DATABASE_URL": urls["import"]})
        results[database] = {
            "import_no_tags_seconds": round(ids_wall, 1), "import_no_tags_rows_per_s": round(counted / ids_wall),
            "import_no_tags_peak_rss_mib": round(ids_rss),
            "import_seconds": round(wall, 1), "import_rows_per_s": round(counted / wall),
            "import_peak_rss_mib": round(rss), "bare_load_seconds": round(bare_wall, 1),
            "bare_peak_rss_mib": round(bare_rss), "ratio_to_bare": round(wall / bare_wall, 2),
            "ratio_no_tags_to_bare": round(ids_wall / bare_wall, 2),
        }
        print(f"{database}: import {ids_wall:.1f}s without tags ({counted / ids_wall:,.0f} rows/s, peak "
              f"{ids_rss:.0f} MiB), {wall:.1f}s with tags ({counted / wall:,.0f} rows/s, peak {rss:.0f} MiB); "
              f"bare load {bare_wall:.1f}s", file=sys.stderr)
    return results


def checkpoint(admin_url: str, *, drop: str | None = None) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from profile_store.db import async_url

    async def run() -> None:
        engine = create_async_engine(async_url(admin_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            if drop:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {drop} WITH (FORCE)"))
            await conn.execute(text("CHECKPOINT"))
        await engine.dispose()

    asyncio.run(run())


def fresh_pg(admin_url: str, name: str) -> str:
    from sqlalchemy.ext.asyncio import create_async_engine

    from profile_store.db import async_url

    async def recreate() -> None:
        engine = create_async_engine(async_url(admin_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {name}"))
        await engine.dispose()

    asyncio.run(recreate())
    # The same server, another database (a query such as ?host=/run/postgresql stays as it is).
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    stop_children_on_sigterm()
    out = main()
    if out:
        print(json.dumps(out, ensure_ascii=False))
