"""Chat commands through real encrypted WeCom callbacks (wechatpy's crypto in the kit) into the
bot, answered from the outbox through the simulator's message/send: the answer, the working
notice, the audit, and a callback processed twice answering once."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot import texts
from bot.app import DISPATCHER, SETTINGS, create_app
from bot.simulator.server import TencentSimulator
from profile_store.db import Database
from tests.test_callbacks import Bot
from tests.test_qr import answered, audit, messages_to, say, seed, settings_for


@pytest.fixture
async def sim() -> Any:
    async with TencentSimulator() as simulator:
        yield simulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def start(
    db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Path, **extra: Any
) -> Bot:
    await seed(db, sim)
    app = create_app(settings_for(db_url, sim, tmp_path / "media", **extra), db=db, sweep_interval=3600)
    client = await aiohttp_client(app)
    return Bot(client, app, app[SETTINGS], db, sim)


async def test_a_segment_command_is_answered_in_wecom(
    db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Path
) -> None:
    bot = await start(db, db_url, sim, aiohttp_client, tmp_path)
    await say(bot, "MKT01", "看看有多少高价值会员", "7001")
    await say(bot, "GS0011", "把沉睡会员打上“唤醒”标签", "7002")  # a guide may not label
    await answered(bot)
    [answer] = messages_to(bot, "MKT01")
    content = answer.body["text"]["content"]
    assert content.startswith(texts.CHAT_READING.format(reading="")) and "忠诚" in content and "0 人" in content
    [refused] = messages_to(bot, "GS0011")
    assert refused.body["text"]["content"] == texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_LABEL)
    assert await audit(bot) == [("MKT01", "segment", "done"), ("GS0011", "tag", "refused")]

    # The same callback processed again (a crash after commit, a sweep): one answer, one audit row.
    async with bot.db.transaction() as session:
        await session.execute(text("UPDATE raw_event SET status = 'pending'"))
    assert await bot.app[DISPATCHER].sweep() == {"done": 2}
    await answered(bot)
    assert len(messages_to(bot, "MKT01")) == 1 and len(await audit(bot)) == 2


async def test_long_work_says_so_first(
    db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Path
) -> None:
    bot = await start(db, db_url, sim, aiohttp_client, tmp_path, QIANMIAN_WORKING_NOTICE_SECONDS="0")
    await say(bot, "MKT01", "圈选近90天消费2次以上的会员", "7101")
    await answered(bot)
    said = [m.body["text"]["content"] for m in messages_to(bot, "MKT01")]
    # The notice is queued (and the sender woken) while the work runs, before the answer exists.
    assert len(said) == 2 and texts.CHAT_WORKING in said
    assert any(s.startswith(texts.CHAT_READING.format(reading="")) for s in said)


async def test_a_report_comes_with_its_chart_as_a_wecom_picture(
    db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Path
) -> None:
    bot = await start(db, db_url, sim, aiohttp_client, tmp_path)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=15)
    async with db.transaction() as session:
        for order_id, channel, fen in (("O1", "pos", 12_345), ("O2", "miniapp", 6_789), ("O3", "pos", 100)):
            await session.execute(
                text(
                    "INSERT INTO orders (order_id, channel, store_id, paid_at, amount_fen, coupon_code, status)"
                    " VALUES (:o, :c, 'S001', :at, :fen, '', 'paid')"
                ),
                {"o": order_id, "c": channel, "at": datetime.combine(last_month, time(15)), "fen": fen},
            )
    await say(bot, "MKT01", "对比一下各渠道上个月的销售额", "7201")
    await answered(bot)
    kinds = sorted(m.msgtype for m in messages_to(bot, "MKT01"))
    assert kinds == ["image", "text"]
    [image] = [m for m in messages_to(bot, "MKT01") if m.msgtype == "image"]
    _kind, upload, _at = bot.sim.wecom.media[image.body["image"]["media_id"]]
    assert upload.data[:8] == b"\x89PNG\r\n\x1a\n"
    [said] = [m.body["text"]["content"] for m in messages_to(bot, "MKT01") if m.msgtype == "text"]
    assert "124.45" in said and "67.89" in said  # pos 123.45 + 1.00; miniapp 67.89
    assert await audit(bot) == [("MKT01", "report", "done")]
