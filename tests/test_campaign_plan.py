"""The campaign planner (campaigns.plan) on SQLite and PostgreSQL.

Expected figures are worked out by hand here (the control group by this file's own md5), never
read from the code under test. The small retailer is imported for real (tests/tag_kit.py) and its
tags refreshed; the larger populations are person and profile rows written directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from campaigns.plan import PlanReport, PlanRules, out_of_quiet_hours, plan, plan_wave, preview
from nlp.segment import Everyone, Tag, eq, to_json
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.models import Campaign, Order, Person, PersonProfile
from profile_store.tagging.refresh import refresh_all
from tests.tag_kit import Retailer, T, person_of

SH = ZoneInfo("Asia/Shanghai")
RULES = PlanRules()  # 2 messages / 7 days, quiet 21:00-09:00, Asia/Shanghai


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


NOW = local(2026, 11, 1, 10)  # T = 2026-11-01, 10:00 local
SEND = local(2026, 11, 2, 10)  # the next day 10:00 local


def hand_bucket(campaign_id: int, person_id: str) -> int:
    return int(hashlib.md5(f"{campaign_id}:{person_id}".encode()).hexdigest()[:8], 16) % 10_000


def draft(name: str, **values: Any) -> Campaign:
    values.setdefault("segment", to_json(Everyone()))
    values.setdefault("send_at", SEND)
    values.setdefault("control_pct", 0.0)
    return Campaign(name=name, **values)


async def stored(db: Database, campaign: Campaign) -> int:
    async with db.transaction() as session:
        return await store.create_campaign(session, campaign)


async def rows(db: Database, campaign_id: int, wave: int | None = 0) -> dict[str, dict[str, Any]]:
    async with db.transaction() as session:
        return {r["person_id"]: r for r in await store.targets(session, campaign_id, wave)}


def assert_adds_up(report: PlanReport) -> None:
    assert report.adds_up, report
    assert report.targeted == (
        report.planned + report.capped + report.opted_out + report.control + report.unreachable
    )
    assert sum(report.by_channel.values()) == report.planned
    assert sum(report.by_variant.values()) == report.targeted


# ---------------------------------------------------------------------------------- the small retailer


def channel_retailer() -> Retailer:
    r = Retailer()
    r.guide("G1", "王导购")
    r.guide("G2", "李导购")
    for i in range(1, 12):
        phone = f"1380013{i:04d}" if i not in (4, 5, 7, 8) else ""
        r.member(f"M{i:02d}", phone=phone)
    wecom = {"channel": "wecom"}
    oa = {"channel": "oa", "appid": "wxoa"}
    # M01: a guide's contact → wecom through G1
    r.event("M01", "add_contact", "2026-10-01 10:00:00", external_userid="wm01", guide_id="G1", **wecom)
    # M02: added by G1, later by G2, both hold → G2 (the latest)
    r.event("M02", "add_contact", "2026-09-01 10:00:00", external_userid="wm02", guide_id="G1", **wecom)
    r.event("M02", "add_contact", "2026-10-10 10:00:00", external_userid="wm02", guide_id="G2", **wecom)
    # M03: G2 added later but deleted → G1 (the latest still held)
    r.event("M03", "add_contact", "2026-09-01 10:00:00", external_userid="wm03", guide_id="G1", **wecom)
    r.event("M03", "add_contact", "2026-10-10 10:00:00", external_userid="wm03", guide_id="G2", **wecom)
    r.event("M03", "del_contact", "2026-10-15 10:00:00", external_userid="wm03", guide_id="G2", **wecom)
    # M04: follower who wrote 47 h before the send → oa_custom; M05 exactly 48 h before → oa_template
    r.event("M04", "follow", "2026-06-01 10:00:00", openid="o04", **oa)
    r.event("M04", "message", "2026-10-31 11:00:00", openid="o04", **oa)
    r.event("M05", "follow", "2026-06-01 10:00:00", openid="o05", **oa)
    r.event("M05", "message", "2026-10-31 10:00:00", openid="o05", **oa)
    # M06: a phone only → sms;  M07: nothing → unreachable
    # M08: guide's contact and follower, opted out of wecom → oa_template
    r.event("M08", "add_contact", "2026-10-01 10:00:00", external_userid="wm08", guide_id="G1", **wecom)
    r.event("M08", "follow", "2026-06-01 10:00:00", openid="o08", **oa)
    # M09: phone and follower, opted out of all → opted_out;  M10: phone, opted out of sms → opted_out
    r.event("M09", "follow", "2026-06-01 10:00:00", openid="o09", **oa)
    # M11: guide's contact with a phone, opted out of wecom → sms
    r.event("M11", "add_contact", "2026-10-01 10:00:00", external_userid="wm11", guide_id="G1", **wecom)
    # tags for variants: M01 price-oriented (a coupon order), M02 quality-oriented
    r.order("M01", "2026-10-01 12:00:00", "100", coupon_code="X1")
    r.order("M02", "2026-10-01 12:00:00", "300")
    return r


@pytest.fixture
async def shop(db: Database, tmp_path: Path) -> dict[str, str]:
    """member id → person id of the channel retailer, with its opt-outs."""
    await channel_retailer().load(db, tmp_path / "shop")
    await refresh_all(db, T)
    ids = {f"M{i:02d}": await person_of(db, f"M{i:02d}") for i in range(1, 12)}
    async with db.transaction() as session:
        await store.opt_out(session, ids["M08"], "wecom", "退订")
        await store.opt_out(session, ids["M09"], "all", "TD")
        await store.opt_out(session, ids["M10"], "sms", "TD")
        await store.opt_out(session, ids["M11"], "wecom", "退订")
        assert not await store.opt_out(session, ids["M11"], "wecom", "again")  # for good: the first stays
    return ids


EXPECTED = {  # member → (outcome, channel, guide)
    "M01": ("planned", "wecom", "G1"),
    "M02": ("planned", "wecom", "G2"),
    "M03": ("planned", "wecom", "G1"),
    "M04": ("planned", "oa_custom", ""),
    "M05": ("planned", "oa_template", ""),
    "M06": ("planned", "sms", ""),
    "M07": ("unreachable", "", ""),
    "M08": ("planned", "oa_template", ""),
    "M09": ("opted_out", "", ""),
    "M10": ("opted_out", "", ""),
    "M11": ("planned", "sms", ""),
}


async def test_channels_guides_and_opt_outs(db: Database, shop: dict[str, str]) -> None:
    cid = await stored(db, draft("渠道"))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    planned = await rows(db, cid)
    got = {m: (planned[pid]["outcome"], planned[pid]["channel"], planned[pid]["guide_id"]) for m, pid in shop.items()}
    assert got == EXPECTED
    assert (report.targeted, report.planned, report.opted_out, report.unreachable, report.capped, report.control) == (
        11, 8, 2, 1, 0, 0,
    )
    assert report.by_channel == {"wecom": 3, "oa_custom": 1, "oa_template": 2, "sms": 2}
    assert report.written == 11
    assert report.due_at == SEND
    assert all(r["due_at"] == SEND for r in (await rows(db, cid)).values())
    assert_adds_up(report)


async def test_preview_matches_plan_and_writes_nothing(db: Database, shop: dict[str, str]) -> None:
    campaign = draft("预览", control_pct=30.0)
    cid = await stored(db, campaign)
    seen = await preview(db, campaign, now=NOW, today=T, rules=RULES)
    assert seen.preview and seen.written == 0
    assert await rows(db, cid) == {}
    assert_adds_up(seen)
    assert seen.targeted == 11
    # control by this file's md5; the others as in EXPECTED
    held = {m for m, pid in shop.items() if hand_bucket(cid, pid) < 3000}
    assert seen.control == len(held)
    rest = [EXPECTED[m][0] for m in shop if m not in held]
    assert (seen.planned, seen.opted_out, seen.unreachable) == (
        rest.count("planned"), rest.count("opted_out"), rest.count("unreachable"),
    )
    planned = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert (planned.targeted, planned.control, planned.planned, planned.opted_out, planned.unreachable) == (
        seen.targeted, seen.control, seen.planned, seen.opted_out, seen.unreachable,
    )
    assert planned.by_channel == seen.by_channel
    assert {pid for pid, r in (await rows(db, cid)).items() if r["outcome"] == "control"} == {shop[m] for m in held}


async def test_control_comes_first(db: Database, shop: dict[str, str]) -> None:
    cid = await stored(db, draft("全对照", control_pct=100.0))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert (report.targeted, report.control, report.planned) == (11, 11, 0)
    assert {r["channel"] for r in (await rows(db, cid)).values()} == {""}


async def test_campaign_channel_restricts(db: Database, shop: dict[str, str]) -> None:
    cid = await stored(db, draft("公众号", channel="oa"))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    planned = await rows(db, cid)
    got = {m: (planned[pid]["outcome"], planned[pid]["channel"]) for m, pid in shop.items()}
    assert got == {
        "M01": ("unreachable", ""), "M02": ("unreachable", ""), "M03": ("unreachable", ""),
        "M04": ("planned", "oa_custom"), "M05": ("planned", "oa_template"), "M06": ("unreachable", ""),
        "M07": ("unreachable", ""), "M08": ("planned", "oa_template"), "M09": ("opted_out", ""),
        "M10": ("unreachable", ""), "M11": ("unreachable", ""),
    }
    assert (report.planned, report.opted_out, report.unreachable) == (3, 1, 7)
    sms = await plan(db, await stored(db, draft("短信", channel="sms")), now=NOW, today=T, rules=RULES)
    # M01..M03, M06, M09, M10, M11 have phones; M09 (all) and M10 (sms) opted out
    assert (sms.planned, sms.opted_out, sms.unreachable) == (5, 2, 4)


async def test_variants_by_tag(db: Database, shop: dict[str, str]) -> None:
    price = json.loads(to_json(Tag("price_orientation", eq("价格导向"))))
    quality = to_json(Tag("price_orientation", eq("品质导向")))
    variants = [
        {"name": "coupon", "when": price, "content": "30元券"},
        {"name": "new", "when": quality, "content": "新品"},
        {"name": "member", "when": None, "content": "会员礼"},
    ]
    cid = await stored(db, draft("千人千面", variants=json.dumps(variants, ensure_ascii=False)))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    got = {m: (await rows(db, cid))[pid]["variant"] for m, pid in shop.items()}
    assert got["M01"] == "coupon" and got["M02"] == "new"
    assert {m for m, v in got.items() if v == "member"} == set(shop) - {"M01", "M02"}
    assert report.by_variant == {"coupon": 1, "new": 1, "member": 9}
    assert report.planned_by_variant == {"coupon": 1, "new": 1, "member": 6}
    # without a variant for everyone left, the others are not targeted
    only = json.dumps(variants[:2], ensure_ascii=False)
    narrow = await plan(db, await stored(db, draft("窄", variants=only)), now=NOW, today=T, rules=RULES)
    assert (narrow.targeted, narrow.no_variant, narrow.by_variant) == (2, 9, {"coupon": 1, "new": 1})
    # no variants: one variant "default"
    default = await plan(db, await stored(db, draft("默认")), now=NOW, today=T, rules=RULES)
    assert default.by_variant == {"default": 11}


async def test_plan_is_idempotent(db: Database, shop: dict[str, str]) -> None:
    cid = await stored(db, draft("两次", control_pct=20.0))
    first = await plan(db, cid, now=NOW, today=T, rules=RULES)
    before = await rows(db, cid)
    second = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert first.written == 11 and second.written == 0
    assert await rows(db, cid) == before
    assert (second.targeted, second.control, second.planned) == (first.targeted, first.control, first.planned)


# ---------------------------------------------------------------------------------- caps and quotas


async def test_frequency_cap_across_campaigns(db: Database, shop: dict[str, str]) -> None:
    m06 = shop["M06"]  # reachable by sms only
    segment = to_json(Tag("is_member", eq("是")))

    async def outcome(name: str, send_at: datetime) -> str:
        cid = await stored(db, draft(name, segment=segment, send_at=send_at))
        await plan(db, cid, now=NOW, today=T, rules=RULES)
        return str((await rows(db, cid))[m06]["outcome"])

    assert await outcome("A", local(2026, 11, 2, 10)) == "planned"  # day 1
    assert await outcome("B", local(2026, 11, 5, 10)) == "planned"  # 1 other within 7 days
    assert await outcome("C", local(2026, 11, 8, 10)) == "capped"  # A 6 days before, B 3: 2 others
    assert await outcome("D", local(2026, 11, 9, 10)) == "planned"  # A exactly 7 days before: freed
    # a later message counts too: E on 11-03 has A (1 day before) and B (2 days after)
    assert await outcome("E", local(2026, 11, 3, 10)) == "capped"


async def test_cap_counts_sent_messages(db: Database, shop: dict[str, str]) -> None:
    m06 = shop["M06"]
    async with db.transaction() as session:
        # sent at 11-02 10:05 (due 10:00) by another campaign, and a journey message due 11-06 that
        # the dispatcher is sending right now
        await store.record_target(session, 901, 0, m06, channel="sms", outcome="sent",
                                  due_at=local(2026, 11, 2, 10), sent_at=local(2026, 11, 2, 10, 5))
        await store.record_target(session, 902, 0, m06, channel="sms", outcome="sending", due_at=local(2026, 11, 6, 10))
        # neither a failed message nor one of a third campaign sent 8 days earlier counts
        await store.record_target(session, 903, 0, m06, channel="sms", outcome="failed", due_at=local(2026, 11, 7, 10))
        await store.record_target(session, 904, 0, m06, channel="sms", outcome="sent",
                                  due_at=local(2026, 10, 25, 10), sent_at=local(2026, 10, 25, 10))
    cid = await stored(db, draft("已发", send_at=local(2026, 11, 9, 10)))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert (await rows(db, cid))[m06]["outcome"] == "capped"  # sent 6 d 23 h 55 min before + planned
    assert report.capped == 1
    assert_adds_up(report)
    later = await stored(db, draft("已发2", send_at=local(2026, 11, 9, 10, 5)))
    await plan(db, later, now=NOW, today=T, rules=RULES)
    assert (await rows(db, later))[m06]["outcome"] == "planned"  # exactly 7 days after the send


async def test_wecom_quota_falls_back(db: Database, shop: dict[str, str]) -> None:
    m01 = shop["M01"]  # wecom, and a phone
    send = local(2026, 11, 28, 10)  # November: 30 messages a customer
    async with db.transaction() as session:
        # 29 WeCom messages this month, more than 7 days before the send (no frequency cap)
        for k in range(28):
            at = local(2026, 11, 1 + k // 2, 10 + k % 2)
            await store.record_target(session, 1000 + k, 0, m01, channel="wecom", outcome="sent", due_at=at, sent_at=at)
        await store.record_target(session, 1100, 0, m01, channel="wecom", outcome="planned",
                                  due_at=local(2026, 11, 15, 12))
        # October 31 23:59 local is last month; an sms message does not count
        await store.record_target(session, 1101, 0, m01, channel="wecom", outcome="sent",
                                  due_at=local(2026, 10, 31, 23, 59), sent_at=local(2026, 10, 31, 23, 59))
        await store.record_target(session, 1102, 0, m01, channel="sms", outcome="sent",
                                  due_at=local(2026, 11, 16, 10), sent_at=local(2026, 11, 16, 10))
    first = await plan(db, await stored(db, draft("配额1", send_at=send)), now=NOW, today=T, rules=RULES)
    assert first.wecom_quota_exhausted == 0
    async with db.transaction() as session:  # the 30th: November 1, 00:00 local
        await store.record_target(session, 1103, 0, m01, channel="wecom", outcome="sent",
                                  due_at=local(2026, 11, 1, 0, 0), sent_at=local(2026, 11, 1, 0, 0))
    cid = await stored(db, draft("配额2", send_at=local(2026, 11, 28, 11)))
    second = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert (await rows(db, cid))[m01]["channel"] == "sms"
    assert second.wecom_quota_exhausted == 1
    assert second.by_channel["wecom"] == first.by_channel["wecom"] - 1
    assert_adds_up(second)
    # reachable by WeCom only (campaign channel wecom) and quota used up: held back as capped (M02
    # and M03 by the frequency cap: 配额1 and 配额2 are within 7 days; M08, M11 opted out of wecom,
    # M09 of all; the six others unreachable)
    cid = await stored(db, draft("配额3", channel="wecom", send_at=send))
    only = await plan(db, cid, now=NOW, today=T, rules=RULES)
    assert (only.capped, only.wecom_quota_exhausted, only.opted_out, only.planned) == (3, 1, 3, 0)
    assert only.unreachable == 5
    assert (await rows(db, cid))[m01]["outcome"] == "capped"


# ---------------------------------------------------------------------------------- quiet hours


@pytest.mark.parametrize(
    ("send", "due"),
    [
        (local(2026, 11, 2, 20, 59), local(2026, 11, 2, 20, 59)),
        (local(2026, 11, 2, 21, 0), local(2026, 11, 3, 9, 0)),
        (local(2026, 11, 2, 23, 30), local(2026, 11, 3, 9, 0)),
        (local(2026, 11, 3, 2, 0), local(2026, 11, 3, 9, 0)),
        (local(2026, 11, 3, 8, 59), local(2026, 11, 3, 9, 0)),
        (local(2026, 11, 3, 9, 0), local(2026, 11, 3, 9, 0)),
    ],
)
def test_quiet_hours(send: datetime, due: datetime) -> None:
    assert out_of_quiet_hours(send, RULES) == due
    assert out_of_quiet_hours(send.astimezone(UTC), RULES) == due


async def test_quiet_hours_in_plan(db: Database, shop: dict[str, str]) -> None:
    late = await plan(db, await stored(db, draft("晚", send_at=local(2026, 11, 2, 21))), now=NOW, today=T, rules=RULES)
    assert late.due_at == local(2026, 11, 3, 9)
    early = await plan(db, await stored(db, draft("早", send_at=local(2026, 11, 2, 20, 59))), now=NOW, today=T,
                       rules=RULES)
    assert early.due_at == local(2026, 11, 2, 20, 59)
    # a send time already past is now, out of the quiet hours: 22:00 → 09:00 the next day
    past = await plan(db, await stored(db, draft("过", send_at=local(2026, 10, 1, 10))), now=local(2026, 11, 1, 22),
                      today=T, rules=RULES)
    assert past.due_at == local(2026, 11, 2, 9)


# ---------------------------------------------------------------------------------- the control group


async def population(db: Database, n: int, seed: int) -> list[str]:
    """n persons with profiles, written in a shuffled order; every third price-oriented."""
    ids = [f"Q{i:05d}" for i in range(n)]
    order = ids[:]
    random.Random(seed).shuffle(order)
    now = datetime.now(UTC)
    async with db.transaction() as session:
        for k, pid in enumerate(order):
            session.add(Person(person_id=pid, anchor_node_id=k, created_at=now, updated_at=now))
        await session.flush()
        for pid in order:
            orientation = "价格导向" if int(pid[1:]) % 3 == 0 else None
            session.add(PersonProfile(person_id=pid, as_of=T, oa_follower="是", price_orientation=orientation))
    return ids


async def test_control_group_is_stable_and_near_ten_percent(db: Database) -> None:
    n = 2000
    ids = await population(db, n, seed=7)
    cid = await stored(db, draft("对照", control_pct=10.0))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    expected = {pid for pid in ids if hand_bucket(cid, pid) < 1000}
    got = {pid for pid, r in (await rows(db, cid)).items() if r["outcome"] == "control"}
    assert got == expected
    assert report.control == len(expected)
    assert (report.targeted, report.planned) == (n, n - len(expected))
    assert report.by_channel == {"oa_template": n - len(expected)}
    # binomial(2000, 0.1): mean 200, sd 13.4; 4 sd either side
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(len(expected) - 200) < 4 * sd
    # the same persons in a preview of the stored campaign and in a later wave
    again = await preview(db, draft("对照", id=cid, control_pct=10.0), now=NOW, today=T, rules=RULES)
    assert again.control == len(expected)
    # another campaign holds out other persons (a different hash), about as many
    other = await stored(db, draft("对照2", control_pct=10.0))
    await plan(db, other, now=NOW, today=T, rules=RULES)
    other_held = {pid for pid, r in (await rows(db, other)).items() if r["outcome"] == "control"}
    assert other_held == {pid for pid in ids if hand_bucket(other, pid) < 1000}
    assert other_held != got
    # 12.5 %: cut 1250
    pct = await stored(db, draft("对照3", control_pct=12.5))
    assert (await plan(db, pct, now=NOW, today=T, rules=RULES)).control == sum(
        hand_bucket(pct, pid) < 1250 for pid in ids
    )


async def test_waves_only_not_bought(db: Database) -> None:
    ids = await population(db, 200, seed=3)
    waves = [
        {"wave": 0, "after_days": 0, "only_not_bought": False},
        {"wave": 1, "after_days": 3, "only_not_bought": True},
    ]
    cid = await stored(db, draft("波次", control_pct=10.0, waves=json.dumps(waves)))
    await plan(db, cid, now=NOW, today=T, rules=RULES)
    wave0 = await rows(db, cid)
    control = {pid for pid, r in wave0.items() if r["outcome"] == "control"}
    assert control == {pid for pid in ids if hand_bucket(cid, pid) < 1000}
    sent = sorted(pid for pid, r in wave0.items() if r["outcome"] == "planned")[:60]
    async with db.transaction() as session:
        for pid in sent:  # the dispatcher sent 60 of them at 10:01
            await store.record_target(session, cid, 0, pid, channel="oa_template", outcome="sent", due_at=SEND,
                                      sent_at=SEND + timedelta(minutes=1))
        # bought after the send (paid, local naive time), before it, refunded after it
        for k, (pid, at, status) in enumerate([
            (sent[0], datetime(2026, 11, 2, 10, 2), "paid"),
            (sent[1], datetime(2026, 11, 2, 9, 0), "paid"),
            (sent[2], datetime(2026, 11, 3, 12, 0), "refunded"),
            (sorted(control)[0], datetime(2026, 11, 2, 11, 0), "paid"),  # control: after wave-0 due
        ]):
            session.add(Order(order_id=f"W{k}", person_id=pid, channel="pos", paid_at=at, amount_fen=100,
                              status=status))
    now = local(2026, 11, 5, 9, 30)
    report = await plan_wave(db, cid, 1, now=now, today=now.date(), rules=RULES)
    wave1 = await rows(db, cid, 1)
    assert set(wave1) == (set(sent) - {sent[0]}) | (control - {sorted(control)[0]})
    assert {pid for pid, r in wave1.items() if r["outcome"] == "control"} == control - {sorted(control)[0]}
    assert report.due_at == local(2026, 11, 5, 10)
    # wave 0 (sent 11-02 10:01) is one other message within 7 days: not capped
    assert report.planned == len(sent) - 1
    assert_adds_up(report)


async def test_later_waves_are_planned_once_when_due(db: Database) -> None:
    from campaigns.waves import plan_due_waves

    await population(db, 50, seed=5)
    waves = [
        {"wave": 0, "after_days": 0, "only_not_bought": False},
        {"wave": 1, "after_days": 3, "only_not_bought": True},
    ]
    cid = await stored(db, draft("跟进", control_pct=10.0, waves=json.dumps(waves)))
    async with db.transaction() as session:  # confirmed: the job only follows scheduled campaigns
        await session.execute(text("UPDATE campaign SET status = 'scheduled' WHERE id = :c"), {"c": cid})
    before = local(2026, 11, 5, 9, 0)  # wave 0 not planned yet: nothing to follow up
    assert await plan_due_waves(db, now=before, today=before.date(), rules=RULES) == {}
    await plan(db, cid, now=NOW, today=T, rules=RULES)
    wave0 = await rows(db, cid)
    async with db.transaction() as session:
        for pid, r in wave0.items():
            if r["outcome"] == "planned":
                await store.record_target(session, cid, 0, pid, channel="oa_template", outcome="sent", due_at=SEND,
                                          sent_at=SEND + timedelta(minutes=1))
    early = SEND + timedelta(days=3) - timedelta(minutes=1)  # 3 days after the send, less a minute
    assert await plan_due_waves(db, now=early, today=early.date(), rules=RULES) == {}
    due = SEND + timedelta(days=3, minutes=1)
    planned = await plan_due_waves(db, now=due, today=due.date(), rules=RULES)
    sent_or_control = {pid for pid, r in wave0.items() if r["outcome"] in ("planned", "control")}
    assert planned == {(cid, 1): len(sent_or_control)}
    assert set(await rows(db, cid, 1)) == sent_or_control
    assert await plan_due_waves(db, now=due, today=due.date(), rules=RULES) == {}  # once
