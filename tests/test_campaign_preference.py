"""The planner reaches a person through their preferred lane (tags.md 偏好渠道), at its boundaries.

Each customer below is written with what reaches them (guide, official account with or without
an open customer-service window, phone) and what they opted out of; the expected channel is
worked out by `expected_channel`, a plain transcription of the rule, never by the planner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from campaigns.plan import PlanReport, PlanRules, plan, preview
from nlp.segment import Everyone, to_json
from profile_store import campaigns as store
from profile_store.db import Database
from profile_store.models import Campaign
from profile_store.tagging.refresh import refresh_all
from tests.tag_kit import Retailer, T, person_of

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, 10, tzinfo=SH)
SEND = datetime(2026, 11, 2, 10, tzinfo=SH)
RULES = PlanRules()
ORDER_CHANNEL = {"门店": "pos", "小程序": "miniapp", "电商": "ecom", "公众号商城": "oa_mall"}


@dataclass(frozen=True)
class Customer:
    member: str
    prefers: str | None  # the 偏好渠道 their orders give (None: no order)
    guide: bool = False
    follower: bool = False
    wrote: bool = False  # wrote to the OA 47 h before the send: the customer-service window is open
    phone: bool = False
    opted: tuple[str, ...] = ()  # opt-out channels


CUSTOMERS = (
    Customer("M01", "门店", guide=True, follower=True, phone=True),  # store buyer → guide
    Customer("M02", "小程序", guide=True, follower=True, phone=True),  # mini-program → OA template
    Customer("M03", "小程序", guide=True, follower=True, wrote=True, phone=True),  # → OA customer service
    Customer("M04", "电商", guide=True, follower=True, phone=True),  # e-shop → SMS
    Customer("M05", "电商", guide=True, follower=True),  # no phone: SMS unreachable → fixed order (wecom)
    Customer("M06", "电商", guide=True, phone=True, opted=("sms",)),  # SMS opted out → next reachable
    Customer("M07", "公众号商城", follower=True, phone=True, opted=("oa",)),  # OA opted out → SMS
    Customer("M08", None, guide=True, follower=True, phone=True),  # no preference → fixed order
    Customer("M09", None, follower=True, phone=True),  # no preference, no guide → OA template
    Customer("M10", "门店", follower=True, phone=True),  # no guide → fixed order: OA first
    Customer("M11", "小程序", phone=True, opted=("all",)),  # opted out of everything
    Customer("M12", "门店"),  # nothing reaches them
    Customer("M13", "公众号商城", guide=True, wrote=False, follower=False, phone=True),  # no OA → wecom
    Customer("M14", "门店", guide=True, follower=True, opted=("wecom",)),  # guide opted out → OA
)


def expected_channel(c: Customer, allowed: tuple[str, ...] = ("wecom", "oa", "sms")) -> tuple[str, str]:
    """(outcome, channel) by the rule, written out plainly."""
    if "all" in c.opted:
        return "opted_out", ""
    lanes: dict[str, list[str]] = {
        "wecom": ["wecom"] if c.guide and "wecom" in allowed else [],
        "oa": ([
            *(["oa_custom"] if c.wrote and c.follower else []), *(["oa_template"] if c.follower else []),
        ] if "oa" in allowed else []),
        "sms": ["sms"] if c.phone and "sms" in allowed else [],
    }
    reachable = [lane for lane, chans in lanes.items() if chans]
    if not reachable:
        return "unreachable", ""
    open_lanes = [lane for lane in reachable if lane not in c.opted]
    if not open_lanes:
        return "opted_out", ""
    preferred = {"门店": "wecom", "小程序": "oa", "公众号商城": "oa", "电商": "sms"}.get(c.prefers or "")
    lane = preferred if preferred in open_lanes else next(x for x in ("wecom", "oa", "sms") if x in open_lanes)
    return "planned", lanes[lane][0]


def retailer() -> Retailer:
    r = Retailer()
    r.guide("G1", "王导购")
    oa = {"channel": "oa", "appid": "wxoa"}
    for i, c in enumerate(CUSTOMERS):
        r.member(c.member, phone=f"1390013{i:04d}" if c.phone else "")
        if c.prefers:
            # two orders in the preferred channel, one elsewhere: the preference is unambiguous
            other = "miniapp" if c.prefers == "门店" else "pos"
            r.order(c.member, "2026-09-01 12:00:00", "100", channel=ORDER_CHANNEL[c.prefers])
            r.order(c.member, "2026-09-20 12:00:00", "100", channel=ORDER_CHANNEL[c.prefers])
            r.order(c.member, "2026-10-01 12:00:00", "100", channel=other)
        if c.guide:
            r.event(c.member, "add_contact", "2026-10-01 10:00:00", external_userid=f"w{c.member}", guide_id="G1",
                    channel="wecom")
        if c.follower:
            r.event(c.member, "follow", "2026-06-01 10:00:00", openid=f"o{c.member}", **oa)
        if c.wrote:
            r.event(c.member, "message", "2026-10-31 11:00:00", openid=f"o{c.member}", **oa)
    return r


@pytest.fixture
async def shop(db: Database, tmp_path: Path) -> dict[str, str]:
    await retailer().load(db, tmp_path / "shop")
    await refresh_all(db, T)
    ids = {c.member: await person_of(db, c.member) for c in CUSTOMERS}
    async with db.transaction() as session:
        for c in CUSTOMERS:
            for channel in c.opted:
                await store.opt_out(session, ids[c.member], channel, "TD")
        tags = dict((await session.execute(text("SELECT person_id, preferred_channel FROM profile"))).all())
    # the premise: each customer's 偏好渠道 is the one written above
    assert {c.member: tags.get(ids[c.member]) for c in CUSTOMERS} == {c.member: c.prefers for c in CUSTOMERS}
    return ids


def draft(name: str, **values: Any) -> Campaign:
    values.setdefault("segment", to_json(Everyone()))
    values.setdefault("send_at", SEND)
    values.setdefault("control_pct", 0.0)
    return Campaign(name=name, **values)


async def planned_rows(db: Database, name: str, **values: Any) -> tuple[PlanReport, dict[str, tuple[str, str]]]:
    async with db.transaction() as session:
        cid = await store.create_campaign(session, draft(name, **values))
    report = await plan(db, cid, now=NOW, today=T, rules=RULES)
    async with db.transaction() as session:
        found = {r["person_id"]: (r["outcome"], r["channel"]) for r in await store.targets(session, cid, 0)}
    return report, found


def adds_up(report: PlanReport) -> None:
    assert report.targeted == (
        report.planned + report.capped + report.opted_out + report.control + report.unreachable
    )
    assert sum(report.by_channel.values()) == report.planned


async def test_preferred_lane_then_fixed_order(db: Database, shop: dict[str, str]) -> None:
    report, found = await planned_rows(db, "偏好")
    got = {c.member: found[shop[c.member]] for c in CUSTOMERS}
    want = {c.member: expected_channel(c) for c in CUSTOMERS}
    assert got == want
    # the boundaries spelled out too, so the rule above cannot drift unnoticed
    assert (got["M01"], got["M02"], got["M03"], got["M04"]) == (
        ("planned", "wecom"), ("planned", "oa_template"), ("planned", "oa_custom"), ("planned", "sms"))
    assert got["M05"] == ("planned", "wecom") and got["M06"] == ("planned", "wecom")
    assert got["M07"] == ("planned", "sms") and got["M10"] == ("planned", "oa_template")
    assert got["M14"] == ("planned", "oa_template")
    adds_up(report)
    outcomes = [o for o, _ in want.values()]
    assert (report.targeted, report.planned, report.opted_out, report.unreachable) == (
        len(CUSTOMERS), outcomes.count("planned"), outcomes.count("opted_out"), outcomes.count("unreachable"))
    by_channel: dict[str, int] = {}
    for outcome, channel in want.values():
        if outcome == "planned":
            by_channel[channel] = by_channel.get(channel, 0) + 1
    assert report.by_channel == by_channel


@pytest.mark.parametrize(("channel", "allowed"), [("wecom", ("wecom",)), ("oa", ("oa",)), ("sms", ("sms",))])
async def test_a_fixed_channel_is_kept(db: Database, shop: dict[str, str], channel: str, allowed: tuple[str, ...]
                                       ) -> None:
    report, found = await planned_rows(db, f"只用{channel}", channel=channel)
    assert {c.member: found[shop[c.member]] for c in CUSTOMERS} == {
        c.member: expected_channel(c, allowed) for c in CUSTOMERS
    }
    adds_up(report)


async def test_preview_counts_add_up_with_control(db: Database, shop: dict[str, str]) -> None:
    campaign = draft("偏好对照", control_pct=40.0)
    async with db.transaction() as session:
        cid = await store.create_campaign(session, campaign)
    seen = await preview(db, campaign, now=NOW, today=T, rules=RULES)
    held = {c.member for c in CUSTOMERS
            if int(hashlib.md5(f"{cid}:{shop[c.member]}".encode()).hexdigest()[:8], 16) % 10_000 < 4000}
    assert 0 < len(held) < len(CUSTOMERS)  # the boundary is exercised: some held, some not
    rest = [expected_channel(c) for c in CUSTOMERS if c.member not in held]
    by_channel: dict[str, int] = {}
    for outcome, ch in rest:
        if outcome == "planned":
            by_channel[ch] = by_channel.get(ch, 0) + 1
    assert seen.control == len(held)
    assert seen.by_channel == by_channel
    assert seen.opted_out == sum(o == "opted_out" for o, _ in rest)
    assert seen.unreachable == sum(o == "unreachable" for o, _ in rest)
    adds_up(seen)
