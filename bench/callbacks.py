"""Callback ingestion: encrypted `add_external_contact` callbacks over loopback into `qianmian serve`,
against a bare aiohttp handler measured in the same run (alternating rounds; medians and ratio).

The load comes from wrk (C, one thread, N connections) replaying distinct pre-encrypted callbacks,
so the client is not the bottleneck. After the rounds, the bench waits until serve has processed
its backlog and checks that every callback answered 200 is recorded exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import text

from bot.crypto import MessageCrypto, signature
from bot.simulator.server import TencentSimulator
from profile_store.db import Database

HERE = Path(__file__).parent
TOKEN = "benchtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_requests(path: Path, corp_id: str, count: int, tag: str) -> list[str]:
    """`count` distinct encrypted add_external_contact callbacks, signed now."""
    crypto = MessageCrypto(TOKEN, AES_KEY, corp_id)
    now = int(time.time())
    externals = []
    with path.open("w") as out:
        for i in range(count):
            external = f"wmbench{tag}{i:07d}"
            externals.append(external)
            xml = (
                f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
                f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[change_external_contact]]></Event>"
                "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                f"<UserID><![CDATA[GS{i % 40:04d}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
                f"<State><![CDATA[store_S{i % 12:03d}]]></State><WelcomeCode><![CDATA[WC{tag}{i}]]></WelcomeCode></xml>"
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
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (bench/run installs it: apt-get install -y wrk)")

    work = Path(tempfile.mkdtemp(prefix="qm-bench-cb-"))
    db_url = f"sqlite:///{work / 'serve.db'}" if args.database == "sqlite" else args.pg_url
    results: dict[str, list[dict[str, float]]] = {"bare": [], "serve": []}
    async with TencentSimulator() as sim:
        bare_port, serve_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_AGENT_ID": str(sim.agent_id),
            "WECOM_SECRET": sim.corp_secret, "WECOM_TOKEN": TOKEN, "WECOM_AES_KEY": AES_KEY,
            "WECOM_API_BASE": sim.base_url, "WECHAT_API_BASE": sim.base_url,
            "QIANMIAN_SECRET_KEY": secrets.token_urlsafe(32), "PORT": str(serve_port), "QIANMIAN_LOG_LEVEL": "WARNING",
        }
        bare = await asyncio.create_subprocess_exec(sys.executable, str(HERE / "bare_server.py"), str(bare_port))
        serve = await asyncio.create_subprocess_exec(str(Path(sys.executable).with_name("qianmian")), "serve", env=env)
        try:
            await wait_ready(f"http://127.0.0.1:{bare_port}/healthz")
            await wait_ready(f"http://127.0.0.1:{serve_port}/healthz")
            answered = 0
            for rnd in range(args.rounds):
                for name, port in (("bare", bare_port), ("serve", serve_port)):
                    # Enough distinct callbacks that none repeats within a round.
                    req_file = work / f"{name}-{rnd}.txt"
                    externals = build_requests(req_file, sim.corp_id, 25000 * args.seconds, f"{name[0]}{rnd}")
                    if name == "serve":
                        for ext in externals:
                            sim.add_external_contact(ext, unionid=f"oU{ext}", name="顾客")
                    stats = await run_wrk(port, req_file, args.seconds, args.connections)
                    if stats["requests"] > len(externals):
                        raise RuntimeError("ran out of distinct callbacks: raise the count")
                    results[name].append(stats)
                    if name == "serve":
                        answered += int(stats["requests"] - stats["non_2xx"] - stats["socket_errors"])
                    print(f"round {rnd} {name:5s}: {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
                          f"p99 {stats['p99_ms']:.2f} ms  non-2xx {stats['non_2xx']}", file=sys.stderr)
            # Nothing lost: wait for the backlog, then every answered callback is one raw event + one fact.
            db = Database(db_url)
            deadline = time.monotonic() + 600
            while True:
                async with db.transaction() as session:
                    pending = (await session.execute(text(
                        "SELECT COUNT(*) FROM raw_event WHERE status = 'pending'"))).scalar_one()
                    recorded = (await session.execute(text("SELECT COUNT(*) FROM raw_event"))).scalar_one()
                    facts = (await session.execute(text(
                        "SELECT COUNT(*) FROM event WHERE type = 'add_contact'"))).scalar_one()
                if pending == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            await db.dispose()
        finally:
            for proc in (bare, serve):
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
        "bare_p99_ms_median": round(med("bare", "p99_ms"), 2),
        "serve_p99_ms_median": round(med("serve", "p99_ms"), 2),
        "serve_answered_2xx": answered,
        "raw_events_recorded": recorded,
        "add_contact_facts": facts,
        "pending_after_drain": pending,
        # Nothing lost: every callback answered 2xx is recorded (0 expected). Recorded can exceed
        # answered by the requests still in flight when wrk stopped counting.
        "answered_not_recorded": max(answered - recorded, 0),
        "recorded_in_flight_at_stop": max(recorded - answered, 0),
        "rounds": results,
    }
    return summary


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), ensure_ascii=False))
