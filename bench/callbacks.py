"""Callback ingestion: encrypted `add_external_contact` callbacks over loopback into `qianmian serve`,
against a bare aiohttp handler measured in the same run (alternating rounds; medians and ratio),
and against the floor (bench/floor_server.py): the least an edge must do before answering
(verify, decrypt, read, record durably with group commit) with nothing of the product around it,
as many processes as serve has edges. bare → floor is what the required work costs on this
machine; floor → serve is what the product around it costs.

The load comes from wrk (C, one thread, N connections) replaying distinct pre-encrypted callbacks,
so the client is not the bottleneck. After each serve round the bench waits until serve has
processed its backlog and sent the cards and welcomes it made (so the next round, bare or serve,
starts from a quiet machine; the time it took gives the processing rate), and at the end it
checks that every callback answered 200 is recorded exactly once. The simulator knows the guides
and the contacts (with their welcome codes), so processing is the real thing: unionid lookups,
cards and welcomes sent. Each round
also reports where the CPU went (`cpu_us_per_request`: serve's edges, worker, PostgreSQL, wrk,
this process with the simulator), from /proc; wrk's figure includes loading its callbacks file.

    python bench/callbacks.py --database sqlite --rounds 3 --seconds 5 [--workers 0]

`--workers` is serve's QIANMIAN_SERVE_WORKERS (0: the single-process bot; default: serve's own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from children import stop_children_on_sigterm  # bench/ is on the path when run as a script
from cpu_share import snapshot, us_per_request
from sqlalchemy import text

from bot.crypto import MessageCrypto, signature
from bot.settings import Settings
from bot.simulator.server import TencentSimulator
from profile_store.db import Database

HERE = Path(__file__).parent
TOKEN = "benchtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_requests(
    path: Path, corp_id: str, count: int, tag: str, *, sim: TencentSimulator | None = None
) -> list[str]:
    """`count` distinct encrypted add_external_contact callbacks, signed now. With `sim`, the
    simulator is told about the guides, the contacts and their welcome codes."""
    crypto = MessageCrypto(TOKEN, AES_KEY, corp_id)
    now = int(time.time())
    externals = []
    if sim is not None:
        for g in range(40):
            if f"GS{g:04d}" not in sim.wecom.staff:
                sim.add_staff(f"GS{g:04d}")
    with path.open("w") as out:
        for i in range(count):
            external = f"wmbench{tag}{i:07d}"
            externals.append(external)
            welcome = f"WC{tag}{i}"
            if sim is not None:
                guide = f"GS{i % 40:04d}"
                sim.add_external_contact(external, unionid=f"oU{external}", name="顾客", follow_userid=guide,
                                         state=f"store_S{i % 12:03d}")
                welcome = sim.issue_welcome_code(guide, external)
            xml = (
                f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
                f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[change_external_contact]]></Event>"
                "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                f"<UserID><![CDATA[GS{i % 40:04d}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
                f"<State><![CDATA[store_S{i % 12:03d}]]></State><WelcomeCode><![CDATA[{welcome}]]></WelcomeCode></xml>"
            )
            encrypt = crypto.encrypt(xml)
            nonce = secrets.token_hex(6)
            query = urlencode({"msg_signature": signature(TOKEN, str(now), nonce, encrypt),
                               "timestamp": now, "nonce": nonce})
            body = f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>" \
                   "<AgentID><![CDATA[1000002]]></AgentID></xml>"
            out.write(f"/wecom/callback?{query}\t{body}\n")
    return externals


async def wait_ready(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.read() as session:
        pending = (await session.execute(text("SELECT COUNT(*) FROM raw_event WHERE status = 'pending'"))).scalar_one()
        recorded = (await session.execute(text("SELECT COUNT(*) FROM raw_event"))).scalar_one()
        facts = (await session.execute(text("SELECT COUNT(*) FROM event WHERE type = 'add_contact'"))).scalar_one()
    return int(pending), int(recorded), int(facts)


async def outbox_waiting(db: Database) -> int:
    """Portrait cards and welcomes not yet sent (nor expired, nor given up)."""
    async with db.read() as session:
        return int((await session.execute(text("SELECT COUNT(*) FROM outbox WHERE status = 'pending'"))).scalar_one())


async def wait_backlog(db: Database, answered: float, round_seconds: float, within: float = 600) -> dict[str, float]:
    """Wait until nothing is pending: callbacks processed, then their cards and welcomes sent (the
    next round must start on a quiet machine). Returns how long each took after the round and
    the rate at which the round's callbacks were processed (during the round and after it)."""
    started = time.monotonic()
    pending = 0
    while time.monotonic() - started < within:
        pending, _recorded, _facts = await counts(db)
        if pending == 0:
            break
        await asyncio.sleep(0.25)
    after = time.monotonic() - started
    unsent = await outbox_waiting(db)
    while unsent and time.monotonic() - started < within:
        await asyncio.sleep(0.25)
        unsent = await outbox_waiting(db)
    return {"pending_left": pending, "drain_s": round(after, 2),
            "processed_per_s": round(answered / (round_seconds + after), 1),
            "outbox_left": unsent, "outbox_after_s": round(time.monotonic() - started - after, 2)}


async def make_floor_table(db_url: str, work: Path) -> str:
    """The floor's table (beside serve's in PostgreSQL; a file of its own on SQLite); its URL."""
    from floor_server import PG_TABLE, SQLITE_TABLE  # bench/ is on the path when run as a script

    if db_url.startswith("sqlite"):
        url = f"sqlite:///{work / 'floor.db'}"
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            conn.execute(SQLITE_TABLE)
        return url
    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.execute(text(PG_TABLE))
    await db.dispose()
    return db_url


async def settle(db: Database) -> None:
    """PostgreSQL's own after-work of a round done now, not during the next round: measured at
    128 connections, autovacuum and checkpoints after a round's ~50 k callbacks ran into the
    next bare round (PostgreSQL at 9-21 µs per bare request), which flattered serve's ratio; the
    floor's rows would weigh on serve's round the same way."""
    if not db.is_postgres:
        return
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        await conn.execute(text("CHECKPOINT"))


def idle_share(stats: dict[str, Any], role_prefix: str) -> float:
    """Percent of one core that roles starting with `role_prefix` used during a round."""
    per_request = sum(v for k, v in stats["cpu_us_per_request"].items() if k.startswith(role_prefix))
    return round(per_request * stats["requests"] / stats["duration_us"] * 100, 1)


async def floor_count(url: str) -> int:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM floor_event").fetchone()[0])
    db = Database(url)
    async with db.read() as session:
        count = int((await session.execute(text("SELECT COUNT(*) FROM floor_event"))).scalar_one())
    await db.dispose()
    return count


def serve_edges(db_url: str, env: dict[str, str]) -> int:
    """As many floor processes as serve runs edges."""
    given = {"DATABASE_URL": db_url, "QIANMIAN_SERVE_EDGES": env.get("QIANMIAN_SERVE_EDGES")}
    return Settings(**given).edges_for_serve()


async def run_wrk(port: int, requests_file: Path, seconds: int, connections: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(HERE / "wrk_callbacks.lua"),
        f"http://127.0.0.1:{port}", "--", str(requests_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    line = [x for x in out.decode().splitlines() if x.startswith("{")]
    if not line:
        raise RuntimeError(f"wrk failed: {out.decode()} {err.decode()}")
    stats = json.loads(line[-1])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


async def main() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("QIANMIAN_BENCH_PG", ""))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="serve's QIANMIAN_SERVE_WORKERS")
    parser.add_argument("--no-drain", action="store_true", help="do not wait for the backlog between rounds")
    parser.add_argument("--drain-timeout", type=float, default=600,
                        help="at most this long for the final backlog (what is left is reported as pending)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (bench/run installs it: apt-get install -y wrk)")

    work = Path(tempfile.mkdtemp(prefix="qm-bench-cb-"))
    if args.database == "sqlite":
        db_url = f"sqlite:///{work / 'serve.db'}"
    elif args.pg_url:
        from importing import fresh_pg  # bench/ is on the path when run as a script

        db_url = await asyncio.to_thread(fresh_pg, args.pg_url, "qm_bench_callbacks")
    else:
        sys.exit("--database postgresql needs --pg-url or QIANMIAN_BENCH_PG")
    results: dict[str, list[dict[str, float]]] = {"bare": [], "floor": [], "serve": []}
    drains: list[dict[str, float]] = []
    async with TencentSimulator() as sim:
        bare_port, serve_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_AGENT_ID": str(sim.agent_id),
            "WECOM_SECRET": sim.corp_secret, "WECOM_TOKEN": TOKEN, "WECOM_AES_KEY": AES_KEY,
            "WECOM_API_BASE": sim.base_url, "WECHAT_API_BASE": sim.base_url,
            "QIANMIAN_SECRET_KEY": secrets.token_urlsafe(32), "PORT": str(serve_port), "QIANMIAN_LOG_LEVEL": "WARNING",
            "QIANMIAN_TAGS_REFRESH_AT": "off",
            # The corp-tag mirror works at WeCom's pace (a batch of 50 every 5 s): after a round of
            # tens of thousands of new contacts it would still be tagging them rounds later, on the
            # machine the next round measures. It is work after processing, like the nightly
            # refresh: off here (once a day, so never within a run).
            "QIANMIAN_CORP_TAGS_INTERVAL": "86400",
        }
        if args.workers is not None:
            env["QIANMIAN_SERVE_WORKERS"] = str(args.workers)
        db = Database(db_url)
        floor_port, floor_url = free_port(), await make_floor_table(db_url, work)
        floors = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "floor_server.py"), str(floor_port), floor_url, TOKEN, AES_KEY, sim.corp_id
            )
            for _ in range(serve_edges(db_url, env))
        ]
        bare = await asyncio.create_subprocess_exec(sys.executable, str(HERE / "bare_server.py"), str(bare_port))
        serve = await asyncio.create_subprocess_exec(str(Path(sys.executable).with_name("qianmian")), "serve", env=env)
        try:
            await wait_ready(f"http://127.0.0.1:{bare_port}/healthz")
            await wait_ready(f"http://127.0.0.1:{floor_port}/healthz")
            await asyncio.sleep(1)  # one floor process up is not all of them
            if any(proc.returncode is not None for proc in floors):
                raise RuntimeError("a floor process did not start")
            await wait_ready(f"http://127.0.0.1:{serve_port}/healthz")
            answered = floor_answered = 0
            for rnd in range(args.rounds):
                for name, port in (("bare", bare_port), ("floor", floor_port), ("serve", serve_port)):
                    # Enough distinct callbacks that none repeats within a round.
                    req_file = work / f"{name}-{rnd}.txt"
                    externals = build_requests(req_file, sim.corp_id, 40000 * args.seconds, f"{name[0]}{rnd}",
                                               sim=sim if name == "serve" else None)
                    before = snapshot()
                    stats = await run_wrk(port, req_file, args.seconds, args.connections)
                    stats["cpu_us_per_request"] = us_per_request(before, snapshot(), int(stats["requests"]))
                    if stats["requests"] > len(externals):
                        raise RuntimeError("ran out of distinct callbacks: raise the count")
                    results[name].append(stats)
                    ok = int(stats["requests"] - stats["non_2xx"] - stats["socket_errors"])
                    if name == "serve":
                        answered += ok
                    elif name == "floor":
                        floor_answered += ok
                    print(f"round {rnd} {name:5s}: {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
                          f"p99 {stats['p99_ms']:.2f} ms  non-2xx {stats['non_2xx']}  "
                          f"cpu µs/req {stats['cpu_us_per_request']}", file=sys.stderr)
                    if name == "serve" and not args.no_drain:
                        drain = await wait_backlog(db, stats["requests"], stats["duration_us"] / 1e6)
                        drains.append(drain)
                        print(f"round {rnd} backlog: {drain}", file=sys.stderr)
                    if name != "bare":  # the next server starts on a quiet PostgreSQL
                        await settle(db)
            # Nothing lost: wait for the backlog, then every answered callback is one raw event + one fact.
            final = await wait_backlog(db, 0, 1.0, within=args.drain_timeout)
            pending, recorded, facts = await counts(db)
            floor_recorded = await floor_count(floor_url)
            await db.dispose()
        finally:
            for proc in (bare, serve, *floors):
                proc.terminate()
                await proc.wait()
    shutil.rmtree(work, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    summary: dict[str, object] = {
        "database": args.database,
        "bare_rps_median": round(med("bare", "rps")),
        "serve_rps_median": round(med("serve", "rps")),
        "ratio": round(med("serve", "rps") / med("bare", "rps"), 3),
        "floor_rps_median": round(med("floor", "rps")),
        "floor_ratio": round(med("floor", "rps") / med("bare", "rps"), 3),
        "serve_of_floor": round(med("serve", "rps") / med("floor", "rps"), 3),
        "floor_p99_ms_median": round(med("floor", "p99_ms"), 2),
        "bare_p99_ms_median": round(med("bare", "p99_ms"), 2),
        "serve_p99_ms_median": round(med("serve", "p99_ms"), 2),
        "serve_workers": args.workers if args.workers is not None else "default",
        # serve waiting with nothing to do (its pollers' cost), measured during the bare rounds.
        "serve_idle_pct_of_core_median": statistics.median(idle_share(r, "serve_") for r in results["bare"]),
        "postgresql_during_bare_pct_of_core_median": statistics.median(
            idle_share(r, "postgresql") for r in results["bare"]
        ),
        "processed_per_s_median": statistics.median(d["processed_per_s"] for d in drains) if drains else None,
        "drains": drains,
        "serve_answered_2xx": answered,
        "raw_events_recorded": recorded,
        "add_contact_facts": facts,
        "pending_after_drain": pending,
        "final_drain_s": final["drain_s"],
        # Nothing lost: every callback answered 2xx is recorded (0 expected). Recorded can exceed
        # answered by the requests still in flight when wrk stopped counting.
        "answered_not_recorded": max(answered - recorded, 0),
        "recorded_in_flight_at_stop": max(recorded - answered, 0),
        # The floor is held to the same: what it answered, it recorded (0 expected).
        "floor_answered_not_recorded": max(floor_answered - floor_recorded, 0),
        "rounds": results,
    }
    return summary


if __name__ == "__main__":
    stop_children_on_sigterm()
    print(json.dumps(asyncio.run(main()), ensure_ascii=False))
