"""`qianmian campaign …` (bot/cli_campaigns.py), run in-process on SQLite and PostgreSQL.

A small retailer is imported for real (tests/tag_kit.py) and its tags refreshed; which variant
each person gets is worked out by hand from the orders written here (tags.md: 价格导向 = at least
half the orders with a coupon; 忠诚 = 3 orders in the last year), never read from the code.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli_campaigns import campaign_app
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.tagging.refresh import refresh_all
from tests.conftest import TEST_SECRET
from tests.tag_kit import Retailer, T, person_of

MEMBERS = ("M01", "M02", "M03", "M04", "M05", "M06")
# 上海门店的会员 = preferred store in 上海 (the most orders there): M01–M04; M05 has no order, M06
# buys in 北京. Variant by hand: the loyal first (M03, M04 are loyal whatever their orientation),
# then price-oriented (M01: its one order used a coupon), quality-oriented (M02: no coupon).
EXPECTED = {"M01": "价格导向的人", "M02": "品质导向的人", "M03": "忠诚会员", "M04": "忠诚会员"}
# "会员" (every member): M05, without orders and so without orientation, is everyone left.
EXPECTED_ALL = {**EXPECTED, "M05": "default", "M06": "价格导向的人"}
VARIANTS = [
    "--variant", "忠诚会员=会员专享礼遇，凭会员码到店领取",
    "--variant", "价格导向的人=发30元无门槛券，到店使用",
    "--variant", "品质导向的人=新品上市，欢迎来店试穿",
    "--default", "新品上市，欢迎来店",
]


def retailer() -> Retailer:
    r = Retailer()
    for i, member in enumerate(MEMBERS, start=1):
        r.member(member, phone=f"1380013{i:04d}")  # a phone each: every one reachable by sms
    r.order("M01", "2026-10-01 12:00:00", "100", coupon_code="X1")
    r.order("M02", "2026-10-01 12:00:00", "300")
    r.rows["stores"].append({"store_id": "S002", "name": "北京一店", "city": "北京", "region": "华北"})
    r.order("M06", "2026-10-01 12:00:00", "100", coupon_code="Z1", store_id="S002")
    for month in ("07", "08", "09"):
        r.order("M03", f"2026-{month}-01 12:00:00", "300")
        r.order("M04", f"2026-{month}-02 12:00:00", "100", coupon_code=f"Y{month}")
    return r


async def _load(url: str, directory: Path) -> dict[str, str]:
    db = Database(url)
    try:
        await retailer().load(db, directory)
        await refresh_all(db, T)
        return {await person_of(db, m): m for m in MEMBERS}
    finally:
        await db.dispose()


async def _query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return [tuple(r) for r in (await session.execute(text(sql), params)).all()]
    finally:
        await db.dispose()


async def _targets(url: str, name: str) -> list[dict[str, Any]]:
    db = Database(url)
    try:
        async with db.transaction() as session:
            state = await store.campaign_state(session, name)
            assert state is not None
            return await store.targets(session, state.campaign_id)
    finally:
        await db.dispose()


def test_create_preview_confirm_variants_and_control(db_url: str, tmp_path: Path) -> None:
    people = asyncio.run(_load(db_url, tmp_path / "shop"))
    env = {"DATABASE_URL": db_url, "QIANMIAN_SECRET_KEY": TEST_SECRET, "COLUMNS": "250"}
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(campaign_app, list(args), env=env)

    at = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=7)).strftime("%Y-%m-%d 10:00")
    create = ["create", "双12千人千面", "--segment", "上海门店的会员", *VARIANTS, "--at", at, "--control", "0",
              "--by", "marketer1"]

    # preview: the figures, nothing stored
    shown = cli(*create)
    assert shown.exit_code == 0, shown.output
    assert "预览（未保存）" in shown.stdout and "目标 4 人" in shown.stdout and "将发出 4 条（短信 4）" in shown.stdout
    assert "版本“忠诚会员”（生命周期为忠诚，且是会员）：目标 2 人，发出 2 条" in shown.stdout
    assert "版本“价格导向的人”（购买类型为价格导向）：目标 1 人" in shown.stdout and "--yes" in shown.stdout
    assert asyncio.run(_query(db_url, "SELECT count(*) FROM campaign"))[0][0] == 0
    assert asyncio.run(_query(db_url, "SELECT count(*) FROM campaign_target"))[0][0] == 0

    # --yes: stored (scheduled, confirmed by), planned one row per person, variants by tag
    done = cli(*create, "--yes")
    assert done.exit_code == 0, done.output
    assert "已保存并排期" in done.stdout and "将发出 4 条" in done.stdout
    stored = asyncio.run(_query(db_url, "SELECT status, confirmed_by, created_by, control_pct FROM campaign"))
    assert stored == [("scheduled", "marketer1", "marketer1", 0.0)]
    rows = asyncio.run(_targets(db_url, "双12千人千面"))
    assert len(rows) == len({r["person_id"] for r in rows}) == 4
    assert {people[r["person_id"]]: r["variant"] for r in rows} == EXPECTED
    assert {r["outcome"] for r in rows} == {"planned"} and {r["channel"] for r in rows} == {"sms"}
    # stored as the chat's 千人千面 drafts are: name, condition read back, content, in order
    [(stored_variants,)] = asyncio.run(_query(db_url, "SELECT variants FROM campaign"))
    assert [(v["name"], v["who"], v["content"], v["coupon"]) for v in json.loads(stored_variants)] == [
        ("忠诚会员", "生命周期为忠诚，且是会员", "会员专享礼遇，凭会员码到店领取", None),
        ("价格导向的人", "购买类型为价格导向", "发30元无门槛券，到店使用", None),
        ("品质导向的人", "购买类型为品质导向", "新品上市，欢迎来店试穿", None),
        ("default", "", "新品上市，欢迎来店", None),
    ]

    # the same name again: refused, nothing more stored
    again = cli(*create, "--yes")
    assert again.exit_code == 1 and "已有名为“双12千人千面”" in again.stderr
    assert asyncio.run(_query(db_url, "SELECT count(*) FROM campaign"))[0][0] == 1

    # not understood: a clear error naming the words, exit 1, nothing stored
    bad = cli("create", "乱码", "--segment", "会员", "--variant", "火星来的人=你好", "--yes")
    assert bad.exit_code == 1 and "--variant" in bad.stderr and "火星来的人" in bad.stderr
    bad_segment = cli("create", "乱码", "--segment", "喜欢咕咕嘎嘎的顾客", "--default", "你好", "--yes")
    assert bad_segment.exit_code == 1 and "--segment" in bad_segment.stderr and "咕咕嘎嘎" in bad_segment.stderr
    assert asyncio.run(_query(db_url, "SELECT count(*) FROM campaign"))[0][0] == 1

    # list: name, status, send time, targeted / planned / sent
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    assert f"双12千人千面\tscheduled\t{at}\t4\t4\t0" in listed.stdout

    # pause: a preview, then --yes; resume; cancel ends the waiting rows
    paused = cli("pause", "双12千人千面")
    assert paused.exit_code == 0 and "将暂停" in paused.stdout and "4 条未发送" in paused.stdout
    assert asyncio.run(_query(db_url, "SELECT status FROM campaign"))[0][0] == "scheduled"
    assert cli("pause", "双12千人千面", "--yes").exit_code == 0
    assert asyncio.run(_query(db_url, "SELECT status FROM campaign"))[0][0] == "paused"
    twice = cli("pause", "双12千人千面", "--yes")
    assert twice.exit_code == 1 and "不能暂停" in twice.stderr
    resumed = cli("resume", "双12千人千面", "--yes")
    assert resumed.exit_code == 0 and "已排期" in resumed.stdout
    assert cli("cancel", "双12千人千面", "--yes").exit_code == 0
    assert asyncio.run(_query(db_url, "SELECT status FROM campaign"))[0][0] == "cancelled"
    assert {r["outcome"] for r in asyncio.run(_targets(db_url, "双12千人千面"))} == {"expired"}
    unknown = cli("cancel", "没有这个活动", "--yes")
    assert unknown.exit_code == 1 and "没有名为“没有这个活动”" in unknown.stderr

    # everyone left: the --default variant
    everyone = cli("create", "全体会员", "--segment", "会员", *VARIANTS, "--control", "0", "--channel", "sms", "--yes")
    assert everyone.exit_code == 0, everyone.output
    channel = asyncio.run(_query(db_url, "SELECT channel FROM campaign WHERE name = '全体会员'"))
    assert channel == [("sms",)]
    rows = asyncio.run(_targets(db_url, "全体会员"))
    assert {people[r["person_id"]]: r["variant"] for r in rows} == EXPECTED_ALL
