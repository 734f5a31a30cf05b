"""Many events for one person at once: callbacks into the running bot while `qianmian import`
(another process) loads the same person's history. Nothing may be lost or left half-attributed."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.app import GRAPH, create_app
from bot.settings import Settings
from bot.simulator.driver import CallbackDriver
from bot.simulator.server import TencentSimulator
from profile_store.db import Database
from tests.conftest import TEST_SECRET

TOKEN = "concurrencytoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
EVENTS = 3000
CALLBACKS = 40
UNIONID = "oUConcurrent0001"


def _write_history(directory: Path) -> None:
    """Member M1 (phone, unionid) and EVENTS browse events of theirs, plus strangers' events."""
    directory.mkdir()
    with (directory / "members.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["member_id", "phone", "unionid", "name", "gender", "birthday", "city", "level",
                    "register_time", "register_channel", "register_store_id"])
        w.writerow(["M1", "13800138000", UNIONID, "张三", "F", "1990-01-01", "上海", "V1",
                    "2026-01-01 10:00:00", "pos", "S001"])
    with (directory / "events.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["event_id", "type", "occurred_at", "channel", "appid", "openid", "unionid", "miniapp_openid",
                    "external_userid", "member_id", "phone", "guide_id", "store_id", "qr_state", "sku", "category",
                    "card_id", "coupon_code", "campaign_id"])
        for i in range(EVENTS):
            # Alternate identifiers of the same person, so links keep joining while callbacks arrive.
            ident = ["", "", UNIONID, f"oMc{i % 7}", "", "", "", ""] if i % 2 else ["", "", "", "", "", "M1", "", ""]
            w.writerow([f"EC{i:05d}", "browse", f"2026-10-{1 + i % 28:02d} 12:{i % 60:02d}:00", "miniapp",
                        *ident[:6], ident[6], "", "", "", f"SKU{i % 9:04d}", "连衣裙", "", "", ""])
        for i in range(EVENTS):  # strangers, to keep the import busy
            w.writerow([f"ES{i:05d}", "browse", "2026-10-02 09:00:00", "miniapp", "", "", f"oUx{i}", f"oMx{i}",
                        "", "", "", "", "", "", "SKU0001", "T恤", "", "", ""])


async def _scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.transaction() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def test_callbacks_and_import_for_one_person_at_once(db_url: str, tmp_path: Path) -> None:
    history = tmp_path / "history"
    _write_history(history)
    db = Database(db_url)
    async with TencentSimulator() as sim:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=db_url, QIANMIAN_SECRET_KEY=TEST_SECRET,
            WECOM_CORP_ID=sim.corp_id, WECOM_AGENT_ID=str(sim.agent_id), WECOM_SECRET=sim.corp_secret,
            WECOM_TOKEN=TOKEN, WECOM_AES_KEY=AES_KEY, WECOM_API_BASE=sim.base_url, WECHAT_API_BASE=sim.base_url,
        )
        app = create_app(settings, db=db, sweep_interval=0.5)
        from aiohttp import web

        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            importer = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("qianmian")), "import", str(history),
                env={**os.environ, "DATABASE_URL": db_url, "QIANMIAN_SECRET_KEY": TEST_SECRET},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            async with CallbackDriver(f"http://127.0.0.1:{port}", corp_id=sim.corp_id, agent_id=str(sim.agent_id),
                                      wecom_token=TOKEN, wecom_aes_key=AES_KEY, sim=sim) as driver:
                results = await asyncio.gather(*(
                    driver.wecom_add_external_contact(f"GS{i % 3:04d}", f"wmConcurrent{i:03d}",
                                                      state="store_S001", unionid=UNIONID)
                    for i in range(CALLBACKS)
                ))
            _, err = await importer.communicate()
            assert importer.returncode == 0, err.decode()
            assert all(r.ok for r in results)
            deadline = time.monotonic() + 60
            while await _scalar(db, "SELECT COUNT(*) FROM raw_event WHERE status <> 'done'"):
                assert time.monotonic() < deadline, "callbacks not processed"
                await asyncio.sleep(0.1)
        finally:
            await runner.cleanup()

    graph = app[GRAPH]
    async with db.transaction() as session:
        person = await graph.person_for(session, "member_id", "M1")
        assert person is not None
        for i in range(CALLBACKS):
            assert await graph.person_for(session, "external_userid", f"wmConcurrent{i:03d}") == person
        assert await graph.person_for(session, "phone", "13800138000") == person
    # Every row of theirs is attributed to them: the imported history and each live contact.
    assert await _scalar(db, "SELECT COUNT(*) FROM event WHERE person_id = :p AND type = 'browse'", p=person) == EVENTS
    assert await _scalar(db, "SELECT COUNT(*) FROM event WHERE person_id = :p AND type = 'add_contact'",
                         p=person) == CALLBACKS
    assert await _scalar(db, "SELECT COUNT(*) FROM raw_event") == CALLBACKS
    assert await _scalar(db, "SELECT COUNT(*) FROM link WHERE resolved = false") == 0
    assert await _scalar(db, "SELECT COUNT(*) FROM event WHERE person_id IS NULL AND link_key IS NOT NULL") == 0
    # Strangers stay strangers.
    assert await _scalar(db, "SELECT COUNT(DISTINCT person_id) FROM event WHERE event_id LIKE 'ES%'") == EVENTS
    await db.dispose()
