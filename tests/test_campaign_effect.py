"""Campaign effect (campaigns.measure, profile_store.campaign_effect) on both back-ends, and its
text, chart and CLI command.

Campaign rows, orders and events are inserted by hand; every expected figure is worked out in the
comments of `_shop` or by the plain math of `_oracle`, never by the code under test. Times: the
send moments are aware UTC, paid_at / occurred_at naive Asia/Shanghai (UTC+8), so a message sent
at 02:00 UTC went out at 10:00 local. T is 2026-11-20: the end of T is 2026-11-21 00:00 local.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from typer.testing import CliRunner

from bot import texts
from bot.cli_campaign import report_app
from bot.effect_chart import render_effect_chart, render_effect_text
from campaigns.measure import Effect, Group, UnknownCampaign, effect, two_proportions
from profile_store.db import Database
from profile_store.models import Campaign, CampaignTarget, Event, Guide, Order, Store

T = date(2026, 11, 20)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _campaign(db: Database, name: str, *, days: int = 7) -> int:
    async with db.transaction() as session:
        campaign = Campaign(name=name, segment="{}", attribution_days=days, status="running")
        session.add(campaign)
        await session.flush()
        assert campaign.id is not None
        return campaign.id


def _target(cid: int, wave: int, person: str, outcome: str, **values: Any) -> CampaignTarget:
    return CampaignTarget(campaign_id=cid, wave=wave, person_id=person, outcome=outcome, **values)


def _order(order_id: str, person: str, paid_at: str, fen: int, channel: str = "pos", status: str = "paid") -> Order:
    return Order(
        order_id=order_id, person_id=person, channel=channel, store_id="S001", paid_at=local(paid_at),
        amount_fen=fen, status=status,
    )


def _event(event_id: str, person: str, type_: str, at: str, code: str, campaign: str | None = None) -> Event:
    return Event(
        event_id=event_id, fact_key=event_id, person_id=person, type=type_, occurred_at=local(at),
        card_id="C30", coupon_code=code, campaign_id=campaign,
    )


async def _shop(db: Database) -> int:
    """双11: wave 0 sent 2026-11-11 02:00 UTC (10:00 local): its window is (11-11 10:00, 11-18 10:00]
    local; wave 1 (those who had not bought) sent 11-14 02:00 UTC: (11-14 10:00, 11-21 10:00], cut at
    the end of T (11-21 00:00) and still open.

    Treated (wave 0): P1 delivered wecom S001 G1 — order 11-11 09:59:59 before the send (no), pos
    100.00 on 11-12 (yes). P2 sent oa_template S002 — miniapp 50.00 at exactly 11-18 10:00:00 (yes).
    P3 sent wecom S001 G1 — ecom 70.00 at 11-18 10:00:01, one second after wave 0's window (no),
    but inside wave 1's (P3 sent again, wecom): yes for wave 1; an order 11-21 05:00 is after T.
    P4 sent wecom S001 G2 — refunded order inside the window (no). P5 sent sms S002 G2 — an order at
    exactly the send moment 11-11 10:00:00 (no: the window is open at its start).
    Control: P6 (S001 G1, due 11-11 02:00 UTC) pos 80.00 on 11-13 (yes). P7 (S002 G2, due 11-12
    02:00 UTC: window (11-12 10:00, 11-19 10:00]) — 11-11 20:00 before its due (no), 60.00 on 11-19
    09:00 (yes, in wave 0 and again in wave 1, due 11-14 02:00 UTC). P8 (S001 G1) buys nothing.
    Not measured: P9 capped, P10 opted_out, P11 unreachable, P12 failed — all with orders in the window.

    Totals: treated n 5 (P1..P5), converted 3 (P1 P2 P3), orders 3, revenue 220.00; control n 3,
    converted 2 (P6 P7), orders 2 (P7's counted once), revenue 140.00.
    Wave 0: treated 5 / 2 / 150.00; control 3 / 2 / 140.00. Wave 1: treated 1 / 1 / 70.00; control
    1 / 1 / 60.00; both rows open.
    Coupons: P1 code A (got 11-11 11:00, consumed 11-15: redeemed, wave 0); P2 code B (never
    consumed, wave 0); P3 code C (got 11-12 → wave 0; consumed 11-21 08:00, after T: not redeemed);
    P3 code D (campaign_id = the id, got 11-15 → wave 1; consumed 11-16: redeemed); P99 code E (not
    targeted: total only); another campaign's coupon F (not counted). Total 5 coupons, 2 redeemed.
    """
    cid = await _campaign(db, "双11")
    w0, w1 = utc("2026-11-11 02:00:00"), utc("2026-11-14 02:00:00")
    rows = [
        _target(cid, 0, "P1", "delivered", channel="wecom", store_id="S001", guide_id="G1", due_at=w0, sent_at=w0,
                delivered_at=w0 + timedelta(minutes=5)),
        _target(cid, 0, "P2", "sent", channel="oa_template", store_id="S002", due_at=w0, sent_at=w0),
        _target(cid, 0, "P3", "sent", channel="wecom", store_id="S001", guide_id="G1", due_at=w0, sent_at=w0),
        _target(cid, 0, "P4", "sent", channel="wecom", store_id="S001", guide_id="G2", due_at=w0, sent_at=w0),
        _target(cid, 0, "P5", "sent", channel="sms", store_id="S002", guide_id="G2", due_at=w0, sent_at=w0),
        _target(cid, 0, "P6", "control", channel="wecom", store_id="S001", guide_id="G1", due_at=w0),
        _target(cid, 0, "P7", "control", channel="wecom", store_id="S002", guide_id="G2",
                due_at=utc("2026-11-12 02:00:00")),
        _target(cid, 0, "P8", "control", channel="wecom", store_id="S001", guide_id="G1", due_at=w0),
        _target(cid, 0, "P9", "capped", channel="wecom", store_id="S001", due_at=w0),
        _target(cid, 0, "P10", "opted_out", store_id="S001", due_at=w0),
        _target(cid, 0, "P11", "unreachable", store_id="S001", due_at=w0),
        _target(cid, 0, "P12", "failed", channel="sms", store_id="S001", due_at=w0),
        _target(cid, 1, "P3", "sent", channel="wecom", store_id="S001", guide_id="G1", due_at=w1, sent_at=w1),
        _target(cid, 1, "P7", "control", channel="wecom", store_id="S002", guide_id="G2", due_at=w1),
    ]
    orders = [
        _order("O1-before", "P1", "2026-11-11 09:59:59", 99_00),
        _order("O1", "P1", "2026-11-12 12:00:00", 100_00, "pos"),
        _order("O2", "P2", "2026-11-18 10:00:00", 50_00, "miniapp"),
        _order("O3", "P3", "2026-11-18 10:00:01", 70_00, "ecom"),
        _order("O3-after-T", "P3", "2026-11-21 05:00:00", 33_00),
        _order("O4", "P4", "2026-11-13 12:00:00", 40_00, status="refunded"),
        _order("O5", "P5", "2026-11-11 10:00:00", 25_00),
        _order("O6", "P6", "2026-11-13 15:00:00", 80_00),
        _order("O7-early", "P7", "2026-11-11 20:00:00", 11_00),
        _order("O7", "P7", "2026-11-19 09:00:00", 60_00),
        _order("O9", "P9", "2026-11-12 12:00:00", 10_00),
        _order("O10", "P10", "2026-11-12 12:00:00", 10_00),
        _order("O11", "P11", "2026-11-12 12:00:00", 10_00),
        _order("O12", "P12", "2026-11-12 12:00:00", 10_00),
    ]
    events = [
        _event("E1", "P1", "coupon_get", "2026-11-11 11:00:00", "A", "双11"),
        _event("E1c", "P1", "coupon_consume", "2026-11-15 12:00:00", "A"),
        _event("E2", "P2", "coupon_get", "2026-11-11 12:00:00", "B", "双11"),
        _event("E3", "P3", "coupon_get", "2026-11-12 12:00:00", "C", "双11"),
        _event("E3c", "P3", "coupon_consume", "2026-11-21 08:00:00", "C"),
        _event("E4", "P3", "coupon_get", "2026-11-15 12:00:00", "D", str(cid)),
        _event("E4c", "P3", "coupon_consume", "2026-11-16 12:00:00", "D"),
        _event("E5", "P99", "coupon_get", "2026-11-12 12:00:00", "E", "双11"),
        _event("E6", "P1", "coupon_get", "2026-11-12 12:00:00", "F", "别的活动"),
        _event("E6c", "P1", "coupon_consume", "2026-11-13 12:00:00", "F"),
    ]
    async with db.transaction() as session:
        session.add_all([Store(store_id="S001", name="上海一店"), Store(store_id="S002", name="北京一店")])
        session.add_all([Guide(guide_id="G1", name="王导购"), Guide(guide_id="G2", name="李导购")])
        session.add_all([*rows, *orders, *events])
    return cid


def _oracle(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float, float]:
    """Uplift, interval and two-sided p-value, written out independently of the code under test."""
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    se = (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) ** 0.5
    p = (x1 + x2) / (n1 + n2)
    z = d / (p * (1 - p) * (1 / n1 + 1 / n2)) ** 0.5
    return d, d - 1.96 * se, d + 1.96 * se, 2 * (1 - NormalDist().cdf(abs(z)))


def _arm(group: Group, arm: str) -> tuple[int, int, int, int]:
    a = group.treated if arm == "treated" else group.control
    return a.n, a.converted, a.orders, a.revenue_fen


def _check_uplift(group: Group, x1: int, n1: int, x2: int, n2: int) -> None:
    d, low, high, p_value = _oracle(x1, n1, x2, n2)
    u = group.uplift
    assert u.uplift == pytest.approx(d, abs=1e-12)
    assert u.low == pytest.approx(low, abs=1e-12)
    assert u.high == pytest.approx(high, abs=1e-12)
    assert u.p_value == pytest.approx(p_value, abs=1e-9)
    assert u.missing == ""


# ---------------------------------------------------------------------------------- attribution


async def test_attribution_waves_and_total(db: Database) -> None:
    await db.migrate()
    cid = await _shop(db)
    result = await effect(db, "双11", today=T)
    assert (result.campaign_id, result.name, result.attribution_days) == (cid, "双11", 7)
    total = result.total
    assert (total.targeted, total.held_out, total.sent, total.delivered) == (14, 4, 6, 1)
    assert total.outcomes == {
        "capped": 1, "control": 4, "delivered": 1, "failed": 1, "opted_out": 1, "sent": 5, "unreachable": 1,
    }
    assert _arm(total, "treated") == (5, 3, 3, 220_00)
    assert _arm(total, "control") == (3, 2, 2, 140_00)
    assert (total.coupons, total.redeemed) == (5, 2)
    assert total.redemption == pytest.approx(0.4)
    _check_uplift(total, 3, 5, 2, 3)

    assert [w.key for w in result.waves] == ["0", "1"]
    w0, w1 = result.waves
    assert (w0.targeted, w0.held_out, w0.sent, w0.delivered) == (12, 3, 5, 1)
    assert _arm(w0, "treated") == (5, 2, 2, 150_00)
    assert _arm(w0, "control") == (3, 2, 2, 140_00)
    assert (w0.coupons, w0.redeemed) == (3, 1)
    assert (w0.treated.open, w0.control.open) == (0, 0)
    _check_uplift(w0, 2, 5, 2, 3)
    assert (w1.targeted, w1.held_out, w1.sent, w1.delivered) == (2, 1, 1, 0)
    assert _arm(w1, "treated") == (1, 1, 1, 70_00)
    assert _arm(w1, "control") == (1, 1, 1, 60_00)
    assert (w1.coupons, w1.redeemed) == (1, 1)
    assert (w1.treated.open, w1.control.open) == (1, 1)
    assert result.open == 2
    # both arms converted all: the pooled SE is 0, the rates are equal, p = 1
    assert w1.uplift.uplift == 0.0 and w1.uplift.p_value == 1.0

    # the cross table: a WeCom message that led to a store (pos) purchase is seen
    cells = {(c.message_channel, c.purchase_channel): (c.orders, c.revenue_fen) for c in result.cross}
    assert cells == {("wecom", "pos"): (1, 100_00), ("oa_template", "miniapp"): (1, 50_00),
                     ("wecom", "ecom"): (1, 70_00)}
    assert result.first_sent == utc("2026-11-11 02:00:00")
    assert result.last_sent == utc("2026-11-14 02:00:00")


async def test_by_store_and_guide(db: Database) -> None:
    await db.migrate()
    cid = await _shop(db)
    async with db.read() as session:
        result = await effect(session, cid, today=T)  # by id, within the caller's session
    stores = {g.key: g for g in result.stores}
    assert set(stores) == {"S001", "S002"}
    s1, s2 = stores["S001"], stores["S002"]
    assert s1.name == "上海一店" and s2.name == "北京一店"
    # S001: treated P1 P3 P4 (P1, P3 convert: 100 + 70), control P6 P8 (P6: 80); rows: 9 of wave 0 and P3's of wave 1
    assert s1.targeted == 10 and _arm(s1, "treated") == (3, 2, 2, 170_00) and _arm(s1, "control") == (2, 1, 1, 80_00)
    assert (s1.coupons, s1.redeemed) == (3, 2)  # A (P1), C and D (P3)
    assert s2.targeted == 4  # P2 P5 P7, P7 again in wave 1
    assert _arm(s2, "treated") == (2, 1, 1, 50_00) and _arm(s2, "control") == (1, 1, 1, 60_00)
    assert (s2.coupons, s2.redeemed) == (1, 0)
    _check_uplift(s1, 2, 3, 1, 2)
    _check_uplift(s2, 1, 2, 1, 1)
    assert [g.key for g in result.stores] == ["S001", "S002"]  # most targeted first
    guides = {g.key: g for g in result.guides}
    assert set(guides) == {"G1", "G2", ""}
    assert guides["G1"].name == "王导购"
    assert _arm(guides["G1"], "treated") == (2, 2, 2, 170_00) and _arm(guides["G1"], "control") == (2, 1, 1, 80_00)
    assert _arm(guides["G2"], "treated") == (2, 0, 0, 0) and _arm(guides["G2"], "control") == (1, 1, 1, 60_00)
    assert _arm(guides[""], "treated") == (1, 1, 1, 50_00) and guides[""].control.n == 0
    assert guides[""].uplift.uplift is None and guides[""].uplift.missing == "control"


async def test_as_of_cuts_conversions_and_coupons(db: Database) -> None:
    """As of 11-12 only what happened by 11-13 00:00 local counts; wave 1 (11-14) is not yet sent."""
    await db.migrate()
    await _shop(db)
    result = await effect(db, "双11", today=date(2026, 11, 12))
    w0 = result.waves[0]
    assert _arm(w0, "treated") == (5, 1, 1, 100_00)  # P1's 11-12 order only
    # P7's control row (due 11-12 10:00 local) is measured; nobody in control has bought yet
    assert _arm(w0, "control") == (3, 0, 0, 0)
    assert (w0.treated.open, w0.control.open) == (5, 3)
    assert (result.total.coupons, result.total.redeemed) == (4, 0)  # A B C E got; none consumed yet
    # wave 1's rows exist but are not measured: sent after T
    assert result.waves[1].treated.n == 0 and result.waves[1].control.n == 0


async def test_dst_zone_converts_exactly(db: Database) -> None:
    """Europe/Berlin: sent 2026-03-28 12:00 UTC (13:00 CET); 7 × 24 h later is 04-04 12:00 UTC, which
    is 14:00 CEST after the change of 03-29: an order at 14:00:00 local converts, 14:00:01 not."""
    await db.migrate()
    cid = await _campaign(db, "spring")
    sent = utc("2026-03-28 12:00:00")
    async with db.transaction() as session:
        session.add_all([
            _target(cid, 0, "A", "sent", channel="wecom", due_at=sent, sent_at=sent),
            _target(cid, 0, "B", "sent", channel="wecom", due_at=sent, sent_at=sent),
            _target(cid, 0, "C", "sent", channel="wecom", due_at=sent, sent_at=sent),
            _order("OA", "A", "2026-04-04 14:00:00", 1_00),
            _order("OB", "B", "2026-04-04 14:00:01", 1_00),
            _order("OC", "C", "2026-03-28 13:00:00", 1_00),  # exactly the send moment: no
        ])
    result = await effect(db, "spring", today=date(2026, 4, 30), tz="Europe/Berlin")
    assert _arm(result.total, "treated") == (3, 1, 1, 1_00)
    # the same rows in Shanghai time: window (03-28 20:00, 04-04 20:00]: A's and B's orders are in
    # it, C's 13:00 is before the send
    shanghai = await effect(db, "spring", today=date(2026, 4, 30))
    assert _arm(shanghai.total, "treated") == (3, 2, 2, 2_00)


# ---------------------------------------------------------------------------------- statistics


async def test_uplift_matches_independent_computation(db: Database) -> None:
    """40 treated of whom 14 bought, 30 in control of whom 5 bought (one paid order each, in window)."""
    await db.migrate()
    cid = await _campaign(db, "大促")
    sent = utc("2026-11-01 02:00:00")
    rows: list[Any] = []
    for i in range(40):
        rows.append(_target(cid, 0, f"T{i}", "delivered" if i % 2 else "sent", channel="wecom", due_at=sent,
                            sent_at=sent))
        if i < 14:
            rows.append(_order(f"OT{i}", f"T{i}", "2026-11-03 12:00:00", 10_00 + i))
    for i in range(30):
        rows.append(_target(cid, 0, f"C{i}", "control", due_at=sent))
        if i < 5:
            rows.append(_order(f"OC{i}", f"C{i}", "2026-11-05 12:00:00", 20_00))
    async with db.transaction() as session:
        session.add_all(rows)
    result = await effect(db, "大促", today=T)
    total = result.total
    assert _arm(total, "treated") == (40, 14, 14, sum(10_00 + i for i in range(14)))
    assert _arm(total, "control") == (30, 5, 5, 100_00)
    _check_uplift(total, 14, 40, 5, 30)
    u = total.uplift
    assert u.low is not None and u.high is not None and u.p_value is not None
    # by hand: p1 0.35, p2 1/6; SE = sqrt(.35·.65/40 + (1/6)(5/6)/30) = 0.10346…
    assert u.uplift == pytest.approx(0.35 - 1 / 6)
    assert u.high - u.low == pytest.approx(2 * 1.96 * math.sqrt(0.35 * 0.65 / 40 + (5 / 36) / 30))
    assert 0.05 < u.p_value < 0.1 and not u.significant


def test_two_proportions_edges() -> None:
    none = two_proportions(0, 0, 0, 0)
    assert none.uplift is None and none.low is None and none.p_value is None and none.missing == "both"
    no_control = two_proportions(3, 10, 0, 0)
    assert no_control.treated_rate == pytest.approx(0.3) and no_control.control_rate is None
    assert no_control.uplift is None and no_control.missing == "control"
    assert two_proportions(0, 0, 1, 4).missing == "treated"
    zero = two_proportions(0, 10, 0, 12)  # nobody converted: no variance at all
    assert (zero.uplift, zero.low, zero.high, zero.p_value) == (0.0, 0.0, 0.0, 1.0)
    d, low, high, p_value = _oracle(120, 1000, 90, 1000)
    big = two_proportions(120, 1000, 90, 1000)
    assert (big.uplift, big.low, big.high) == pytest.approx((d, low, high))
    assert big.p_value == pytest.approx(p_value, abs=1e-9) and big.significant


async def test_zero_size_groups(db: Database) -> None:
    """A campaign without a control group, and one without any row."""
    await db.migrate()
    cid = await _campaign(db, "无对照")
    sent = utc("2026-11-01 02:00:00")
    async with db.transaction() as session:
        session.add_all([
            _target(cid, 0, "A", "sent", channel="wecom", due_at=sent, sent_at=sent),
            _target(cid, 0, "B", "capped", due_at=sent),
            _order("OA", "A", "2026-11-02 12:00:00", 5_00),
        ])
    result = await effect(db, "无对照", today=T)
    assert _arm(result.total, "treated") == (1, 1, 1, 5_00)
    assert result.total.control.n == 0 and result.total.control.rate is None
    assert result.total.uplift.uplift is None and result.total.uplift.missing == "control"
    text = render_effect_text(result)
    assert texts.EFFECT_NO_INTERVAL.format(side=texts.EFFECT_SIDES["control"]) in text
    await _campaign(db, "空活动")
    empty = await effect(db, "空活动", today=T)
    assert empty.empty and empty.waves == () and empty.stores == () and empty.cross == ()
    assert empty.total.uplift.missing == "both" and empty.total.redemption is None
    assert render_effect_text(empty)
    assert render_effect_chart(empty).startswith(PNG_SIGNATURE)
    with pytest.raises(UnknownCampaign):
        await effect(db, "没有这个活动", today=T)


# ---------------------------------------------------------------------------------- text, chart, CLI


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", png[16:24])


async def test_text_and_chart(db: Database) -> None:
    await db.migrate()
    await _shop(db)
    result = await effect(db, "双11", today=T)
    text = render_effect_text(result)
    assert "双11" in text
    assert "220.00元" in text  # the treated revenue
    assert "60.00%" in text  # treated conversion 3/5
    assert "66.67%" in text  # control conversion 2/3
    assert "-6.67" in text  # the uplift in percentage points
    assert "门店" in text  # the cross-channel line: a WeCom message, a store purchase
    assert _png_size(render_effect_chart(result)) == (800, 500)
    assert isinstance(result, Effect)


def test_cli_report_campaign(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async def prepare() -> None:
        database = Database(db_url)
        await database.migrate()
        await _shop(database)
        await database.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("QIANMIAN_TZ", "Asia/Shanghai")
    chart = tmp_path / "effect.png"
    runner = CliRunner()
    done = runner.invoke(report_app, ["campaign", "双11", "--as-of", "2026-11-20", "--chart", str(chart)])
    assert done.exit_code == 0, done.output
    assert "双11" in done.stdout and "220.00元" in done.stdout
    assert _png_size(chart.read_bytes()) == (800, 500)
    missing = runner.invoke(report_app, ["campaign", "没有这个活动", "--as-of", "2026-11-20"])
    assert missing.exit_code == 1


def test_wave_labels_of_campaigns_and_journeys() -> None:
    from bot.effect_chart import wave_label

    assert [wave_label("0"), wave_label("2")] == ["第1波", "第3波"]
    # A journey's wave is entry key × 10 + step (campaigns/journeys.py): the entry and the step.
    assert wave_label("202611010") == "20261101 进入·第1步" and wave_label("20262") == "2026 进入·第3步"
