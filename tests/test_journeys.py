"""Journeys (campaigns.journeys) on SQLite and PostgreSQL: each trigger at its boundaries, the
welcome's later steps only without a purchase, idempotent re-runs, off journeys, the control
group (this file's own md5), opt-outs, caps across a campaign and a journey, quiet hours, and
the chat commands (roles, preview, confirm). Data are small hand-made rows written directly."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text

from bot.chat.engine import Assistant
from bot.settings import Settings
from bot.simulator.server import TencentSimulator
from campaigns.journeys import JOURNEYS, JourneyRules, run_journeys, switch
from campaigns.plan import PlanRules
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.models import Campaign, Coupon, Event, Guide, Order, OrderItem, Person, PersonProfile
from profile_store.pii import PiiVault
from tests.conftest import TEST_SECRET
from tests.test_campaign_dispatch import Shop, daytime_offset, make_sender

SH = ZoneInfo("Asia/Shanghai")
RULES = JourneyRules(control_pct=0.0)  # 2 per 7 days, quiet 21:00-09:00; no control group unless said
ON_AT = datetime(2026, 10, 1, 8, 0, tzinfo=SH)  # journeys are turned on well before the events


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


def naive(moment: datetime) -> datetime:
    return moment.astimezone(SH).replace(tzinfo=None)


NOW = local(2026, 11, 10, 10)  # a Tuesday, 10:00 local


# ---------------------------------------------------------------------------------- hand-made data


async def profile(db: Database, person: str, *, oa: bool = True, lifecycle: str = "购买",
                  birthday_month: int | None = None) -> None:
    async with db.transaction() as session:
        session.add(Person(person_id=person, anchor_node_id=0))
        session.add(PersonProfile(person_id=person, as_of=date(2026, 11, 1), lifecycle=lifecycle,
                                  oa_follower="是" if oa else None, birthday_month=birthday_month))


async def event(db: Database, person: str, kind: str, at: datetime, **values: Any) -> None:
    key = uuid.uuid4().hex
    async with db.transaction() as session:
        session.add(Event(event_id=key, fact_key=key, person_id=person, type=kind, occurred_at=naive(at), **values))


async def order(db: Database, person: str, at: datetime, sku: str, status: str = "paid") -> None:
    oid = uuid.uuid4().hex
    async with db.transaction() as session:
        session.add(Order(order_id=oid, person_id=person, channel="pos", paid_at=naive(at), amount_fen=1000,
                          status=status))
        session.add(OrderItem(order_id=oid, line_no=1, person_id=person, sku=sku, qty=1, unit_price_fen=1000))


async def turn_on(db: Database, *keys: str, at: datetime = ON_AT) -> None:
    async with db.transaction() as session:
        for key in keys:
            await switch(session, key, on=True, by="test", now=at, rules=RULES)


async def journey_rows(db: Database, key: str) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        cid = (await session.execute(text("SELECT id FROM campaign WHERE name = :n"),
                                     {"n": JOURNEYS[key].name})).scalar_one()
        return await store.targets(session, int(cid), None)


async def by_person(db: Database, key: str) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for r in await journey_rows(db, key):
        found.setdefault(r["person_id"], []).append((r["wave"], r["outcome"]))
    return found


async def mark_sent(db: Database, key: str, at: datetime) -> None:
    """What the sender does to a planned row: sent at `at`."""
    async with db.transaction() as session:
        cid = (await session.execute(text("SELECT id FROM campaign WHERE name = :n"),
                                     {"n": JOURNEYS[key].name})).scalar_one()
        await session.execute(
            text("UPDATE campaign_target SET outcome = 'sent', sent_at = :at WHERE campaign_id = :c"
                 " AND outcome = 'planned'"),
            {"at": at.astimezone(UTC), "c": cid},
        )


def wave(day: date, step: int = 0) -> int:
    return (day.year * 10_000 + day.month * 100 + day.day) * 10 + step


# ---------------------------------------------------------------------------------- off, idempotence


async def test_off_journeys_enter_nobody(db: Database) -> None:
    await profile(db, "p1", birthday_month=11, lifecycle="沉睡")
    await event(db, "p1", "follow", NOW - timedelta(hours=1), channel="oa", appid="wx", openid="o1")
    await event(db, "p1", "add_cart", NOW - timedelta(hours=30), sku="A")
    result = await run_journeys(db, now=NOW, rules=RULES)
    assert set(result) == {s.name for s in JOURNEYS.values()}
    assert all(n == 0 for n in result.values())
    async with db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM campaign_target"))).scalar_one() == 0
        kinds = (await session.execute(text("SELECT DISTINCT kind, status FROM campaign"))).all()
    assert [tuple(k) for k in kinds] == [("journey", "paused")]


# ---------------------------------------------------------------------------------- welcome


async def test_welcome_steps_only_without_purchase(db: Database) -> None:
    await turn_on(db, "welcome")
    for p in ("p1", "p2", "p3"):
        await profile(db, p)
    day = date(2026, 11, 1)
    await event(db, "p1", "follow", local(2026, 11, 1, 10), channel="oa", appid="wx", openid="o1")
    await event(db, "p2", "follow", local(2026, 11, 1, 10, 30), channel="oa", appid="wx", openid="o2")
    await event(db, "p3", "follow", local(2026, 11, 1, 10, 40), channel="oa", appid="wx", openid="o3")
    await order(db, "p2", local(2026, 11, 1, 15), "ANY")  # bought after the follow: no reminders
    await order(db, "p3", local(2026, 10, 20, 15), "ANY")  # bought before the follow: still reminded
    rules = JourneyRules(plan=PlanRules(cap_messages=5), control_pct=0.0)
    first = await run_journeys(db, now=local(2026, 11, 1, 11), rules=rules)
    assert first[JOURNEYS["welcome"].name] == 3
    assert await run_journeys(db, now=local(2026, 11, 1, 11, 5), rules=rules) == {
        s.name: 0 for s in JOURNEYS.values()}  # re-run: nothing twice
    await mark_sent(db, "welcome", local(2026, 11, 1, 11, 10))
    # 23 h 59 after p1's follow: no step 1 yet
    await run_journeys(db, now=local(2026, 11, 2, 9, 59), rules=rules)
    assert {p: len(r) for p, r in (await by_person(db, "welcome")).items()} == {"p1": 1, "p2": 1, "p3": 1}
    await run_journeys(db, now=local(2026, 11, 2, 10, 50), rules=rules)
    rows = await by_person(db, "welcome")
    assert rows["p1"] == [(wave(day, 0), "sent"), (wave(day, 1), "planned")]
    assert rows["p2"] == [(wave(day, 0), "sent")]
    assert rows["p3"] == [(wave(day, 0), "sent"), (wave(day, 1), "planned")]
    # p3 buys before T+3: step 2 only for p1
    await order(db, "p3", local(2026, 11, 3, 12), "ANY")
    await mark_sent(db, "welcome", local(2026, 11, 2, 11))
    await run_journeys(db, now=local(2026, 11, 4, 9, 0), rules=rules)  # p1's T+3 is 10:00
    assert len((await by_person(db, "welcome"))["p1"]) == 2
    await run_journeys(db, now=local(2026, 11, 4, 11, 0), rules=rules)
    rows = await by_person(db, "welcome")
    assert rows["p1"] == [(wave(day, 0), "sent"), (wave(day, 1), "sent"), (wave(day, 2), "planned")]
    assert rows["p3"] == [(wave(day, 0), "sent"), (wave(day, 1), "sent")]
    assert rows["p2"] == [(wave(day, 0), "sent")]
    # a second follow a month later is a new entry
    await event(db, "p2", "follow", local(2026, 12, 5, 10), channel="oa", appid="wx", openid="o2")
    await run_journeys(db, now=local(2026, 12, 5, 10, 30), rules=rules)
    assert (await by_person(db, "welcome"))["p2"] == [(wave(day, 0), "sent"), (wave(date(2026, 12, 5)), "planned")]


async def sent_campaign_messages(db: Database, person: str, *at: datetime) -> None:
    """Marketing messages a campaign sent `person` (one wave each)."""
    async with db.transaction() as session:
        cid = await store.create_campaign(session, Campaign(name=f"活动{uuid.uuid4().hex[:6]}", segment="{}",
                                                            status="running"))
        for wave_, moment in enumerate(at):
            await store.record_target(session, cid, wave_, person, channel="oa_template", outcome="sent",
                                      sent_at=moment)


async def test_the_welcome_is_a_service_message_its_reminders_are_marketing(db: Database) -> None:
    """Default cap, 2 marketing messages per 7 days. The welcome answers the follow: it is capped
    by nothing and counts for nothing; the reminders are capped and count. p1: no other message;
    p2: one the day before the follow; p3: two (the cap) in the days before, within 7 days of
    both reminders."""
    await turn_on(db, "welcome")
    follow = local(2026, 11, 1, 10)
    for i, p in enumerate(("p1", "p2", "p3"), start=1):
        await profile(db, p)
        await event(db, p, "follow", follow, channel="oa", appid="wx", openid=f"o{i}")
    await sent_campaign_messages(db, "p2", follow - timedelta(days=1))
    await sent_campaign_messages(db, "p3", follow - timedelta(days=3), follow - timedelta(days=1))
    await run_journeys(db, now=local(2026, 11, 1, 11), rules=RULES)
    await mark_sent(db, "welcome", local(2026, 11, 1, 11))
    await run_journeys(db, now=local(2026, 11, 2, 11), rules=RULES)
    await mark_sent(db, "welcome", local(2026, 11, 2, 11))
    await run_journeys(db, now=local(2026, 11, 4, 11), rules=RULES)
    day = date(2026, 11, 1)
    assert await by_person(db, "welcome") == {
        # welcome + two reminders: the welcome counts for nothing
        "p1": [(wave(day, 0), "sent"), (wave(day, 1), "sent"), (wave(day, 2), "planned")],
        # 1 campaign message + reminder 1 = 2 by reminder 2 (3 days after the follow, 4 after it)
        "p2": [(wave(day, 0), "sent"), (wave(day, 1), "sent"), (wave(day, 2), "capped")],
        # at the cap already: the welcome alone
        "p3": [(wave(day, 0), "sent"), (wave(day, 1), "capped"), (wave(day, 2), "capped")],
    }


async def test_the_8th_day_frees_the_reminder(db: Database) -> None:
    """The cap's window at its edge, for a reminder: a marketing message exactly 7 days before
    it no longer counts (|t − due| < 7 days), one a minute later does."""
    await turn_on(db, "welcome")
    follow = local(2026, 11, 8, 10)
    for i, p in enumerate(("p1", "p2"), start=1):
        await profile(db, p)
        await event(db, p, "follow", follow, channel="oa", appid="wx", openid=f"o{i}")
    reminder = local(2026, 11, 9, 11)  # reminder 1's run, due at once
    await sent_campaign_messages(db, "p1", reminder - timedelta(days=7), reminder - timedelta(days=1))
    await sent_campaign_messages(db, "p2", reminder - timedelta(days=7) + timedelta(minutes=1),
                                 reminder - timedelta(days=1))
    await run_journeys(db, now=local(2026, 11, 8, 11), rules=RULES)
    await mark_sent(db, "welcome", local(2026, 11, 8, 11))
    await run_journeys(db, now=reminder, rules=RULES)
    day = date(2026, 11, 8)
    rows = await by_person(db, "welcome")
    assert rows["p1"] == [(wave(day, 0), "sent"), (wave(day, 1), "planned")]  # 1 message counts
    assert rows["p2"] == [(wave(day, 0), "sent"), (wave(day, 1), "capped")]  # 2 count


async def test_opting_out_stops_the_welcome_and_its_reminders(db: Database) -> None:
    """An opt-out of the only channel reaching the person (the OA) stops the welcome, hence the
    reminders; an opt-out of another channel stops nothing."""
    await turn_on(db, "welcome")
    follow = local(2026, 11, 1, 10)
    for i, p in enumerate(("p1", "p2", "p3"), start=1):
        await profile(db, p)
        await event(db, p, "follow", follow, channel="oa", appid="wx", openid=f"o{i}")
    async with db.transaction() as session:
        await store.opt_out(session, "p1", "oa", "退订")
        await store.opt_out(session, "p2", "all", "TD")
        await store.opt_out(session, "p3", "sms", "TD")
    for moment in (local(2026, 11, 1, 11), local(2026, 11, 2, 11), local(2026, 11, 4, 11)):
        await run_journeys(db, now=moment, rules=RULES)
        await mark_sent(db, "welcome", moment)
    day = date(2026, 11, 1)
    assert await by_person(db, "welcome") == {
        "p1": [(wave(day, 0), "opted_out")],
        "p2": [(wave(day, 0), "opted_out")],
        "p3": [(wave(day, 0), "sent"), (wave(day, 1), "sent"), (wave(day, 2), "sent")],
    }


async def test_a_campaign_counts_the_reminders_not_the_welcome(db: Database) -> None:
    """Caps across a journey and a campaign planned afterwards: the welcome and one reminder
    leave room for one campaign message, not two."""
    from campaigns.plan import plan
    from nlp.segment import Everyone, to_json

    await turn_on(db, "welcome")
    follow = local(2026, 11, 1, 10)
    await profile(db, "p1")
    await event(db, "p1", "follow", follow, channel="oa", appid="wx", openid="o1")
    await run_journeys(db, now=local(2026, 11, 1, 11), rules=RULES)
    await mark_sent(db, "welcome", local(2026, 11, 1, 11))
    await run_journeys(db, now=local(2026, 11, 2, 11), rules=RULES)  # reminder 1 planned
    outcomes = []
    for name in ("周末活动", "周中活动"):
        async with db.transaction() as session:
            cid = await store.create_campaign(session, Campaign(
                name=name, segment=to_json(Everyone()), control_pct=0.0, status="scheduled",
                send_at=local(2026, 11, 3, 10)))
        await plan(db, cid, now=local(2026, 11, 2, 12), today=date(2026, 11, 2), rules=RULES.plan)
        async with db.transaction() as session:
            outcomes += [r["outcome"] for r in await store.targets(session, cid, 0)]
    assert outcomes == ["planned", "capped"]


async def test_follow_before_turned_on_is_not_welcomed(db: Database) -> None:
    await profile(db, "p1")
    await event(db, "p1", "follow", NOW - timedelta(hours=2), channel="oa", appid="wx", openid="o1")
    await turn_on(db, "welcome", at=NOW - timedelta(hours=1))
    assert (await run_journeys(db, now=NOW, rules=RULES))[JOURNEYS["welcome"].name] == 0


# ---------------------------------------------------------------------------------- cart


async def test_cart_boundaries(db: Database) -> None:
    await turn_on(db, "cart")
    for p in ("p1", "p2", "p3", "p4", "p5"):
        await profile(db, p)
    await event(db, "p1", "add_cart", NOW - timedelta(hours=23), sku="A")  # not yet
    await event(db, "p2", "add_cart", NOW - timedelta(hours=25), sku="A")  # reminded
    await event(db, "p3", "add_cart", NOW - timedelta(hours=25), sku="A")
    await order(db, "p3", NOW - timedelta(hours=2), "A")  # bought that sku: cancelled
    await event(db, "p4", "add_cart", NOW - timedelta(hours=25), sku="A")
    await order(db, "p4", NOW - timedelta(hours=2), "B")  # another sku: still reminded
    await event(db, "p5", "add_cart", NOW - timedelta(hours=25), sku="A")
    await order(db, "p5", NOW - timedelta(hours=2), "A", status="refunded")  # not paid: still reminded
    result = await run_journeys(db, now=NOW, rules=RULES)
    assert result[JOURNEYS["cart"].name] == 3
    rows = await by_person(db, "cart")
    yesterday = (NOW - timedelta(hours=25)).date()
    assert rows == {p: [(wave(yesterday), "planned")] for p in ("p2", "p4", "p5")}
    assert (await run_journeys(db, now=NOW, rules=RULES))[JOURNEYS["cart"].name] == 0
    # two hours later p1's add_cart is 25 h old
    await run_journeys(db, now=NOW + timedelta(hours=2), rules=RULES)
    assert (await by_person(db, "cart"))["p1"] == [(wave((NOW - timedelta(hours=23)).date()), "planned")]
    # p2 adds to cart again a month later: a second entry
    later = NOW + timedelta(days=30)
    await event(db, "p2", "add_cart", later - timedelta(hours=26), sku="C")
    await run_journeys(db, now=later, rules=RULES)
    assert [w for w, _ in (await by_person(db, "cart"))["p2"]] == [
        wave(yesterday), wave((later - timedelta(hours=26)).date())]


# ---------------------------------------------------------------------------------- coupon


async def test_coupon_expiring_in_three_days(db: Database) -> None:
    await turn_on(db, "coupon")
    async with db.transaction() as session:
        session.add(Coupon(card_id="C7", name="7天券", valid_days=7))
        session.add(Coupon(card_id="C0", name="长期券", valid_days=0))
    for p in ("p1", "p2", "p3", "p4", "p5"):
        await profile(db, p)
    # NOW is 2026-11-10: gotten 11-06 + 7 → valid through 11-13, in 3 days; 11-07 → in 4 days
    await event(db, "p1", "coupon_get", local(2026, 11, 6, 12), card_id="C7", coupon_code="K1")
    await event(db, "p2", "coupon_get", local(2026, 11, 7, 12), card_id="C7", coupon_code="K2")
    await event(db, "p3", "coupon_get", local(2026, 11, 6, 12), card_id="C7", coupon_code="K3")
    await event(db, "p3", "coupon_consume", local(2026, 11, 8, 12), card_id="C7", coupon_code="K3")
    await event(db, "p4", "coupon_get", local(2026, 11, 6, 12), card_id="C7", coupon_code="K4")
    await event(db, "p4", "coupon_delete", local(2026, 11, 8, 12), card_id="C7", coupon_code="K4")
    await event(db, "p5", "coupon_get", local(2026, 11, 6, 12), card_id="C0", coupon_code="K5")  # never expires
    assert (await run_journeys(db, now=NOW, rules=RULES))[JOURNEYS["coupon"].name] == 1
    assert await by_person(db, "coupon") == {"p1": [(wave(date(2026, 11, 13)), "planned")]}
    # the next day p2's coupon is 3 days from expiry; p1 is not reminded twice
    await run_journeys(db, now=NOW + timedelta(days=1), rules=RULES)
    assert await by_person(db, "coupon") == {
        "p1": [(wave(date(2026, 11, 13)), "planned")], "p2": [(wave(date(2026, 11, 14)), "planned")]}


# ---------------------------------------------------------------------------------- birthday, dormant


async def test_birthday_once_a_year(db: Database) -> None:
    await turn_on(db, "birthday")
    await profile(db, "p1", birthday_month=11)
    await profile(db, "p2", birthday_month=12)
    await profile(db, "p3")
    assert (await run_journeys(db, now=NOW, rules=RULES))[JOURNEYS["birthday"].name] == 1
    assert (await run_journeys(db, now=local(2026, 11, 20, 10), rules=RULES))[JOURNEYS["birthday"].name] == 0
    await run_journeys(db, now=local(2026, 12, 1, 10), rules=RULES)
    await run_journeys(db, now=local(2027, 11, 1, 10), rules=RULES)
    assert await by_person(db, "birthday") == {
        "p1": [(20260, "planned"), (20270, "planned")], "p2": [(20260, "planned")]}


async def test_dormant_once_per_90_days(db: Database) -> None:
    await turn_on(db, "dormant")
    await profile(db, "p1", lifecycle="沉睡")
    await profile(db, "p2", lifecycle="流失")
    assert (await run_journeys(db, now=NOW, rules=RULES))[JOURNEYS["dormant"].name] == 1
    assert (await run_journeys(db, now=NOW + timedelta(days=89), rules=RULES))[JOURNEYS["dormant"].name] == 0
    assert (await run_journeys(db, now=NOW + timedelta(days=90, hours=1), rules=RULES))[
        JOURNEYS["dormant"].name] == 1
    assert [w for w, _ in (await by_person(db, "dormant"))["p1"]] == [
        wave(NOW.date()), wave((NOW + timedelta(days=90, hours=1)).date())]


# ---------------------------------------------------------------------------------- protection


def hand_bucket(campaign_id: int, person_id: str) -> int:
    return int(hashlib.md5(f"{campaign_id}:{person_id}".encode()).hexdigest()[:8], 16) % 10_000


async def test_control_group_by_stable_hash(db: Database) -> None:
    rules = JourneyRules(control_pct=10.0)
    async with db.transaction() as session:
        await switch(session, "birthday", on=True, by="test", now=ON_AT, rules=rules)
        for i in range(120):
            session.add(PersonProfile(person_id=f"q{i:03d}", as_of=date(2026, 11, 1), oa_follower="是",
                                      birthday_month=11))
    await run_journeys(db, now=NOW, rules=rules)
    rows = await journey_rows(db, "birthday")
    async with db.transaction() as session:
        cid = int((await session.execute(text("SELECT id FROM campaign WHERE name = :n"),
                                         {"n": JOURNEYS["birthday"].name})).scalar_one())
    expected = {f"q{i:03d}" for i in range(120) if hand_bucket(cid, f"q{i:03d}") < 1000}
    assert expected  # 120 persons at 10 %: some are held out
    assert {r["person_id"] for r in rows if r["outcome"] == "control"} == expected
    assert {r["outcome"] for r in rows if r["person_id"] not in expected} == {"planned"}
    # measured like a campaign: the sent against the held-out
    from campaigns.measure import effect

    await mark_sent(db, "birthday", NOW + timedelta(minutes=5))
    await order(db, "q000", NOW + timedelta(days=1), "ANY")
    measured = await effect(db, JOURNEYS["birthday"].name, today=(NOW + timedelta(days=2)).date())
    assert (measured.total.targeted, measured.total.held_out, measured.total.sent) == (
        120, len(expected), 120 - len(expected))
    assert [w.key for w in measured.waves] == ["20260"]


async def test_opt_out_unreachable_caps_and_quiet_hours(db: Database) -> None:
    await turn_on(db, "birthday")
    for p in ("p1", "p2", "p3", "p4", "p5"):
        await profile(db, p, birthday_month=11, oa=p != "p3")
    async with db.transaction() as session:
        await store.opt_out(session, "p1", "oa", "退订")
        await store.opt_out(session, "p2", "all", "TD")
        # a campaign sent p4 two messages this week, p5 one
        campaign = Campaign(name="双11", segment="{}", status="running")
        cid = await store.create_campaign(session, campaign)
        for wave_, days in ((0, 1), (1, 3)):
            await store.record_target(session, cid, wave_, "p4", channel="oa_template", outcome="sent",
                                      sent_at=NOW - timedelta(days=days))
        await store.record_target(session, cid, 0, "p5", channel="oa_template", outcome="sent",
                                  sent_at=NOW - timedelta(days=1))
    late = local(2026, 11, 10, 22, 30)  # quiet hours: due the next morning at 09:00
    await run_journeys(db, now=late, rules=RULES)
    rows = {r["person_id"]: r for r in await journey_rows(db, "birthday")}
    assert {p: r["outcome"] for p, r in rows.items()} == {
        "p1": "opted_out", "p2": "opted_out", "p3": "unreachable", "p4": "capped", "p5": "planned"}
    assert rows["p5"]["channel"] == "oa_template"
    assert rows["p5"]["due_at"] == local(2026, 11, 11, 9).astimezone(UTC)


async def test_cap_shared_with_a_campaign_planned_later(db: Database) -> None:
    """A journey's planned rows count for a campaign planned afterwards (the planner's cap)."""
    from campaigns.plan import plan
    from nlp.segment import Tag, eq, to_json

    await turn_on(db, "birthday", "dormant")
    await profile(db, "p1", birthday_month=11, lifecycle="沉睡")
    await profile(db, "p2", lifecycle="沉睡")
    await run_journeys(db, now=NOW, rules=RULES)  # p1: two journey messages; p2: one
    async with db.transaction() as session:
        cid = await store.create_campaign(session, Campaign(
            name="周末活动", segment=to_json(Tag("lifecycle", eq("沉睡"))), control_pct=0.0, status="scheduled",
            send_at=NOW + timedelta(days=1)))
    await plan(db, cid, now=NOW, today=NOW.date(), rules=RULES.plan)
    async with db.transaction() as session:
        outcomes = {r["person_id"]: r["outcome"] for r in await store.targets(session, cid, 0)}
    assert outcomes == {"p1": "capped", "p2": "planned"}


async def test_turning_off_ends_waiting_rows(db: Database) -> None:
    await turn_on(db, "birthday")
    await profile(db, "p1", birthday_month=11)
    await run_journeys(db, now=NOW, rules=RULES)
    async with db.transaction() as session:
        changed, ended = await switch(session, "birthday", on=False, by="test", now=NOW, rules=RULES)
    assert (changed, ended) == (True, 1)
    assert await by_person(db, "birthday") == {"p1": [(20260, "expired")]}


# ---------------------------------------------------------------------------------- chat


def assistant(db: Database, url: str, tmp_path: Path) -> Assistant:
    settings = Settings(DATABASE_URL=url, QIANMIAN_SECRET_KEY=TEST_SECRET,
                        QIANMIAN_MEDIA_DIR=str(tmp_path / "media"))  # type: ignore[call-arg]
    return Assistant(db, IdentityGraph(PiiVault(TEST_SECRET)), settings, None)


async def test_chat_journey_commands(db: Database, db_url: str, tmp_path: Path) -> None:
    async with db.transaction() as session:
        session.add(Guide(guide_id="mk", name="市场", role="marketer"))
        session.add(Guide(guide_id="g1", name="导购", role="guide"))
    bot = assistant(db, db_url, tmp_path)
    now = NOW.astimezone(UTC)

    async def say(user: str, words: str) -> Any:
        return await bot.answer(user, words, now=now)

    refused = await say("g1", "打开新粉欢迎旅程")
    assert refused.outcome == "refused"
    listed = await say("mk", "旅程列表")
    assert listed.outcome == "done"
    assert all(f"{s.name}：关闭" in listed.text for s in JOURNEYS.values())
    preview = await say("mk", "打开新粉欢迎旅程")
    assert preview.outcome == "preview" and "新粉欢迎旅程" in preview.text
    async with db.transaction() as session:
        status = (await session.execute(text("SELECT status FROM campaign WHERE name = '新粉欢迎旅程'"))).scalar_one()
    assert status == "paused"  # not before 确认
    done = await say("mk", "确认")
    assert done.outcome == "done"
    preview = await say("mk", "开启加购提醒")
    assert preview.outcome == "preview"
    assert (await say("mk", "取消")).outcome == "done"
    async with db.transaction() as session:
        states = dict((await session.execute(text("SELECT name, status FROM campaign"))).all())
    assert states["新粉欢迎旅程"] == "running" and states["加购提醒旅程"] == "paused"
    assert (await say("mk", "打开新粉欢迎旅程")).outcome == "refused"  # already on
    assert (await say("mk", "设置新粉欢迎旅程的内容为“欢迎，送您新人券！”")).outcome == "preview"
    assert (await say("mk", "确认")).outcome == "done"
    assert (await say("mk", "设置新粉欢迎旅程第2步的内容为“明天记得用券。”")).outcome == "preview"
    assert (await say("mk", "确认")).outcome == "done"
    listed = await say("mk", "旅程列表")
    assert "新粉欢迎旅程：开启" in listed.text
    assert "第1步：欢迎，送您新人券！" in listed.text and "第2步：明天记得用券。" in listed.text
    assert (await say("mk", "关闭新粉欢迎旅程")).outcome == "preview"
    assert (await say("mk", "确认")).outcome == "done"
    async with db.transaction() as session:
        status = (await session.execute(text("SELECT status FROM campaign WHERE name = '新粉欢迎旅程'"))).scalar_one()
    assert status == "paused"


# ---------------------------------------------------------------------------------- the sender's re-check


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.advance(daytime_offset().total_seconds())
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_sender_sends_journey_rows_and_rechecks_the_cap(
    db: Database, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    """Journey rows go out through the campaign sender with their step's content; a person who
    reached the cap through a campaign after the journey planned them is held back at the send."""

    def clock() -> datetime:
        return datetime.fromtimestamp(sim.clock.now(), UTC)

    now = clock()
    shop = Shop(db, PiiVault(TEST_SECRET), sim)
    month = now.astimezone(SH).month
    for p in ("s1", "s2"):
        await profile(db, p, oa=False, birthday_month=month)
    await shop.persons([{"person": "s1", "phone": "13800000001"}, {"person": "s2", "phone": "13800000002"}])
    await turn_on(db, "birthday", at=now - timedelta(days=1))
    await run_journeys(db, now=now, rules=RULES)
    assert {p: r[0][1] for p, r in (await by_person(db, "birthday")).items()} == {"s1": "planned", "s2": "planned"}
    # meanwhile a campaign sent s1 two messages (e.g. planned before the journey existed)
    cid = await shop.campaign("双11")
    await shop.targets(cid, [("s1", "sms", "", "A")], due=now - timedelta(days=2), wave=0, outcome="sent",
                       sent_at=now - timedelta(days=2))
    await shop.targets(cid, [("s1", "sms", "", "A")], due=now - timedelta(hours=1), wave=1, outcome="sent",
                       sent_at=now - timedelta(hours=1))
    sender = make_sender(db, sim, http, clock)
    await sender.run_once()
    rows = await by_person(db, "birthday")
    assert rows["s1"][0][1] == "capped" and rows["s2"][0][1] == "sent"
    assert [(m.phone, m.text) for m in sim.sms.messages] == [("13800000002", JOURNEYS["birthday"].steps[0])]


async def test_two_processes_run_at_once(db: Database, db_url: str) -> None:
    """Two runs at the same moment (two `serve` processes): each entry is written once."""
    import asyncio

    await turn_on(db, "birthday", "dormant")
    for i in range(30):
        await profile(db, f"r{i:02d}", birthday_month=11, lifecycle="沉睡" if i % 2 else "购买")
    other = Database(db_url)
    try:
        first, second = await asyncio.gather(
            run_journeys(db, now=NOW, rules=RULES), run_journeys(other, now=NOW, rules=RULES))
    finally:
        await other.dispose()
    names = (JOURNEYS["birthday"].name, JOURNEYS["dormant"].name)
    assert [first[n] + second[n] for n in names] == [30, 15]
    assert len(await journey_rows(db, "birthday")) == 30 and len(await journey_rows(db, "dormant")) == 15


async def test_the_sender_sends_the_welcome_past_the_cap(
    db: Database, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    """At the send too: s1, at the cap through a campaign, gets the welcome and no reminder; s2, a
    new follower with no other message, gets the welcome and both reminders (3 in 3 days)."""

    def clock() -> datetime:
        return datetime.fromtimestamp(sim.clock.now(), UTC)

    now = clock()
    shop = Shop(db, PiiVault(TEST_SECRET), sim)
    for p in ("s1", "s2"):
        await profile(db, p, oa=False)
        await event(db, p, "follow", now - timedelta(minutes=5), channel="oa", appid="wx", openid=f"o{p}")
    await shop.persons([{"person": "s1", "phone": "13800000001"}, {"person": "s2", "phone": "13800000002"}])
    await turn_on(db, "welcome", at=now - timedelta(days=1))
    cid = await shop.campaign("双11")
    for wave_, ago in ((0, timedelta(days=2)), (1, timedelta(hours=1))):
        await shop.targets(cid, [("s1", "sms", "", "A")], due=now - ago, wave=wave_, outcome="sent",
                           sent_at=now - ago)
    sender = make_sender(db, sim, http, clock)
    for advance in (timedelta(0), timedelta(days=1, hours=1), timedelta(days=2)):
        sim.advance(advance.total_seconds())
        await run_journeys(db, now=clock(), rules=RULES)
        await sender.run_once()
    steps = JOURNEYS["welcome"].steps
    got = [(m.phone, m.text) for m in sim.sms.messages]
    assert sorted(got) == sorted([
        ("13800000001", steps[0]), ("13800000002", steps[0]), ("13800000002", steps[1]), ("13800000002", steps[2])])
    assert [o for _, o in (await by_person(db, "welcome"))["s1"]] == ["sent", "capped", "capped"]
