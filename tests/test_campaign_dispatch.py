"""Sending planned campaign messages (campaigns/dispatch.py) against the Tencent simulator, on
SQLite and PostgreSQL: WeCom batches per guide and their 10 000 limit, the re-checks at dispatch
(opt-out, cap across campaigns, quiet hours, paused / cancelled), -1 and 45009, delivered
results, OA template / custom messages and SMS, and the recovery of a batch whose answer was lost."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text

from bot.simulator.server import TencentSimulator
from bot.tencent.wechat import OfficialAccountClient
from bot.tencent.wecom import WeComClient
from campaigns.dispatch import CampaignSender, SendParams
from campaigns.sms import SimulatorSms
from profile_store import campaign_outbox as co
from profile_store.db import Database
from profile_store.pii import PiiVault
from tests.conftest import TEST_SECRET

SHANGHAI = ZoneInfo("Asia/Shanghai")
ADD_MSG = "/cgi-bin/externalcontact/add_msg_template"
TEMPLATE = "TPL_campaign_1"


def daytime_offset(hour: int = 10) -> timedelta:
    """How far to move clocks so that it is `hour`:00-ish in Shanghai (tests never hit quiet hours)."""
    now = datetime.now(UTC)
    local = now.astimezone(SHANGHAI)
    target = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target < local - timedelta(hours=1):
        target += timedelta(days=1)
    return target.astimezone(UTC) - now




class Shop:
    """Persons, campaigns and planned rows written straight into the store."""

    def __init__(self, db: Database, vault: PiiVault, sim: TencentSimulator | None) -> None:
        self.db, self.vault, self.sim = db, vault, sim
        self.guides: set[str] = set()

    async def campaign(
        self, name: str, variants: Sequence[dict[str, Any]] | None = None, status: str = "running"
    ) -> int:
        variants = variants or [{"name": "A", "content": f"{name}：30元无门槛券", "coupon": None}]
        async with self.db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO campaign (name, kind, segment, reading, variants, channel, waves, control_pct,"
                    " attribution_days, status, created_by, created_at, confirmed_by)"
                    " VALUES (:n, 'campaign', '{}', '', :v, 'any', '[]', 10, 7, :s, 'test', :at, 'test')"
                ),
                {"n": name, "v": json.dumps(variants, ensure_ascii=False), "s": status, "at": datetime.now(UTC)},
            )
            cid = (await session.execute(text("SELECT id FROM campaign WHERE name = :n"), {"n": name})).scalar_one()
        return int(cid)

    async def status(self, cid: int, status: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(text("UPDATE campaign SET status = :s WHERE id = :c"), {"s": status, "c": cid})

    async def persons(self, specs: Sequence[dict[str, Any]]) -> None:
        """Each spec: person, and any of external (+ guide), openid (appid/openid), phone."""
        nodes = []
        for s in specs:
            p = s["person"]
            if s.get("external"):
                nodes.append({"k": "external_userid", "v": s["external"], "p": p, "s": None})
                if self.sim is not None and s.get("guide"):
                    if s["guide"] not in self.guides:
                        self.sim.add_staff(s["guide"])
                        self.guides.add(s["guide"])
                    self.sim.add_external_contact(s["external"], follow_userid=s["guide"])
            if s.get("openid"):
                nodes.append({"k": "openid", "v": s["openid"], "p": p, "s": None})
                if self.sim is not None and s.get("follower", True):
                    appid, openid = s["openid"].split("/", 1)
                    self.sim.oa.add_follower(appid, openid)
            if s.get("phone"):
                nodes.append(
                    {"k": "phone", "v": self.vault.lookup_hash(s["phone"]), "p": p, "s": self.vault.encrypt(s["phone"])}
                )
        async with self.db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO identity_node (kind, value, person_id, shared, sealed) VALUES (:k, :v, :p, false, :s)"
                ),
                nodes,
            )

    async def targets(
        self, cid: int, rows: Sequence[tuple[str, str, str, str]], *, due: datetime, wave: int = 0,
        outcome: str = "planned", sent_at: datetime | None = None,
    ) -> None:
        """rows: (person, channel, guide, variant)."""
        async with self.db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
                    " outcome, due_at, claimed_until, attempts, sent_at, delivered_at, last_error)"
                    " VALUES (:c, :w, :p, :v, :ch, :g, '', :o, :due, NULL, 0, :sent, NULL, '')"
                ),
                [
                    {"c": cid, "w": wave, "p": p, "v": v, "ch": ch, "g": g, "o": outcome, "due": due, "sent": sent_at}
                    for p, ch, g, v in rows
                ],
            )

    async def rows(self, cid: int | None = None) -> dict[str, dict[str, Any]]:
        where = " WHERE campaign_id = :c" if cid is not None else ""
        async with self.db.read() as session:
            result = (
                await session.execute(
                    text(
                        "SELECT campaign_id, person_id, outcome, attempts, due_at, sent_at, delivered_at, last_error"
                        f" FROM campaign_target{where}"
                    ),
                    {"c": cid},
                )
            ).all()
        return {
            (r[1] if cid is not None else f"{r[0]}:{r[1]}"): {
                "outcome": r[2], "attempts": r[3], "due_at": co.utc(r[4]), "sent_at": r[5], "delivered_at": r[6],
                "error": r[7],
            }
            for r in result
        }

    async def outcomes(self, cid: int | None = None) -> dict[str, int]:
        async with self.db.read() as session:
            return await co.outcome_counts(session, cid)


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.advance(daytime_offset().total_seconds())
        yield simulator


@pytest.fixture
def clock(sim: TencentSimulator) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(sim.clock.now(), UTC)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_sender(
    db: Database, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime], **params: Any
) -> CampaignSender:
    wecom = WeComClient(
        http, db, base_url=sim.base_url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id,
        max_retries=0,
    )
    oa = {
        sim.oa_app_id: OfficialAccountClient(
            http, db, base_url=sim.base_url, app_id=sim.oa_app_id, secret=sim.oa_app_secret, max_retries=0
        )
    }
    return CampaignSender(
        db, wecom=wecom, oa=oa, sms=SimulatorSms(http, sim.base_url), vault=PiiVault(TEST_SECRET),
        params=SendParams(**{"oa_template_id": TEMPLATE, **params}), clock=clock,
    )


@pytest.fixture
def shop(db: Database, sim: TencentSimulator) -> Shop:
    return Shop(db, PiiVault(TEST_SECRET), sim)


def mass_sends(sim: TencentSimulator) -> list[dict[str, Any]]:
    return [m.body for m in sim.wecom.group_msgs.values()]


def ext(i: int) -> str:
    return f"wmcust{i:07d}"


async def wecom_people(shop: Shop, n: int, guide: Callable[[int], str], start: int = 0) -> list[str]:
    persons = [f"p{i:07d}" for i in range(start, start + n)]
    await shop.persons(
        [{"person": p, "external": ext(start + i), "guide": guide(start + i)} for i, p in enumerate(persons)]
    )
    return persons


# ---------------------------------------------------------------------------------- WeCom batches


async def test_wecom_rows_grouped_per_guide_and_variant(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    cid = await shop.campaign("双11", [
        {"name": "价格", "content": "30元无门槛券", "coupon": {"card_id": "pCard1"}},
        {"name": "品质", "content": "新品到店"},
    ])
    persons = await wecom_people(shop, 9, lambda i: "guide01" if i < 6 else "guide02")
    variant = ["价格", "价格", "价格", "品质", "品质", "品质", "价格", "价格", "价格"]
    await shop.targets(
        cid, [(p, "wecom", "guide01" if i < 6 else "guide02", variant[i]) for i, p in enumerate(persons)],
        due=clock() - timedelta(minutes=1),
    )
    sender = make_sender(db, sim, http, clock)
    await sender.drain()

    sends = sorted(mass_sends(sim), key=lambda b: (b["sender"], b["text"]["content"]))
    assert [(b["sender"], b["text"]["content"], len(b["external_userid"])) for b in sends] == [
        ("guide01", "30元无门槛券", 3), ("guide01", "新品到店", 3), ("guide02", "30元无门槛券", 3),
    ]
    assert await shop.outcomes(cid) == {"sent": 9}
    async with db.read() as session:
        batches = await co.batch_rows(session)
    assert sorted(b["msgid"] for b in batches) == sorted(sim.wecom.group_msgs)
    assert {b["status"] for b in batches} == {"sent"}
    assert not await sender.run_once()  # nothing sent twice


async def test_more_than_the_limit_is_split_into_calls(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    cid = await shop.campaign("拆分")
    persons = await wecom_people(shop, 25, lambda i: "guide01")
    await shop.targets(cid, [(p, "wecom", "guide01", "A") for p in persons], due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock, mass_send_limit=10).drain()
    assert sorted(len(b["external_userid"]) for b in mass_sends(sim)) == [5, 10, 10]
    assert await shop.outcomes(cid) == {"sent": 25}
    recipients = [e for b in mass_sends(sim) for e in b["external_userid"]]
    assert len(recipients) == len(set(recipients)) == 25


async def test_10001_customers_of_one_guide_make_two_calls(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    cid = await shop.campaign("一万零一")
    persons = await wecom_people(shop, 10_001, lambda i: "guide01")
    await shop.targets(cid, [(p, "wecom", "guide01", "A") for p in persons], due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock, claim_batch=20_000).drain()
    assert sorted(len(b["external_userid"]) for b in mass_sends(sim)) == [1, 10_000]
    assert await shop.outcomes(cid) == {"sent": 10_001}


# ---------------------------------------------------------------------------------- re-checks at dispatch


async def test_opt_out_cap_paused_and_cancelled_at_dispatch(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    now = clock()
    a = await shop.campaign("A")
    b = await shop.campaign("B")
    c = await shop.campaign("C")
    paused = await shop.campaign("暂停")
    cancelled = await shop.campaign("取消")
    draft = await shop.campaign("草稿", status="draft")  # never confirmed: never sent
    people = await wecom_people(shop, 8, lambda i: "guide01")
    p_opt_wecom, p_opt_all, p_opt_sms, p_full, p_one, p_free, p_paused, p_cancelled = people
    async with db.transaction() as session:  # opt-outs written after planning
        for person, channel in ((p_opt_wecom, "wecom"), (p_opt_all, "all"), (p_opt_sms, "sms")):
            await session.execute(
                text("INSERT INTO opt_out (person_id, channel, at, reason) VALUES (:p, :c, :at, '退订')"),
                {"p": person, "c": channel, "at": now},
            )
    # Already sent this week by campaign B: two messages to p_full, one to p_one; one 8 days ago to p_free.
    await shop.targets(b, [(p_full, "wecom", "guide01", "A"), (p_one, "wecom", "guide01", "A")], due=now,
                       outcome="sent", sent_at=now - timedelta(days=1))
    await shop.targets(b, [(p_full, "wecom", "guide01", "A")], due=now, wave=1, outcome="delivered",
                       sent_at=now - timedelta(days=2))
    await shop.targets(b, [(p_free, "wecom", "guide01", "A")], due=now, outcome="sent", sent_at=now - timedelta(days=8))
    due = now - timedelta(minutes=1)
    first = (p_opt_wecom, p_opt_all, p_opt_sms, p_full, p_one, p_free)
    await shop.targets(a, [(p, "wecom", "guide01", "A") for p in first], due=due)
    await shop.targets(c, [(p_one, "wecom", "guide01", "A"), (p_free, "wecom", "guide01", "A")], due=due)
    await shop.targets(paused, [(p_paused, "wecom", "guide01", "A")], due=due)
    await shop.targets(cancelled, [(p_cancelled, "wecom", "guide01", "A")], due=due)
    await shop.targets(draft, [(p_cancelled, "wecom", "guide01", "A")], due=due)
    await shop.status(paused, "paused")
    await shop.status(cancelled, "cancelled")

    sender = make_sender(db, sim, http, clock)
    await sender.drain()

    rows_a, rows_c = await shop.rows(a), await shop.rows(c)
    assert rows_a[p_opt_wecom]["outcome"] == rows_a[p_opt_all]["outcome"] == "opted_out"
    assert rows_a[p_opt_sms]["outcome"] == "sent"  # an SMS opt-out does not stop WeCom
    assert rows_a[p_full]["outcome"] == "capped"
    # p_one had one this week: one more (campaign A, claimed first) and then capped (C).
    assert (rows_a[p_one]["outcome"], rows_c[p_one]["outcome"]) == ("sent", "capped")
    assert (rows_a[p_free]["outcome"], rows_c[p_free]["outcome"]) == ("sent", "sent")  # 8 days ago is outside
    assert (await shop.rows(paused))[p_paused]["outcome"] == "planned"
    assert (await shop.rows(cancelled))[p_cancelled]["outcome"] == "expired"
    assert (await shop.rows(draft))[p_cancelled]["outcome"] == "planned"
    recipients = Counter(e for body in mass_sends(sim) for e in body["external_userid"])
    assert recipients == Counter({ext(2): 1, ext(4): 1, ext(5): 2})

    await shop.status(paused, "running")  # resumed: sent now
    sender.wake()
    await sender.drain()
    assert (await shop.rows(paused))[p_paused]["outcome"] == "sent"


async def test_quiet_hours_move_rows_to_nine(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    local_22 = datetime.now(SHANGHAI).replace(hour=22, minute=30, second=0, microsecond=0)
    clock_22 = lambda: local_22.astimezone(UTC)  # noqa: E731
    cid = await shop.campaign("夜")
    persons = await wecom_people(shop, 3, lambda i: "guide01")
    await shop.persons([{"person": "psms", "phone": "13912345678"}])
    await shop.targets(cid, [(p, "wecom", "guide01", "A") for p in persons] + [("psms", "sms", "", "A")],
                       due=clock_22() - timedelta(hours=1))
    sender = make_sender(db, sim, http, clock_22)
    await sender.drain()
    assert mass_sends(sim) == [] and sim.sms.messages == []
    nine = (local_22 + timedelta(days=1)).replace(hour=9, minute=30).astimezone(UTC)
    for row in (await shop.rows(cid)).values():
        assert row["outcome"] == "planned" and row["attempts"] == 0
        assert row["due_at"] == (local_22 + timedelta(days=1)).replace(hour=9, minute=0).astimezone(UTC)
    early = make_sender(db, sim, http, lambda: nine - timedelta(hours=1))  # 08:30: still quiet
    await early.drain()
    assert mass_sends(sim) == []
    await make_sender(db, sim, http, lambda: nine).drain()
    assert await shop.outcomes(cid) == {"sent": 4}


# ---------------------------------------------------------------------------------- errors


async def test_busy_is_retried_and_45009_backs_off_without_losing_rows(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    offset = [0.0]
    clock = lambda: datetime.fromtimestamp(sim.clock.now() + offset[0], UTC)  # noqa: E731
    cid = await shop.campaign("忙")
    persons = await wecom_people(shop, 6, lambda i: "guide01" if i < 3 else "guide02")
    await shop.targets(cid, [(p, "wecom", "guide01" if i < 3 else "guide02", "A") for i, p in enumerate(persons)],
                       due=clock() - timedelta(minutes=1))
    sender = make_sender(db, sim, http, clock, retry_base=10, channel_backoff=60, mass_concurrency=1)

    sim.inject(ADD_MSG, -1, times=1)  # guide01's batch: busy
    await sender.drain()
    rows = await shop.rows(cid)
    assert [rows[p]["outcome"] for p in persons] == ["planned"] * 3 + ["sent"] * 3
    assert all(rows[p]["attempts"] == 1 and "-1" in rows[p]["error"] for p in persons[:3])

    offset[0] = 11  # the retry is due: a 45009 now pauses the channel, the rows wait, attempts unchanged
    sim.inject(ADD_MSG, 45009, times=1)
    await sender.drain()
    rows = await shop.rows(cid)
    assert [rows[p]["outcome"] for p in persons[:3]] == ["planned"] * 3
    assert all(rows[p]["attempts"] == 1 for p in persons[:3])
    assert len(mass_sends(sim)) == 1

    offset[0] = 11 + 61
    await sender.drain()
    assert await shop.outcomes(cid) == {"sent": 6}
    recipients = Counter(e for body in mass_sends(sim) for e in body["external_userid"])
    assert set(recipients.values()) == {1} and len(recipients) == 6

    async with db.read() as session:
        assert {b["status"] for b in await co.batch_rows(session)} == {"sent", "failed"}


async def test_final_errors_and_gave_up(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    cid = await shop.campaign("终")
    sim.add_staff("guide01")
    await shop.persons([
        {"person": "pstranger", "external": "wmstranger01"},  # not a contact of guide01: fail_list
        {"person": "pok", "external": "wmok000001", "guide": "guide01"},
        {"person": "pnoguide", "external": "wmnoguide01", "guide": "guide01"},
        {"person": "pnoaddr"},
    ])
    await shop.targets(cid, [
        ("pstranger", "wecom", "guide01", "A"), ("pok", "wecom", "guide01", "A"),
        ("pnoguide", "wecom", "ghost", "A"), ("pnoaddr", "wecom", "guide01", "A"),
    ], due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock).drain()
    rows = await shop.rows(cid)
    assert rows["pok"]["outcome"] == "sent"
    assert rows["pstranger"]["outcome"] == "failed" and "fail_list" in rows["pstranger"]["error"]
    assert rows["pnoguide"]["outcome"] == "failed" and "60111" in rows["pnoguide"]["error"]
    assert rows["pnoaddr"]["outcome"] == "failed" and "external_userid" in rows["pnoaddr"]["error"]


# ---------------------------------------------------------------------------------- delivered


async def test_delivered_after_the_guide_confirms(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    cid = await shop.campaign("送达")
    persons = await wecom_people(shop, 4, lambda i: "guide01")
    await shop.targets(cid, [(p, "wecom", "guide01", "A") for p in persons], due=clock() - timedelta(minutes=1))
    sender = make_sender(db, sim, http, clock)
    await sender.drain()
    (msgid,) = sim.wecom.group_msgs
    assert await sender.check_results() == 0  # not due yet
    later = clock() + timedelta(minutes=6)
    assert await sender.check_results(now=later) == 0  # the guide has not confirmed
    assert await shop.outcomes(cid) == {"sent": 4}
    sim.wecom.confirm_group_msg(msgid)
    sim.wecom.group_msgs[msgid].results[0].status = 2  # that one had deleted the guide meanwhile
    sim.wecom.group_msgs[msgid].results[0].send_time = None
    assert await sender.check_results(now=later + timedelta(minutes=6)) == 3
    rows = await shop.rows(cid)
    assert sorted(r["outcome"] for r in rows.values()) == ["delivered"] * 3 + ["failed"]
    assert all(r["delivered_at"] is not None for r in rows.values() if r["outcome"] == "delivered")
    async with db.read() as session:
        assert [b["status"] for b in await co.batch_rows(session)] == ["done"]


# ---------------------------------------------------------------------------------- OA and SMS


async def test_oa_template_custom_and_sms(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    app = sim.oa_app_id
    cid = await shop.campaign("公众号", [{"name": "A", "content": "会员日双倍积分"}])
    await shop.persons([
        {"person": "pt1", "openid": f"{app}/oT1"},
        {"person": "pt2", "openid": f"{app}/oT2"},
        {"person": "pgone", "openid": f"{app}/oGone", "follower": False},  # unknown openid → 40003
        {"person": "pc1", "openid": f"{app}/oC1"},
        {"person": "pc_old", "openid": f"{app}/oC2"},
        {"person": "ps1", "phone": "13800000001"},
        {"person": "ps2", "phone": "13800000002"},
        {"person": "pother", "openid": "wxunknownapp/oX", "follower": False},
    ])
    sim.oa.accounts[app].users["oC2"].last_interaction = sim.clock.now() - 49 * 3600  # window closed
    await shop.targets(cid, [
        ("pt1", "oa_template", "", "A"), ("pt2", "oa_template", "", "A"), ("pgone", "oa_template", "", "A"),
        ("pc1", "oa_custom", "", "A"), ("pc_old", "oa_custom", "", "A"), ("ps1", "sms", "", "A"),
        ("ps2", "sms", "", "A"), ("pother", "oa_template", "", "A"),
    ], due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock).drain()
    rows = await shop.rows(cid)
    assert {p: r["outcome"] for p, r in rows.items()} == {
        "pt1": "sent", "pt2": "sent", "pgone": "failed", "pc1": "sent", "pc_old": "failed", "ps1": "sent",
        "ps2": "sent", "pother": "failed",
    }
    assert "40003" in rows["pgone"]["error"] and "45015" in rows["pc_old"]["error"]
    templates = sim.oa.accounts[app].template_messages
    assert sorted(m["touser"] for m in templates) == ["oT1", "oT2"]
    assert all(m["template_id"] == TEMPLATE and m["data"]["content"]["value"] == "会员日双倍积分" for m in templates)
    assert [m["touser"] for m in sim.oa.accounts[app].custom_messages] == ["oC1"]
    assert sorted(m.phone for m in sim.sms.messages) == ["13800000001", "13800000002"]


async def test_a_coupon_goes_as_a_wechat_card_before_the_words(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    app = sim.oa_app_id
    cid = await shop.campaign("送券", [{"name": "A", "content": "送您30元券", "coupon": {"card_id": "C30"}}])
    await shop.persons([{"person": "pc1", "openid": f"{app}/oC1"}, {"person": "pt1", "openid": f"{app}/oT1"}])
    await shop.targets(cid, [("pc1", "oa_custom", "", "A"), ("pt1", "oa_template", "", "A")],
                       due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock).drain()
    assert await shop.outcomes(cid) == {"sent": 2}
    custom = sim.oa.accounts[app].custom_messages
    assert [(m["touser"], m["msgtype"]) for m in custom] == [("oC1", "wxcard"), ("oC1", "text")]
    assert custom[0]["wxcard"] == {"card_id": "C30"} and custom[1]["text"]["content"] == "送您30元券"


async def test_sms_busy_retried_and_rate_limit_backs_off(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    offset = [0.0]
    clock = lambda: datetime.fromtimestamp(sim.clock.now() + offset[0], UTC)  # noqa: E731
    cid = await shop.campaign("短信")
    await shop.persons([{"person": f"ps{i}", "phone": f"1380000000{i}"} for i in range(5)])
    await shop.targets(cid, [(f"ps{i}", "sms", "", "A") for i in range(5)], due=clock() - timedelta(minutes=1))
    sender = make_sender(db, sim, http, clock, concurrency=1, retry_base=5, channel_backoff=30)
    sim.sms.inject(-1)
    sim.sms.inject(45009)
    await sender.drain()
    rows = await shop.rows(cid)
    outcome = Counter(r["outcome"] for r in rows.values())
    assert outcome == Counter({"planned": 5})  # one busy (retry), then the channel paused: all wait
    assert sum(r["attempts"] for r in rows.values()) == 1
    offset[0] = 31
    await sender.drain()
    assert await shop.outcomes(cid) == {"sent": 5}
    assert Counter(m.phone for m in sim.sms.messages) == Counter({f"1380000000{i}": 1 for i in range(5)})


# ---------------------------------------------------------------------------------- crash recovery


async def test_a_batch_whose_answer_was_lost_is_adopted_not_resent(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession
) -> None:
    offset = [0.0]
    clock = lambda: datetime.fromtimestamp(sim.clock.now() + offset[0], UTC)  # noqa: E731
    cid = await shop.campaign("崩溃")
    persons = await wecom_people(shop, 6, lambda i: "guide01" if i < 3 else "guide02")
    sender = make_sender(db, sim, http, clock)
    now = clock()
    await shop.targets(cid, [(p, "wecom", "guide01" if i < 3 else "guide02", "A") for i, p in enumerate(persons)],
                       due=now - timedelta(minutes=1))
    # guide01's batch: recorded and sent, then the process died before writing the answer.
    async with db.transaction() as session:
        await co.begin_batch(session, "b-answered", (cid, 0, "guide01", "A"), persons[:3], now=now, lease=60)
        await co.begin_batch(session, "b-never-sent", (cid, 0, "guide02", "A"), persons[3:], now=now, lease=60)
    await sender.wecom.add_msg_template(sender="guide01", external_userid=[ext(i) for i in range(3)], text="崩溃")
    assert await sender.run_once() == 0  # leases still live: nothing touched
    offset[0] = 61
    await sender.drain()
    rows = await shop.rows(cid)
    assert all(r["outcome"] == "sent" for r in rows.values()) and len(rows) == 6
    recipients = Counter(e for body in mass_sends(sim) for e in body["external_userid"])
    assert recipients == Counter({ext(i): 1 for i in range(6)})
    async with db.read() as session:
        status = {b["batch_id"]: b["status"] for b in await co.batch_rows(session)}
    assert status["b-answered"] == "sent" and status["b-never-sent"] == "abandoned"
    assert len(status) == 3


def test_params_follow_the_planners_settings() -> None:
    from types import SimpleNamespace

    settings = SimpleNamespace(cap_messages=3, cap_days=5, quiet_hours="22:30-08:00", tz="Asia/Shanghai",
                               campaign_oa_template_id="TPL9")
    params = SendParams.from_settings(settings, claim_batch=10)
    assert (params.cap, params.cap_days, params.quiet_hours, params.oa_template_id, params.claim_batch) == (
        3, 5, "22:30-08:00", "TPL9", 10,
    )
    sender = CampaignSender(Database("sqlite:///:memory:"), params=params)
    day = datetime(2026, 11, 24, 22, 29, tzinfo=SHANGHAI)
    assert sender.quiet_until(day.astimezone(UTC)) is None
    assert sender.quiet_until((day + timedelta(minutes=1)).astimezone(UTC)) == datetime(
        2026, 11, 25, 8, 0, tzinfo=SHANGHAI
    )
    off = CampaignSender(Database("sqlite:///:memory:"), params=SendParams(quiet_hours="off"))
    assert off.quiet_until(day.astimezone(UTC)) is None


async def test_campaign_status_follows_its_rows(
    db: Database, shop: Shop, sim: TencentSimulator, http: aiohttp.ClientSession, clock: Callable[[], datetime]
) -> None:
    one = await shop.campaign("一波", status="scheduled")
    two = await shop.campaign("两波", status="scheduled")
    async with db.transaction() as session:  # a later wave still to come: not done after wave 0
        await session.execute(
            text("UPDATE campaign SET waves = :w WHERE id = :c"),
            {"w": json.dumps([{"wave": 0, "after_days": 0}, {"wave": 1, "after_days": 3}]), "c": two},
        )
    persons = await wecom_people(shop, 2, lambda i: "guide01")
    await shop.targets(one, [(persons[0], "wecom", "guide01", "A")], due=clock() - timedelta(minutes=1))
    await shop.targets(two, [(persons[1], "wecom", "guide01", "A")], due=clock() - timedelta(minutes=1))
    await make_sender(db, sim, http, clock).drain()
    async with db.transaction() as session:
        status = dict((await session.execute(text("SELECT id, status FROM campaign"))).all())
    assert (status[one], status[two]) == ("done", "running")
