"""Nothing answered is lost: callbacks recorded but not processed (crash, restart) are processed by
the sweeper; several processes sweeping at once process each callback exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.app import create_app
from bot.callback_xml import CallbackEvent
from bot.dispatcher import Dispatcher, Router
from bot.simulator.server import TencentSimulator
from profile_store import raw_events
from profile_store.db import Database
from tests import callback_kit as kit
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent


def _pending(n: int, prefix: str = "o") -> list[raw_events.NewRawEvent]:
    now = int(time.time())
    return [
        raw_events.NewRawEvent(
            dedupe_key=f"wechat:{kit.OA_GH}:{prefix}{i}:event:subscribe::{now}",
            channel="wechat",
            account=kit.OA1,
            body=kit.oa_event("subscribe", f"{prefix}{i}", now),
            received_at=datetime.now(UTC),
        )
        for i in range(n)
    ]


async def _scalar(db: Database, sql: str) -> Any:
    async with db.transaction() as session:
        return (await session.execute(text(sql))).scalar_one()


async def test_pending_callbacks_are_processed_at_startup(db: Database, db_url: str, aiohttp_client: Any) -> None:
    await raw_events.record_once(db, _pending(6))
    async with TencentSimulator() as sim:  # followers it does not know: user/info answers at once
        settings = kit.make_settings(db_url, corp_id=sim.corp_id, secret=sim.corp_secret,
                                     agent_id=str(sim.agent_id), api_base=sim.base_url)
        await aiohttp_client(create_app(settings, db=db, sweep_interval=3600))
        await _wait_settled(db)
    assert await _scalar(db, "SELECT COUNT(*) FROM raw_event WHERE status = 'done'") == 6
    assert await _scalar(db, "SELECT COUNT(*) FROM event WHERE type = 'follow' AND person_id IS NOT NULL") == 6


async def _wait_settled(db: Database) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # polling the database: the sweeper runs in the app
        if not await _scalar(db, "SELECT COUNT(*) FROM raw_event WHERE status = 'pending'"):
            break
        await asyncio.sleep(0.05)


async def test_concurrent_sweepers_process_each_callback_once(db_url: str) -> None:
    """Two 'processes' (own engines, own dispatchers) sweep the same backlog at once."""
    seen: list[int] = []

    def counting_router() -> Router:
        router = Router()

        @router.event(CallbackEvent)
        async def count(raw_event_id: int, session: Any) -> None:
            seen.append(raw_event_id)
            await asyncio.sleep(0.01)  # hold the claim a moment, so the sweepers overlap

        return router

    first, second = Database(db_url), Database(db_url)
    try:
        await raw_events.record_once(first, _pending(30))
        sweepers = [Dispatcher(d, [counting_router()], {}) for d in (first, second)]
        results = await asyncio.gather(*(s.sweep() for s in sweepers))
        assert sum(r.get("done", 0) for r in results) == 30
        assert sorted(Counter(seen).values()) == [1] * 30
        assert await _scalar(first, "SELECT COUNT(*) FROM raw_event WHERE status = 'done'") == 30
    finally:
        await first.dispose()
        await second.dispose()


# ----------------------------------------------------------------------------- SIGKILL a server


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.serve_app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        pytest.fail(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


async def test_sigkill_during_processing_loses_nothing_answered(db_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "QIANMIAN_SECRET_KEY": TEST_SECRET,
        "WECHAT_APP_ID": kit.OA1,
        "WECHAT_APP_SECRET": "oa1secret",
        "WECHAT_TOKEN": kit.OA1_TOKEN,
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        "QIANMIAN_TEST_SLOW_SECONDS": "5",
        "QIANMIAN_LOG_LEVEL": "WARNING",
    }
    for name in ("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_AGENT_ID", "WECOM_TOKEN", "WECOM_AES_KEY", "WECHAT_ACCOUNTS"):
        env.pop(name, None)
    proc, port = _start(env)
    t = int(time.time())
    answered: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def send(i: int) -> None:
                signed = kit.oa_plain_post(kit.oa_text(f"oK{i}", f"77{i:05d}", "在吗", t), nonce=f"n{i}")
                async with http.post(
                    f"http://127.0.0.1:{port}/wechat/callback", params=signed.params, data=signed.body
                ) as resp:
                    if resp.status == 200 and await resp.text() == "success":
                        answered.append(f"oK{i}")

            await asyncio.gather(*(send(i) for i in range(20)))
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-processing: the slow handler holds its transaction
        proc.wait(timeout=10)
    assert len(answered) == 20

    db = Database(db_url)
    try:
        recorded = await _scalar(db, "SELECT COUNT(*) FROM raw_event")
        unfinished = await _scalar(db, "SELECT COUNT(*) FROM raw_event WHERE status = 'pending'")
        assert recorded == 20  # every answer was preceded by a durable record
        assert unfinished > 0  # the kill did interrupt processing
        assert await _scalar(db, "SELECT COUNT(*) FROM event") == 20 - unfinished

        env["QIANMIAN_TEST_SLOW_SECONDS"] = "0"
        proc, _port = _start(env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if await _scalar(db, "SELECT COUNT(*) FROM raw_event WHERE status <> 'done'") == 0:
                    break
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        async with db.transaction() as session:
            openids = sorted(
                r[0] for r in (await session.execute(text("SELECT openid FROM event WHERE type = 'message'"))).all()
            )
        assert openids == sorted(answered)
    finally:
        await db.dispose()


async def test_links_left_pending_are_resolved_when_the_bot_starts(
    db: Database, db_url: str, aiohttp_client: Any
) -> None:
    """An import killed between its rows and its resolve leaves links pending: serve settles them."""
    from profile_store.identity import IdentityGraph, Sighting
    from profile_store.normalize import Identifier
    from profile_store.pii import PiiVault
    from tests.conftest import TEST_SECRET

    graph = IdentityGraph(PiiVault(TEST_SECRET))
    async with db.transaction() as session:  # observed, never resolved: what the kill leaves
        await graph.observe(session, [Sighting("order", "O1", [Identifier("member_id", "M1"),
                                                               Identifier("unionid", "oU1")])])
    assert await _scalar(db, "SELECT COUNT(*) FROM link WHERE resolved = false") == 1
    async with TencentSimulator() as sim:
        settings = kit.make_settings(db_url, corp_id=sim.corp_id, secret=sim.corp_secret,
                                     agent_id=str(sim.agent_id), api_base=sim.base_url)
        await aiohttp_client(create_app(settings, db=db, sweep_interval=3600))
    assert await _scalar(db, "SELECT COUNT(*) FROM link WHERE resolved = false") == 0
    async with db.transaction() as session:
        assert await graph.person_for(session, "member_id", "M1") == await graph.person_for(session, "unionid", "oU1")
