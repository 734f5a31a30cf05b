"""Scan → portrait card: from a callback's arrival at `qianmian serve` to the simulator receiving
`message/send` for the guide, with 100 k persons in the store, on SQLite and PostgreSQL.

- The retailer comes from the project's generator and the real import (One ID and tags
  included), so scanning members resolve to people with years of orders.
- Every scan is an encrypted `add_external_contact` (the simulator's driver, wechatpy crypto)
  for its own guide, so each card is matched to its scan by its recipient. Half the scanners are
  existing members (found through their unionid), half are strangers ("new customer" card).
- Two phases, open loop (a scan is sent on schedule whether or not earlier ones are done):
  `--scans` at `--rate` per second (the latency figure), then `--scans` at `--burst` per second
  (sustained load).
- Baseline, same run: the same card posted straight to the simulator's `message/send` — the floor
  set by loopback HTTP and the simulator itself.

    python bench/scan_push.py --database sqlite --customers 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from callbacks import AES_KEY, TOKEN, free_port, wait_ready  # bench/ is on the path when run as a script
from children import stop_children_on_sigterm
from importing import fresh_pg
from sqlalchemy import text

from bot.simulator.driver import CallbackDriver
from bot.simulator.server import TencentSimulator
from profile_store.db import Database

QIANMIAN = str(Path(sys.executable).with_name("qianmian"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(ms: list[float], missing: int) -> dict[str, float]:
    return {
        "count": len(ms), "missing": missing, "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    } if ms else {"count": 0, "missing": missing}


def prepare(data: Path, customers: int, db_url: str, env: dict[str, str]) -> float:
    """Generate (once per size) and import the retailer; returns the import's seconds."""
    if not (data / "events.csv").exists():
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run([QIANMIAN, "generate", str(data), "--customers", str(customers), "--seed", "11"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run([QIANMIAN, "import", str(data)], check=True, env={**env, "DATABASE_URL": db_url},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


async def members_with_unionid(db_url: str, n: int) -> tuple[list[str], str, int, list[str]]:
    db = Database(db_url)
    async with db.transaction() as session:
        unionids = [r[0] for r in (await session.execute(text(
            "SELECT unionid FROM member WHERE unionid IS NOT NULL AND unionid <> '' ORDER BY member_id LIMIT :n"),
            {"n": n})).all()]
        store = (await session.execute(text("SELECT store_id FROM store ORDER BY store_id LIMIT 1"))).scalar_one()
        persons = int((await session.execute(text("SELECT COUNT(*) FROM person WHERE status = 'active'")))
                      .scalar_one())
        staff = [r[0] for r in (await session.execute(text("SELECT guide_id FROM guide"))).all()]
    await db.dispose()
    return unionids, store, persons, staff


async def phase(driver: CallbackDriver, sim: TencentSimulator, name: str, count: int, rate: float,
                unionids: list[str], store: str) -> dict[str, Any]:
    sent_at: dict[str, float] = {}
    answered: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        guide = f"B{name}{i:05d}"
        sim.add_staff(guide)
        unionid = unionids[i // 2] if i % 2 == 0 and i // 2 < len(unionids) else None
        sent_at[guide] = time.time()
        result = await driver.wecom_add_external_contact(
            guide, f"wmB{name}{i:06d}", state=f"store_{store}", unionid=unionid, name="顾客")
        if result.ok:
            answered.append((time.time() - sent_at[guide]) * 1000)
        else:
            failures += 1

    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    offered = count / (time.perf_counter() - start)
    # Wait for the last cards (bounded), then match every card to its scan by its recipient.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = {c.body.get("touser") for c in sim.calls("/cgi-bin/message/send")}
        if all(g in got for g in sent_at):
            break
        await asyncio.sleep(0.2)
    first: dict[str, float] = {}
    for call in sim.calls("/cgi-bin/message/send"):
        touser = call.body.get("touser") if isinstance(call.body, dict) else None
        if touser in sent_at and touser not in first:
            first[touser] = call.at
    latencies = [(first[g] - t) * 1000 for g, t in sent_at.items() if g in first]
    cards = sum(1 for m in sim.wecom.app_messages if m.touser and m.touser[0] in sent_at)
    return {
        "offered_per_s": round(offered, 1), "push": summary(latencies, len(sent_at) - len(first)),
        "callback_answer": summary(answered, failures), "cards_received": cards, "scans": count,
    }


async def serve_metrics(url: str) -> dict[str, float]:
    """Where serve's time went: mean processing time of a callback batch, outbox outcomes (these
    are counted where the work is done: empty when worker processes do it, see bot/serve.py)."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.text()
    found: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(("qianmian_event_processing_seconds_sum", "qianmian_event_processing_seconds_count",
                            "qianmian_outbox_messages_total")):
            name, value = line.rsplit(" ", 1)
            found[name] = found.get(name, 0.0) + float(value)
    return found


async def baseline(sim: TencentSimulator, card: dict[str, Any], count: int) -> dict[str, float]:
    """The floor: the same card posted straight to the simulator, one at a time."""
    sim.add_staff("baseline")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.base_url}/cgi-bin/gettoken",
                            params={"corpid": sim.corp_id, "corpsecret": sim.corp_secret}) as resp:
            token = (await resp.json())["access_token"]
        ms = []
        body = {**card, "touser": "baseline", "agentid": int(sim.agent_id), "enable_duplicate_check": 0}
        for _ in range(count):
            t0 = time.time()
            async with http.post(f"{sim.base_url}/cgi-bin/message/send", params={"access_token": token},
                                 json=body) as resp:
                await resp.read()
            ms.append((sim.calls("/cgi-bin/message/send")[-1].at - t0) * 1000)
    return summary(ms, 0)


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("QIANMIAN_BENCH_PG", ""))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="scans per second, latency phase")
    parser.add_argument("--burst", type=float, default=50.0, help="scans per second, sustained phase")
    parser.add_argument("--data", default=None, help="where the generated retailer is kept between runs")
    parser.add_argument("--sqlite-file", default=None,
                        help="keep the SQLite store here; an existing one is reused without importing again")
    parser.add_argument("--workers", type=int, default=None,
                        help="serve's QIANMIAN_SERVE_WORKERS (0: one process; default: serve's own choice)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qm-bench-push-"))
    data = Path(args.data or Path(tempfile.gettempdir()) / f"qm-bench-push-data-{args.customers}")
    secret = os.environ.get("QIANMIAN_SECRET_KEY") or secrets.token_urlsafe(32)  # a kept store needs its key
    env = {**os.environ, "QIANMIAN_SECRET_KEY": secret}
    reuse = False
    if args.database == "sqlite":
        db_file = Path(args.sqlite_file) if args.sqlite_file else work / "push.db"
        reuse = db_file.exists()
        db_url = f"sqlite:///{db_file}"
    elif args.pg_url:
        db_url = await asyncio.to_thread(fresh_pg, args.pg_url, "qm_bench_push")
    else:
        return {"database": args.database, "skipped": "no --pg-url / QIANMIAN_BENCH_PG"}
    import_seconds = 0.0 if reuse else await asyncio.to_thread(prepare, data, args.customers, db_url, env)
    unionids, store, persons, staff = await members_with_unionid(db_url, args.scans * 2)
    print(f"{args.database}: {persons} persons imported in {import_seconds:.0f}s", file=sys.stderr)

    result: dict[str, Any] = {"database": args.database, "persons": persons,
                              "import_seconds": round(import_seconds, 1)}
    async with TencentSimulator() as sim:
        for userid in staff:  # WeCom knows the retailer's staff (corp tags of imported contacts)
            sim.add_staff(userid)
        port = free_port()
        serve_env = {
            **env, "DATABASE_URL": db_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_AGENT_ID": str(sim.agent_id),
            "WECOM_SECRET": sim.corp_secret, "WECOM_TOKEN": TOKEN, "WECOM_AES_KEY": AES_KEY,
            "WECOM_API_BASE": sim.base_url, "WECHAT_API_BASE": sim.base_url, "PORT": str(port),
            "QIANMIAN_LOG_LEVEL": "WARNING", "QIANMIAN_TAGS_REFRESH_AT": "off",
            "QIANMIAN_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        if args.workers is not None:
            serve_env["QIANMIAN_SERVE_WORKERS"] = str(args.workers)
        result["serve_workers"] = serve_env.get("QIANMIAN_SERVE_WORKERS", "default")
        serve = await asyncio.create_subprocess_exec(QIANMIAN, "serve", env=serve_env)
        try:
            await wait_ready(f"http://127.0.0.1:{port}/healthz")
            driver = CallbackDriver(f"http://127.0.0.1:{port}", corp_id=sim.corp_id, agent_id=str(sim.agent_id),
                                    wecom_token=TOKEN, wecom_aes_key=AES_KEY, sim=sim)
            async with driver:
                await phase(driver, sim, "warm", 20, 10.0, unionids[-40:], store)
                result["steady"] = await phase(driver, sim, "s", args.scans, args.rate, unionids, store)
                print(f"steady {args.rate}/s: {result['steady']['push']}", file=sys.stderr)
                result["sustained"] = await phase(driver, sim, "b", args.scans, args.burst,
                                                  unionids[args.scans:], store)
                print(f"sustained {args.burst}/s: {result['sustained']['push']}", file=sys.stderr)
            result["serve_metrics"] = await serve_metrics(f"http://127.0.0.1:{port}/metrics")
            print(f"serve: {result['serve_metrics']}", file=sys.stderr)
            card = next(c.body for c in sim.calls("/cgi-bin/message/send") if isinstance(c.body, dict))
            result["baseline_direct_send"] = await baseline(sim, card, 300)
            print(f"baseline: {result['baseline_direct_send']}", file=sys.stderr)
        finally:
            serve.terminate()
            await serve.wait()
    shutil.rmtree(work, ignore_errors=True)
    result["steady"]["p99_over_baseline_p99"] = round(
        result["steady"]["push"]["p99_ms"] / max(result["baseline_direct_send"]["p99_ms"], 0.1), 1)
    return result


if __name__ == "__main__":
    stop_children_on_sigterm()
    print(json.dumps(asyncio.run(main()), ensure_ascii=False))
