"""Tags of tags.md: the sample as expected, and every rule at its boundaries (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from profile_store.db import Database
from profile_store.export import export_profiles
from profile_store.importer import import_dir
from profile_store.tagging.refresh import enrich, refresh_all
from tests.conftest import SAMPLE_DIR
from tests.tag_kit import VAULT, Retailer, T, profile
from tests.test_export import identity_set

# --------------------------------------------------------------------------- the sample retailer


def _differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    problems = []
    for section in ("metrics", "tags"):
        for key in sorted(set(expected[section]) | set(got[section])):
            want, have = expected[section].get(key), got[section].get(key)
            if isinstance(want, float | int) and isinstance(have, float | int) and not isinstance(want, bool):
                if abs(want - have) <= 0.01 + 1e-9:
                    continue
            if want != have:
                problems.append(f"{section}.{key}: expected {want!r}, got {have!r}")
    return problems


async def test_every_metric_and_tag_of_the_sample(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    out = io.StringIO()
    await export_profiles(db, out, VAULT, as_of=T, include_pii=True, enrich=enrich)
    got = {identity_set(p["identities"]): p for p in map(json.loads, out.getvalue().splitlines())}
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        expected = {identity_set(p["identities"]): p for p in map(json.loads, handle)}
    assert got.keys() == expected.keys()
    problems = {
        str(sorted(key)): diff for key, want in expected.items() if (diff := _differences(want, got[key]))
    }
    assert not problems, json.dumps(dict(list(problems.items())[:5]), ensure_ascii=False, indent=1)


async def test_stored_profiles_equal_the_computed_ones(db: Database, sample_dir: Path) -> None:
    """The full refresh (pages of persons) stores exactly what the export computes."""
    from sqlalchemy import select

    from profile_store.models import PersonProfile
    from profile_store.tagging.store import stored_tags

    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    report = await refresh_all(db, T, page_size=97)  # pages that do not divide the persons
    out = io.StringIO()
    await export_profiles(db, out, VAULT, as_of=T, enrich=enrich)
    computed = {p["person_id"]: p for p in map(json.loads, out.getvalue().splitlines())}
    async with db.transaction() as session:
        rows = (await session.execute(select(PersonProfile))).scalars().all()
    assert report.persons == len(computed) == len(rows)
    for row in rows:
        line = computed[row.person_id]
        assert stored_tags(row) == line["tags"]
        assert row.orders_365d == line["metrics"]["orders_365d"]
        assert row.amount_365d_fen == round(line["metrics"]["amount_365d"] * 100)
        assert row.as_of == T


# --------------------------------------------------------------------------- windows


@pytest.fixture
def shop() -> Retailer:
    return Retailer()


async def test_the_365_day_window_is_t_minus_364_to_t(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1")
    shop.order("M1", "2025-11-02 00:00:00", "100")  # T-364: inside
    shop.order("M1", "2025-11-01 23:59:59", "1000")  # T-365: outside
    shop.order("M1", "2026-11-01 23:59:59", "10")  # end of T: inside
    shop.order("M1", "2026-11-02 00:00:00", "5000")  # after T: does not exist yet
    await shop.load(db, tmp_path)
    metrics, _ = await profile(db, "member_id:M1")
    assert metrics["orders_365d"] == 2 and metrics["amount_365d"] == 110
    assert metrics["orders_total"] == 3 and metrics["amount_total"] == 1110
    assert metrics["recency_days"] == 0 and metrics["last_active_date"] == "2026-11-01"
    assert metrics["max_order_365d"] == 100


async def test_refunded_orders_count_for_nothing(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1", register_time="2020-01-01 00:00:00")
    shop.order("M1", "2026-10-01 10:00:00", "3000", status="refunded", items=[("SKU0", 1, "3000")])
    shop.order("M1", "2025-01-01 10:00:00", "100")
    await shop.load(db, tmp_path)
    metrics, tags = await profile(db, "member_id:M1")
    assert metrics["orders_365d"] == 0 and metrics["orders_total"] == 1 and metrics["amount_total"] == 100
    assert metrics["last_active_date"] == "2025-01-01"  # the refund is no activity either
    assert "preferred_category" not in tags and "purchase_power" not in tags
    assert tags["lifecycle"] == "沉睡"


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("orders", "level", "expected"),
    [
        (["100", "100", "100"], "V0", "忠诚"),  # exactly 3 orders
        (["100", "100"], "V0", "购买"),
        (["2000.00"], "V0", "忠诚"),  # exactly 2000
        (["1999.99"], "V0", "购买"),
        (["10"], "V2", "忠诚"),  # level V2 with one order
        (["10"], "V1", "购买"),
    ],
)
async def test_loyal_at_its_thresholds(
    db: Database, tmp_path: Path, shop: Retailer, orders: list[str], level: str, expected: str
) -> None:
    shop.member("M1", level=level)
    for i, amount in enumerate(orders):
        shop.order("M1", f"2026-0{i + 1}-15 12:00:00", amount)
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["lifecycle"] == expected


@pytest.mark.parametrize(
    ("register_time", "old_order", "expected"),
    [
        ("2025-11-02 09:00:00", False, "注册"),  # first registration at T-364
        ("2025-11-01 09:00:00", False, "沉睡"),  # at T-365: last active in T-729..T-365
        ("2025-11-02 09:00:00", True, "认知"),  # registered in the window but bought before: not 注册
        ("2024-11-02 09:00:00", False, "沉睡"),  # T-729
        ("2024-11-01 09:00:00", False, "流失"),  # T-730
    ],
)
async def test_registration_dormancy_and_churn(
    db: Database, tmp_path: Path, shop: Retailer, register_time: str, old_order: bool, expected: str
) -> None:
    shop.member("M1", register_time=register_time)
    if old_order:
        shop.order("M1", "2020-05-05 10:00:00", "50")
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["lifecycle"] == expected


@pytest.mark.parametrize(
    ("event_type", "occurred_at", "expected"),
    [
        ("browse", "2025-11-02 00:00:00", "兴趣"),
        ("coupon_get", "2026-11-01 23:00:00", "兴趣"),
        ("message", "2026-01-01 10:00:00", "兴趣"),
        ("follow", "2026-01-01 10:00:00", "认知"),
        ("browse", "2025-11-01 23:59:59", "沉睡"),  # T-365: outside the window
    ],
)
async def test_interest_and_awareness(
    db: Database, tmp_path: Path, shop: Retailer, event_type: str, occurred_at: str, expected: str
) -> None:
    shop.member("M1", register_time="")  # a record without register_time: no registration date
    shop.event("M1", event_type, occurred_at, appid="wxA", openid="o1", card_id="C30", coupon_code="X1")
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["lifecycle"] == expected


# --------------------------------------------------------------------------- RFM, power, wallet, price


@pytest.mark.parametrize(
    ("paid_at", "expected"),
    [
        ("2026-08-03 10:00:00", "重要发展客户"),  # recency 90: R high
        ("2026-08-02 10:00:00", "重要挽留客户"),  # recency 91
    ],
)
async def test_rfm_recency_boundary(db: Database, tmp_path: Path, shop: Retailer, paid_at: str, expected: str) -> None:
    shop.member("M1")
    shop.order("M1", paid_at, "1000.00")  # M high exactly at 1000
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["rfm"] == expected


async def test_rfm_only_with_an_order_in_730_days(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1")
    shop.order("M1", "2024-11-02 10:00:00", "999.99")  # T-729
    shop.member("M2")
    shop.order("M2", "2024-11-01 10:00:00", "5000")  # T-730
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["rfm"] == "一般挽留客户"
    assert "rfm" not in (await profile(db, "member_id:M2"))[1]


@pytest.mark.parametrize(
    ("amounts", "power", "wallet"),
    [
        (["500.00"], "高", "中"),
        (["499.99"], "中", "中"),
        (["200.00"], "中", "浅"),
        (["199.99"], "低", "浅"),
        (["300.00", "100.00"], "中", "中"),  # aov 200 exactly; max 300 exactly
        (["1000.00", "1"], "中", "深"),  # aov 500.5 → 中? no: 高 — see assertion below
        (["299.99"], "中", "浅"),
        (["333.33", "333.33", "333.34"], "中", "中"),  # aov exactly 333.333… before rounding
    ],
)
async def test_purchase_power_and_wallet_depth(
    db: Database, tmp_path: Path, shop: Retailer, amounts: list[str], power: str, wallet: str
) -> None:
    shop.member("M1")
    for i, amount in enumerate(amounts):
        shop.order("M1", f"2026-0{i + 1}-10 10:00:00", amount)
    await shop.load(db, tmp_path)
    metrics, tags = await profile(db, "member_id:M1")
    aov = sum(float(a) for a in amounts) / len(amounts)  # independent: the plain definition
    assert tags["purchase_power"] == ("高" if aov >= 500 else "中" if aov >= 200 else "低")
    assert tags["wallet_depth"] == wallet
    assert metrics["aov_365d"] == pytest.approx(round(aov, 2), abs=0.005)


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        ([("100", "100", "C30-1"), ("100", "100", "")], "价格导向"),  # exactly half used a coupon
        ([("100", "100", "C30-1"), ("100", "100", ""), ("100", "100", "")], "品质导向"),
        ([("70.00", "100.00", "")], "价格导向"),  # discount exactly 0.3
        ([("70.01", "100.00", "")], "品质导向"),
        ([("50", "100", ""), ("200", "200", "")], "品质导向"),  # 1 - 250/300 = 0.1667
    ],
)
async def test_price_orientation(
    db: Database, tmp_path: Path, shop: Retailer, orders: list[tuple[str, str, str]], expected: str
) -> None:
    shop.member("M1")
    for i, (amount, list_amount, coupon) in enumerate(orders):
        shop.order("M1", f"2026-0{i + 1}-10 10:00:00", amount, list_amount=list_amount, coupon_code=coupon)
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["price_orientation"] == expected


# --------------------------------------------------------------------------- preferences and ties


async def test_preferred_category_ties(db: Database, tmp_path: Path, shop: Retailer) -> None:
    # M1: 连衣裙 and T恤 tie in amount; T恤 bought more recently.
    shop.member("M1")
    shop.order("M1", "2026-03-01 10:00:00", "200", items=[("SKU0", 2, "100")])
    shop.order("M1", "2026-04-01 10:00:00", "200", items=[("SKU1", 1, "200")])
    # M2: a tie in amount and time: Unicode order decides (T恤 < 外套).
    shop.member("M2")
    shop.order("M2", "2026-03-01 10:00:00", "400", items=[("SKU2", 1, "200"), ("SKU1", 1, "200")])
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["preferred_category"] == "T恤"
    assert (await profile(db, "member_id:M2"))[1]["preferred_category"] == min("T恤", "外套")


async def test_preferred_channel_and_store_ties(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.rows["stores"].append({"store_id": "S002", "name": "二店", "city": "上海", "region": "华东"})
    shop.member("M1")
    shop.order("M1", "2026-03-01 10:00:00", "100", channel="pos", store_id="S002")
    shop.order("M1", "2026-03-02 10:00:00", "100", channel="pos", store_id="S001")
    shop.order("M1", "2026-03-03 10:00:00", "150", channel="miniapp", store_id="")
    shop.order("M1", "2026-03-04 10:00:00", "60", channel="miniapp", store_id="")
    await shop.load(db, tmp_path)
    tags = (await profile(db, "member_id:M1"))[1]
    assert tags["preferred_channel"] == "小程序"  # 2 orders each; miniapp's 210 > pos's 200
    assert tags["preferred_store"] == "S001"  # 1 order each; S001 more recent


async def test_core_sku(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1")
    for month, skus in enumerate([["SKU0", "SKU1", "SKU2", "SKU3"], ["SKU0", "SKU1", "SKU3"], ["SKU0", "SKU2"]], 1):
        shop.order("M1", f"2026-0{month}-10 10:00:00", "100", items=[(s, 1, "25") for s in skus])
    shop.order("M1", "2026-05-10 10:00:00", "100", status="refunded", items=[("SKU4", 1, "100")])
    shop.order("M1", "2026-06-10 10:00:00", "100", items=[("SKU4", 2, "50")])  # twice in ONE order
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["core_sku"] == ["SKU0", "SKU1", "SKU2"]  # SKU3 cut at 3


# --------------------------------------------------------------------------- coupons, follows, contacts


@pytest.mark.parametrize(
    ("got_at", "fate", "outstanding"),
    [
        ("2026-10-02 10:00:00", None, True),  # expires on T (get date + 30 = T)
        ("2026-10-01 10:00:00", None, False),  # expired the day before
        ("2026-10-20 10:00:00", "coupon_consume", False),
        ("2026-10-20 10:00:00", "coupon_delete", False),
    ],
)
async def test_coupon_outstanding(
    db: Database, tmp_path: Path, shop: Retailer, got_at: str, fate: str | None, outstanding: bool
) -> None:
    shop.member("M1")
    shop.event("M1", "coupon_get", got_at, card_id="C30", coupon_code="K1")
    if fate:
        shop.event("M1", fate, "2026-10-25 10:00:00", card_id="C30", coupon_code="K1")
    await shop.load(db, tmp_path)
    assert ((await profile(db, "member_id:M1"))[1].get("coupon_outstanding") == "是") is outstanding


async def test_coupon_redemption_rate(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1")
    for code, day in (("K1", "2026-01-05"), ("K2", "2026-02-05"), ("K3", "2026-03-05"), ("K0", "2025-10-01")):
        shop.event("M1", "coupon_get", f"{day} 10:00:00", card_id="C30", coupon_code=code)
    shop.event("M1", "coupon_consume", "2026-01-06 10:00:00", card_id="C30", coupon_code="K1")
    shop.event("M1", "coupon_consume", "2025-10-02 10:00:00", card_id="C30", coupon_code="K0")  # got outside
    shop.event("M1", "coupon_consume", "2026-11-02 10:00:00", card_id="C30", coupon_code="K2")  # after T
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["coupon_redemption_rate"] == round(1 / 3, 4)


async def test_follow_contact_guides_and_source(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1")
    shop.event("M1", "follow", "2026-01-01 10:00:00", appid="wxA", openid="oA", qr_state="store_S001")
    shop.event("M1", "unfollow", "2026-02-01 10:00:00", appid="wxA", openid="oA")
    shop.event("M1", "follow", "2026-03-01 10:00:00", appid="wxB", openid="oB", qr_state="poster")
    shop.event("M1", "add_contact", "2025-12-01 10:00:00", external_userid="wmX", guide_id="G2", qr_state="")
    shop.event("M1", "add_contact", "2026-01-01 10:00:00", external_userid="wmX", guide_id="G1")
    shop.event("M1", "del_contact", "2026-02-01 10:00:00", external_userid="wmX", guide_id="G1")
    shop.event("M1", "add_contact", "2026-02-02 10:00:00", external_userid="wmX", guide_id="G3")
    shop.member("M2")
    shop.event("M2", "follow", "2026-01-01 10:00:00", appid="wxA", openid="oC")
    shop.event("M2", "unfollow", "2026-01-02 10:00:00", appid="wxA", openid="oC")
    await shop.load(db, tmp_path)
    tags = (await profile(db, "member_id:M1"))[1]
    assert tags["oa_follower"] == "是"  # wxB still followed
    assert tags["guides"] == ["G2", "G3"] and tags["wecom_contact"] == "是"
    assert tags["source"] == "store_S001"  # the first event carrying a qr_state
    tags2 = (await profile(db, "member_id:M2"))[1]
    assert "oa_follower" not in tags2 and "wecom_contact" not in tags2 and "source" not in tags2


# --------------------------------------------------------------------------- member records


async def test_several_member_records(db: Database, tmp_path: Path, shop: Retailer) -> None:
    same = "oU0001"  # one person: four cards with the same unionid (a shared phone would not merge 3+)
    shop.member("M1", unionid=same, level="V3", city="北京", gender="M", birthday="1990-03-04",
                register_time="2021-01-01 10:00:00")
    shop.member("M2", unionid=same, level="V1", city="上海", gender="F", birthday="1991-07-08",
                register_time="2023-01-01 10:00:00")
    shop.member("M3", unionid=same, level="V0", city="广州", register_time="")  # no time: the oldest
    shop.member("M4", unionid=same, level="V5", city="成都", register_time="2026-11-02 09:00:00")  # after T
    await shop.load(db, tmp_path)
    tags = (await profile(db, "member_id:M1"))[1]
    assert tags["level"] == "V3"  # the highest of the records that exist at T
    assert (tags["city"], tags["gender"], tags["birthday_month"]) == ("上海", "F", 7)
    assert tags["is_member"] == "是"
    later = (await profile(db, "member_id:M1", as_of=T.replace(day=2)))[1]
    assert later["level"] == "V5" and later["city"] == "成都"


async def test_same_register_time_the_later_row_wins(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1", phone="13900000002", city="北京", register_time="2022-01-01 10:00:00")
    shop.member("M2", phone="13900000002", city="杭州", register_time="2022-01-01 10:00:00")
    await shop.load(db, tmp_path)
    assert (await profile(db, "member_id:M1"))[1]["city"] == "杭州"


async def test_a_member_registered_after_t_does_not_exist_yet(db: Database, tmp_path: Path, shop: Retailer) -> None:
    shop.member("M1", register_time="2026-11-05 10:00:00")
    shop.event("M1", "browse", "2026-10-01 10:00:00", sku="SKU0")
    await shop.load(db, tmp_path)
    tags = (await profile(db, "member_id:M1"))[1]
    assert "is_member" not in tags and "level" not in tags
    assert tags["browse_preference"] == "连衣裙"  # the product's category when the event has none
