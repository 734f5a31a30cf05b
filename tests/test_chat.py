"""Chat commands through the assistant (the path of WeCom and of `qianmian ask`), on the sample
retailer, on SQLite and PostgreSQL: roles, previews and confirmations (and their time limit),
saved segments, not-understood answers, portraits, reports, the audit. Expected people come from
the spec authors' expected_profiles.jsonl or straight from the CSV files, never from our code."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import texts
from bot.chat.engine import Assistant
from bot.chat.reply import Reply, audit
from bot.portrait_links import PortraitLinks
from bot.settings import Settings
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.importer import import_dir
from profile_store.pii import PiiVault
from profile_store.tagging.refresh import refresh_all
from tests.conftest import SAMPLE_DIR, TEST_SECRET, _pg_admin, _pg_url

T = date(2026, 11, 1)
VAULT = PiiVault(TEST_SECRET)
NOON = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai on T


def expected_profiles() -> list[dict[str, Any]]:
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def sample_rows(name: str) -> list[dict[str, str]]:
    with (SAMPLE_DIR / "data" / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sample_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_template: str | None
) -> Iterator[str]:
    """The sample imported and tagged as of T, once per back-end for the module (tests use their
    own staff members and labels, so they do not disturb each other)."""
    folder = tmp_path_factory.mktemp("chat")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'chat.db'}"
    else:
        if pg_template is None:
            pytest.skip("QIANMIAN_TEST_PG not set")
        name = f"qm_chat_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
        url = _pg_url(name)

    async def build() -> None:
        db = Database(url)
        await db.migrate()
        shutil.copytree(SAMPLE_DIR / "data", folder / "data")
        await import_dir(db, folder / "data", VAULT)
        await refresh_all(db, T)
        await db.dispose()

    asyncio.run(build())
    yield url
    if request.param == "postgresql":
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))


@dataclass
class Chat:
    db: Database
    assistant: Assistant
    settings: Settings
    notices: list[str]

    async def say(self, userid: str, words: str) -> Reply:
        async def working(notice: str) -> None:
            self.notices.append(notice)

        reply = await self.assistant.answer(userid, words, now=NOON, as_of=T, progress=working)
        async with self.db.transaction() as session:
            await audit(session, userid, words, reply)
        return reply

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.transaction() as session:
            return list((await session.execute(text(sql), params)).all())


def make_chat(url: str, tmp_path: Path, **extra: Any) -> Chat:
    settings = Settings(
        DATABASE_URL=url, QIANMIAN_SECRET_KEY=TEST_SECRET, QIANMIAN_MEDIA_DIR=str(tmp_path / "media"), **extra
    )  # type: ignore[call-arg]
    db = Database(url)
    links = PortraitLinks(TEST_SECRET, "http://127.0.0.1:8080")
    return Chat(db, Assistant(db, IdentityGraph(VAULT), settings, links), settings, [])


@pytest.fixture
async def chat(sample_url: str, tmp_path: Path) -> Any:
    made = make_chat(sample_url, tmp_path)
    yield made
    await made.db.dispose()


# ---------------------------------------------------------------------------------- roles


def held_by(guide: str) -> list[dict[str, Any]]:
    return [p for p in expected_profiles() if guide in p["tags"].get("guides", [])]


async def test_each_role_segments_within_its_customers(chat: Chat) -> None:
    members = [p for p in expected_profiles() if p["tags"].get("is_member") == "是"]
    marketer = await chat.say("MKT01", "圈选会员")
    assert (marketer.family, marketer.outcome, marketer.size) == ("segment", "done", len(members))

    guide = "GS0091"  # a guide (role guide) holding two members
    mine = [p for p in held_by(guide) if p["tags"].get("is_member") == "是"]
    assert mine, "the sample gives GS0091 member contacts"
    answer = await chat.say(guide, "圈选会员")
    assert answer.size == len(mine) and texts.CHAT_SCOPE_GUIDE in answer.text

    staff_s001 = {g["guide_id"] for g in sample_rows("guides") if g["store_id"] == "S001"}
    store = [
        p
        for p in members
        if p["tags"].get("preferred_store") == "S001" or staff_s001 & set(p["tags"].get("guides", []))
    ]
    manager = await chat.say("GS0010", "圈选会员")
    assert manager.size == len(store) and "上海一店" in manager.text

    stranger = await chat.say("nobody", "圈选会员")
    assert (stranger.outcome, stranger.text) == ("refused", texts.CHAT_UNKNOWN_STAFF)


async def test_samples_are_masked_and_the_reading_is_shown(chat: Chat) -> None:
    answer = await chat.say("MKT01", "圈选上海的高价值会员")
    expected = [
        p
        for p in expected_profiles()
        if p["tags"].get("city") == "上海"
        and p["tags"].get("lifecycle") == "忠诚"
        and p["tags"].get("is_member") == "是"
    ]
    assert answer.size == len(expected) == 40
    assert answer.text.startswith(texts.CHAT_READING.format(reading=answer.reading))
    assert "上海" in answer.reading and "忠诚" in answer.reading
    phones = {ph for p in expected for ph in p["identities"].get("phone", [])}
    assert not any(ph in answer.text for ph in phones)  # phones masked
    assert "****" in answer.text


async def test_a_contradiction_is_answered_with_zero_and_why(chat: Chat) -> None:
    answer = await chat.say("MKT01", "圈选近90天消费2次以上且客单价高于300元的沉睡会员")
    assert answer.size == 0 and texts.CHAT_CONTRADICTION_DORMANT in answer.text


# ---------------------------------------------------------------------------------- labels: preview, confirm


async def test_labels_need_a_marketer_a_preview_and_a_confirmation(chat: Chat) -> None:
    refused = await chat.say("GS0011", "把领券未核销的人打上“券客A”标签")
    assert (refused.family, refused.outcome) == ("tag", "refused")

    outstanding = [p for p in expected_profiles() if p["tags"].get("coupon_outstanding") == "是"]
    preview = await chat.say("MKT01", "把领券未核销的人打上“券客A”标签")
    assert len(outstanding) == 14
    assert (preview.outcome, preview.size) == ("preview", 14)
    assert await chat.rows("SELECT * FROM person_label WHERE label = '券客A'") == []  # nothing yet

    done = await chat.say("MKT01", "确认")
    assert (done.family, done.outcome, done.size) == ("tag", "done", 14)
    assert len(await chat.rows("SELECT person_id FROM person_label WHERE label = '券客A'")) == 14
    assert len(await chat.rows("SELECT * FROM label_log WHERE label = '券客A' AND action = 'add'")) == 14

    again = await chat.say("MKT01", "确认")  # nothing pending any more
    assert (again.outcome, again.text) == ("refused", texts.CHAT_NO_PENDING)

    # The label is now a word of the vocabulary: a segment over it, then taking it off again.
    labelled = await chat.say("MKT01", "圈选有券客A标签的人")
    assert labelled.size == 14, labelled.text
    await chat.say("MKT01", "去掉领券未核销的人的券客A标签")
    removed = await chat.say("MKT01", "确认")
    assert (removed.outcome, removed.size) == ("done", 14)
    assert await chat.rows("SELECT * FROM person_label WHERE label = '券客A'") == []


async def test_cancel_and_lapse(sample_url: str, tmp_path: Path) -> None:
    chat = make_chat(sample_url, tmp_path, QIANMIAN_CONFIRM_MINUTES=0.002)  # 0.12 s
    try:
        await chat.say("ADMIN", "把沉睡会员打上“唤醒B”标签")
        cancelled = await chat.say("ADMIN", "取消")
        assert cancelled.text == texts.CHAT_CANCELLED
        await chat.say("ADMIN", "把沉睡会员打上“唤醒B”标签")
        await asyncio.sleep(0.3)
        lapsed = await chat.say("ADMIN", "确认")
        assert lapsed.outcome == "refused" and "已作废" in lapsed.text
        assert await chat.rows("SELECT * FROM person_label WHERE label = '唤醒B'") == []
    finally:
        await chat.db.dispose()


# ---------------------------------------------------------------------------------- saved segments


async def test_the_last_segment_and_named_segments_are_reused(chat: Chat) -> None:
    first = await chat.say("MKT01", "圈选上海的高价值会员")
    assert "上海的高价值会员" in first.text  # saved under its own words
    again = await chat.say("MKT01", "给刚才那批人打上“沪忠C”标签")
    assert (again.outcome, again.size) == ("preview", first.size)
    await chat.say("MKT01", "取消")
    named = await chat.say("MKT01", "把上海的高价值会员这个人群打上“沪忠C”标签")
    assert (named.outcome, named.size) == ("preview", first.size)
    await chat.say("MKT01", "取消")
    nothing = await chat.say("ADMIN", "给刚才那批人打上“沪忠C”标签")  # ADMIN has no last segment
    assert nothing.outcome == "refused" and nothing.text == texts.CHAT_NO_LAST_SEGMENT


# ---------------------------------------------------------------------------------- not understood


async def test_words_it_cannot_place_are_named_never_guessed(chat: Chat) -> None:
    answer = await chat.say("MKT01", "圈选喜欢火星旅行的会员")
    assert answer.outcome == "not_understood" and answer.size is None
    assert texts.CHAT_NOT_UNDERSTOOD in answer.text and "可以这样说" in answer.text
    unknown = await chat.say("MKT01", "门店S099的会员有多少")
    assert unknown.outcome == "not_understood" and "没有名为“S099”的门店" in unknown.text
    helped = await chat.say("GS0011", "帮助")
    assert helped.family == "help" and "圈" in helped.text


# ---------------------------------------------------------------------------------- portraits


async def test_portrait_by_phone_is_masked_and_guarded(chat: Chat) -> None:
    person = next(p for p in held_by("GS0091") if p["identities"].get("phone"))
    phone = person["identities"]["phone"][0]
    shown = await chat.say("MKT01", f"查一下{phone}")
    assert shown.outcome == "done", shown.text
    assert phone not in shown.text and f"{phone[:3]}****{phone[-4:]}" in shown.text
    assert "/p/" in shown.text  # a signed link to the page
    own = await chat.say("GS0091", f"查一下{phone}")
    assert own.outcome == "done"
    other_guide = next(
        g["guide_id"]
        for g in sample_rows("guides")
        if g["role"] == "guide"
        and g["guide_id"] not in person["tags"].get("guides", [])
        and g["store_id"] != person["tags"].get("preferred_store")
    )
    denied = await chat.say(other_guide, f"查一下{phone}")
    assert (denied.outcome, denied.text) == ("refused", texts.CHAT_PORTRAIT_DENIED)
    missing = await chat.say("MKT01", "查一下13900000000")
    assert missing.outcome == "failed"


async def test_portrait_by_member_id_and_by_name_and_store(chat: Chat) -> None:
    # Two members of the sample are called 王秀英 (members.csv): the name alone is ambiguous.
    namesakes = [m for m in sample_rows("members") if m["name"] == "王秀英"]
    assert len(namesakes) == 2 and namesakes[0]["register_store_id"] != namesakes[1]["register_store_id"]
    by_id = await chat.say("MKT01", "查会员M000007")
    assert by_id.outcome == "done" and "王*" in by_id.text and "王秀英" not in by_id.text
    several = await chat.say("MKT01", "查一下王秀英")
    assert several.outcome == "failed" and "2 位顾客" in several.text
    store = next(s["name"] for s in sample_rows("stores") if s["store_id"] == "S006")
    one = await chat.say("MKT01", f"看一下{store}的王秀英的画像")
    assert one.outcome == "done" and one.text.split("\n")[0] == by_id.text.split("\n")[0]


# ---------------------------------------------------------------------------------- reports


async def test_sales_by_channel_last_month_with_a_chart(chat: Chat) -> None:
    answer = await chat.say("MKT01", "对比一下各渠道上个月的销售额")
    assert (answer.family, answer.outcome) == ("report", "done"), answer.text
    assert answer.image_path and Path(answer.image_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sums: dict[str, int] = {}
    for order in sample_rows("orders"):
        if order["status"] == "paid" and order["paid_at"][:7] == "2026-10":
            cents = round(float(order["amount"]) * 100)
            sums[order["channel"]] = sums.get(order["channel"], 0) + cents
    assert sums, "the sample has October orders"
    for cents in sums.values():
        assert f"{cents / 100:,.2f}" in answer.text or f"{cents / 100:.2f}" in answer.text, answer.text



def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-11:]


def october_sales_of(chosen: set[str]) -> dict[str, tuple[int, int]]:
    """channel → (fen, orders) of the sample's paid October orders of the expected persons
    `chosen` (their `person_id`s), each order put to the one person whose identifier it carries
    (member id first, then unionid, mini-program openid, phone; an identifier two persons share
    decides nothing), straight from orders.csv and expected_profiles.jsonl."""
    owners: dict[tuple[str, str], set[str]] = {}
    for person in expected_profiles():
        for kind, values in person["identities"].items():
            for value in values:
                key = _digits(value) if kind == "phone" else value if isinstance(value, str) else "/".join(value)
                owners.setdefault((kind, key), set()).add(person["person_id"])

    def owner(order: dict[str, str]) -> str | None:
        for kind in ("member_id", "unionid", "miniapp_openid", "phone"):
            value = _digits(order[kind]) if kind == "phone" else order[kind]
            found = owners.get((kind, value), set()) if value else set()
            if len(found) == 1:
                return next(iter(found))
        return None

    sums: dict[str, tuple[int, int]] = {}
    for order in sample_rows("orders"):
        if order["status"] == "paid" and order["paid_at"][:7] == "2026-10" and owner(order) in chosen:
            fen, count = sums.get(order["channel"], (0, 0))
            sums[order["channel"]] = (fen + round(float(order["amount"]) * 100), count + 1)
    return sums


async def test_a_report_restricted_to_a_segment_runs_in_the_database(chat: Chat, monkeypatch: Any) -> None:
    """统计价格导向会员上个月的销售额 (by channel): the segment's compiled SELECT is joined in, on the
    stored profiles and on T's own (`--as-of`), with no person id loaded into Python."""
    from nlp import segment as seg
    from nlp.intent import ReportCommand
    from nlp.segment import Window
    from profile_store.reports import report
    from profile_store.segments import sql as segment_sql
    from profile_store.segments.asof import profile_relation

    def loaded(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a report's segment must not be loaded into Python")

    monkeypatch.setattr(segment_sql, "members", loaded)
    chosen = {
        p["person_id"]
        for p in expected_profiles()
        if p["tags"].get("price_orientation") == "价格导向" and p["tags"].get("is_member") == "是"
    }
    expected = october_sales_of(chosen)
    assert len(expected) >= 2, "the sample's price-oriented members bought in October through several channels"
    tree = seg.all_of(seg.Tag("price_orientation", seg.eq("价格导向")), seg.Tag("is_member", seg.eq("是")))
    command = ReportCommand(measures=("sales", "orders"), by="channel", window=Window("month", -1))
    for as_of in (False, True):
        async with chat.db.read() as session:
            relation = await profile_relation(session, T) if as_of else "profile"
            figures = await report(session, command, T, profile=relation, segment=tree)
        assert figures.members == len(chosen)
        assert {row.key: tuple(row.values) for row in figures.rows} == expected
        assert figures.totals == (sum(f for f, _ in expected.values()), sum(n for _, n in expected.values()))


async def test_a_report_over_a_saved_segment(chat: Chat) -> None:
    """A report over a segment saved earlier ("刚才那批人"): resolved, then compiled into the report's
    queries; the reading names what it stands for."""
    saved = await chat.say("MKT01", "圈选价格导向会员")
    assert saved.outcome == "done", saved.text
    answer = await chat.say("MKT01", "统计刚才那批人上个月各渠道的销售额和订单数")
    chosen = {
        p["person_id"]
        for p in expected_profiles()
        if p["tags"].get("price_orientation") == "价格导向" and p["tags"].get("is_member") == "是"
    }
    assert (answer.family, answer.outcome, answer.size) == ("report", "done", len(chosen)), answer.text
    assert "价格导向" in answer.reading and "2026-10-01至2026-10-31" in answer.reading
    expected = october_sales_of(chosen)
    for fen, orders in expected.values():
        assert f"销售额 {fen / 100:,.2f}元，订单数 {orders}单" in answer.text, answer.text


def _price_members() -> set[str]:
    return {
        p["person_id"]
        for p in expected_profiles()
        if p["tags"].get("price_orientation") == "价格导向" and p["tags"].get("is_member") == "是"
    }


async def test_a_report_restricted_to_the_segment_its_words_name(chat: Chat) -> None:
    """统计价格导向会员上个月各渠道的销售额和订单数: the words name the segment, the figures are of
    its persons only (not everyone's), and the reading says so."""
    answer = await chat.say("MKT01", "统计价格导向会员上个月各渠道的销售额和订单数")
    chosen = _price_members()
    expected = october_sales_of(chosen)
    assert (answer.family, answer.outcome, answer.size) == ("report", "done", len(chosen)), answer.text
    first = answer.text.splitlines()[0]
    assert first == texts.CHAT_READING.format(reading=answer.reading), answer.text
    assert "价格导向" in first and "会员" in first and "2026-10-01至2026-10-31" in first and "渠道" in first
    names = {"pos": "门店", "miniapp": "小程序", "ecom": "电商", "oa_mall": "公众号商城"}
    for channel, (fen, orders) in expected.items():
        assert f"{names[channel]}：销售额 {fen / 100:,.2f}元，订单数 {orders}单" in answer.text, answer.text
    total_fen, total_orders = sum(f for f, _ in expected.values()), sum(n for _, n in expected.values())
    assert f"合计：销售额 {total_fen / 100:,.2f}元，订单数 {total_orders}单" in answer.text, answer.text
    # everyone's October sales are more: the segment was not dropped
    everyone = sum(
        round(float(o["amount"]) * 100)
        for o in sample_rows("orders")
        if o["status"] == "paid" and o["paid_at"][:7] == "2026-10"
    )
    assert everyone > total_fen and f"{everyone / 100:,.2f}" not in answer.text

    # the same totals without a breakdown, the segment written after the window
    total = await chat.say("MKT01", "统计上个月价格导向会员的销售额")
    assert (total.outcome, total.size) == ("done", len(chosen)), total.text
    assert f"销售额 {total_fen / 100:,.2f}元" in total.text, total.text


async def test_a_guides_report_on_a_segment_stays_within_their_customers(chat: Chat) -> None:
    """A guide naming a segment gets it within their own customers (scope and segment, both)."""
    conditions = (("忠诚", "lifecycle", "忠诚"), ("价格导向", "price_orientation", "价格导向"),
                  ("重要价值客户", "rfm", "重要价值客户"), ("重要发展客户", "rfm", "重要发展客户"))
    # a guide whose customers of the segment and whose other customers both bought in October
    guide, word, chosen, expected = next(
        (g["guide_id"], word, chosen, sales)
        for g in sample_rows("guides")
        if g["role"] == "guide"
        for word, key, value in conditions
        for held in [held_by(g["guide_id"])]
        for chosen in [{p["person_id"] for p in held if p["tags"].get(key) == value}]
        if october_sales_of({p["person_id"] for p in held} - chosen)
        for sales in [october_sales_of(chosen)]
        if sales
    )
    answer = await chat.say(guide, f"统计{word}上个月各渠道的销售额")
    assert (answer.family, answer.outcome, answer.size) == ("report", "done", len(chosen)), answer.text
    assert word in answer.reading and answer.text.endswith(texts.CHAT_REPORT_SCOPE_GUIDE)
    total = sum(f for f, _ in expected.values())
    assert f"合计：销售额 {total / 100:,.2f}元" in answer.text, answer.text


async def test_report_words_it_cannot_place_are_named(chat: Chat) -> None:
    answer = await chat.say("MKT01", "统计火星人上个月的销售额")
    assert (answer.family, answer.outcome) == ("unknown", "not_understood"), answer.text
    assert "“火星人”" in answer.text and texts.REPORT_SCOPE_NOT_UNDERSTOOD in answer.text


async def test_a_guides_report_covers_only_their_customers(chat: Chat, monkeypatch: Any) -> None:
    """A guide's report is restricted to the customers they hold (their scope, a segment)."""
    from profile_store.segments import sql as segment_sql

    def loaded(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a report's segment must not be loaded into Python")

    monkeypatch.setattr(segment_sql, "members", loaded)
    # the first guide whose customers bought in October through two channels or more
    guide, chosen, expected = next(
        (g["guide_id"], chosen, sales)
        for g in sample_rows("guides")
        if g["role"] == "guide"
        for chosen in [{p["person_id"] for p in held_by(g["guide_id"])}]
        for sales in [october_sales_of(chosen)]
        if len(sales) >= 2
    )
    answer = await chat.say(guide, "对比一下各渠道上个月的销售额")
    assert (answer.family, answer.outcome, answer.size) == ("report", "done", len(chosen)), answer.text
    for fen, _ in expected.values():
        assert f"{fen / 100:,.2f}" in answer.text, answer.text
    total = sum(f for f, _ in expected.values())
    assert f"{total / 100:,.2f}" in answer.text, answer.text


# ---------------------------------------------------------------------------------- campaigns, notices, audit


async def test_campaigns_are_previewed_then_scheduled(chat: Chat) -> None:
    words = "给上海门店的价格导向会员下周一上午10点发30元无门槛券"
    refused = await chat.say("GS0011", words)
    assert refused.outcome == "refused"
    draft = await chat.say("MKT01", words)
    assert (draft.family, draft.outcome, draft.size) == ("campaign", "preview", 12), draft.text
    assert "2026-11-02 10:00" in draft.text and "30元无门槛券" in draft.text
    assert await chat.rows("SELECT * FROM campaign") == []  # a preview writes nothing
    scheduled = await chat.say("MKT01", "确认")
    assert (scheduled.family, scheduled.outcome, scheduled.size) == ("campaign", "done", 12), scheduled.text
    [campaign] = await chat.rows("SELECT id, name, status, send_at, confirmed_by FROM campaign")
    assert (campaign.status, campaign.confirmed_by) == ("scheduled", "MKT01")
    outcomes = await chat.rows(
        "SELECT outcome, COUNT(*) AS n FROM campaign_target WHERE campaign_id = :c GROUP BY outcome", c=campaign.id
    )
    assert sum(r.n for r in outcomes) == 12  # one row per targeted person, whatever their outcome
    planned = sum(r.n for r in outcomes if r.outcome == "planned")

    # Pause, resume, cancel: each previewed, then confirmed; a guide may not.
    assert (await chat.say("GS0011", f"暂停{campaign.name}")).outcome == "refused"
    paused = await chat.say("MKT01", f"暂停{campaign.name}")
    assert (paused.outcome, paused.size) == ("preview", planned), paused.text
    assert (await chat.say("MKT01", "确认")).outcome == "done"
    assert await status_of(chat, campaign.id) == "paused"
    assert (await chat.say("MKT01", f"暂停{campaign.name}")).outcome == "refused"  # already paused
    await chat.say("MKT01", f"恢复{campaign.name}")
    await chat.say("MKT01", "确认")
    assert await status_of(chat, campaign.id) == "scheduled"
    await chat.say("MKT01", f"取消{campaign.name}活动")
    assert (await chat.say("MKT01", "确认")).outcome == "done"
    assert await status_of(chat, campaign.id) == "cancelled"
    left = await chat.rows(
        "SELECT COUNT(*) AS n FROM campaign_target WHERE campaign_id = :c AND outcome = 'planned'", c=campaign.id
    )
    assert left[0].n == 0  # nothing of a cancelled campaign will be sent
    assert campaign.name == "上海门店的价格导向会员·30元无门槛券·1101"  # whom, what, the day
    measured = await chat.say("MKT01", f"统计{campaign.name}的效果")
    assert (measured.family, measured.outcome, measured.size) == ("report", "done", 12), measured.text
    unknown = await chat.say("MKT01", "暂停火星大促")
    assert unknown.outcome == "not_understood" and "火星大促" in unknown.text
    async with chat.db.transaction() as session:  # the module's sample stays the sample
        await session.execute(text("DELETE FROM campaign_target WHERE campaign_id = :c"), {"c": campaign.id})
        await session.execute(text("DELETE FROM campaign WHERE id = :c"), {"c": campaign.id})


async def status_of(chat: Chat, campaign_id: int) -> str:
    [row] = await chat.rows("SELECT status FROM campaign WHERE id = :c", c=campaign_id)
    return str(row.status)


async def test_long_work_sends_a_notice_first(sample_url: str, tmp_path: Path) -> None:
    chat = make_chat(sample_url, tmp_path, QIANMIAN_WORKING_NOTICE_SECONDS=0)
    try:
        await chat.say("MKT01", "圈选近90天消费2次以上的会员")
        assert chat.notices == [texts.CHAT_WORKING]
    finally:
        await chat.db.dispose()


async def test_every_command_is_audited(chat: Chat) -> None:
    await chat.say("GS0051", "圈选上海的高价值会员")
    await chat.say("GS0051", "火星")
    rows = await chat.rows(
        "SELECT userid, text, family, outcome, reading, result_size FROM command_log"
        " WHERE userid = 'GS0051' ORDER BY id"
    )
    assert [(r.family, r.outcome) for r in rows] == [("segment", "done"), ("unknown", "not_understood")]
    assert rows[0].text == "圈选上海的高价值会员" and "忠诚" in rows[0].reading and rows[0].result_size is not None


async def test_the_effect_of_a_campaign_we_ran(chat: Chat) -> None:
    people = [r.person_id for r in await chat.rows("SELECT person_id FROM profile ORDER BY person_id LIMIT 4")]
    sent = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    async with chat.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO campaign (name, kind, segment, reading, variants, channel, waves, control_pct,"
                " attribution_days, status, created_by, created_at, confirmed_by)"
                " VALUES ('秋季焕新', 'campaign', '{}', '', '[]', 'any', '[]', 50, 7, 'done', 'MKT01', :at, 'MKT01')"
            ),
            {"at": sent},
        )
        [(campaign,)] = (await session.execute(text("SELECT id FROM campaign WHERE name = '秋季焕新'"))).all()
        for i, person in enumerate(people):
            await session.execute(
                text(
                    "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
                    " outcome, due_at, attempts, sent_at, last_error)"
                    " VALUES (:c, 0, :p, 'default', 'wecom', '', '', :o, :at, 0, :sent, '')"
                ),
                {"c": campaign, "p": person, "o": "sent" if i < 2 else "control", "at": sent,
                 "sent": sent if i < 2 else None},
            )
        await session.execute(
            text(
                "INSERT INTO orders (order_id, person_id, channel, store_id, paid_at, amount_fen, coupon_code, status)"
                " VALUES ('EFFECT1', :p, 'pos', 'S001', '2026-10-22 15:00:00', 39900, '', 'paid')"
            ),
            {"p": people[0]},
        )
    try:
        refused = await chat.say("GS0011", "统计秋季焕新的效果")
        assert refused.outcome == "refused"
        answer = await chat.say("MKT01", "统计秋季焕新的效果")
        assert (answer.family, answer.outcome, answer.size) == ("report", "done", 4), answer.text
        assert answer.image_path and Path(answer.image_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "50" in answer.text and "399" in answer.text, answer.text  # 1 of 2 treated bought 399 元
    finally:  # the module's sample stays the sample for the other tests
        async with chat.db.transaction() as session:
            await session.execute(text("DELETE FROM orders WHERE order_id = 'EFFECT1'"))
            await session.execute(text("DELETE FROM campaign_target WHERE campaign_id = :c"), {"c": campaign})
            await session.execute(text("DELETE FROM campaign WHERE id = :c"), {"c": campaign})
