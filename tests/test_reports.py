"""Reports (profile_store.reports) on both back-ends, and their chart and text (bot.report_chart).

Every expected figure below is computed by hand from the retailer `shop()` builds (see the
comments there), never by the code under test. T is 2026-11-24, so 上个月 is October 2026.
"""

from __future__ import annotations

import struct
import subprocess
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import texts
from bot.report_chart import cjk_font, render_chart, render_text, save_chart
from nlp import segment as seg
from nlp.intent import ReportCommand, ReportDimension
from nlp.segment import Window
from profile_store.db import Database
from profile_store.reports import Report, ReportRow, report
from profile_store.tagging.refresh import refresh_all
from tests.tag_kit import Retailer, person_of

T = date(2026, 11, 24)
OCTOBER = Window("month", -1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def shop() -> Retailer:
    """Three stores; members A..H; October's paid orders, one refund, the edges of the month.

    Lifecycles as of T: 忠诚 B (V2 + an order), C (Σ 2,388 ≥ 2,000); 购买 A, E; 注册 F (registered
    2026-06); 兴趣 H (a click in October); 沉睡 G (last active 2025-03-01); 流失 D (refund only).
    """
    r = Retailer()
    r.rows["stores"].append({"store_id": "S002", "name": "北京一店", "city": "北京", "region": "华北"})
    r.rows["stores"].append({"store_id": "S003", "name": "上海二店", "city": "上海", "region": "华东"})
    r.member("A")
    r.member("B", level="V2")
    r.member("C")
    r.member("D")
    r.member("E")
    r.member("F", register_time="2026-06-01 10:00:00")
    r.member("G")
    r.member("H")
    # October (paid): pos 100.00 + 250.50 + 66.60 + 49.90 = 467.00; miniapp 300.25; ecom 1,200.00
    r.order("A", "2026-10-01 00:00:00", "100.00", order_id="O-first")  # the month's first instant: in
    r.order("B", "2026-10-31 23:59:59", "250.50", store_id="S002", order_id="O-last")  # its last: in
    r.order("", "2026-10-20 10:00:00", "66.60", store_id="S003", order_id="O-nobody")  # unattributed
    r.order("B", "2026-10-20 15:00:00", "49.90")
    r.order(
        "A",
        "2026-10-15 12:00:00",
        "300.25",
        channel="miniapp",
        store_id="",
        items=[("SKU0", 1, "200.25"), ("SKU1", 2, "50")],
    )  # 连衣裙 200.25, T恤 100.00
    r.order(
        "E", "2026-10-05 09:00:00", "1200", channel="ecom", store_id="", items=[("SKU0", 1, "1000"), ("SKU9", 1, "200")]
    )  # 连衣裙 1,000.00, unknown product 200.00
    r.order("D", "2026-10-10 10:00:00", "5000", status="refunded", items=[("SKU2", 1, "5000")])  # never
    r.order(
        "C", "2026-09-30 23:59:59", "1500", channel="miniapp", store_id="", items=[("SKU0", 1, "1500")]
    )  # just before October
    r.order("C", "2026-11-01 00:00:00", "888", channel="miniapp", store_id="")  # just after October
    # campaign 双11 in October: received A B E F H; coupons K1..K4; K1, K2 consumed by T; A, B bought after
    r.event("A", "coupon_get", "2026-09-20 10:00:00", card_id="C30", coupon_code="K5", campaign_id="双11")  # before
    r.event("A", "coupon_consume", "2026-10-02 10:00:00", card_id="C30", coupon_code="K5")
    r.event("A", "coupon_get", "2026-10-10 10:00:00", card_id="C30", coupon_code="K1", campaign_id="双11")
    r.event("A", "coupon_consume", "2026-10-15 12:00:00", card_id="C30", coupon_code="K1")
    r.event("B", "coupon_get", "2026-10-25 10:00:00", card_id="C30", coupon_code="K2", campaign_id="双11")
    r.event("B", "coupon_consume", "2026-11-05 10:00:00", card_id="C30", coupon_code="K2")  # after October, by T
    r.event("E", "coupon_get", "2026-10-20 10:00:00", card_id="C30", coupon_code="K3", campaign_id="双11")
    r.event("F", "coupon_get", "2026-10-28 10:00:00", card_id="C30", coupon_code="K4", campaign_id="双11")
    r.event("F", "coupon_consume", "2026-11-25 10:00:00", card_id="C30", coupon_code="K4")  # after T: not yet
    r.event("H", "click", "2026-10-05 10:00:00", campaign_id="双11")
    r.event("C", "coupon_get", "2026-11-01 00:00:00", card_id="C30", coupon_code="K6", campaign_id="双11")  # Nov
    # campaign 618 in October: C gets and consumes K7 (C has no October order); H clicks
    r.event("C", "coupon_get", "2026-10-03 10:00:00", card_id="C30", coupon_code="K7", campaign_id="618")
    r.event("C", "coupon_consume", "2026-10-04 10:00:00", card_id="C30", coupon_code="K7")
    r.event("H", "click", "2026-10-06 10:00:00", campaign_id="618")
    r.event("G", "browse", "2025-03-01 10:00:00", sku="SKU0")
    return r


@pytest.fixture
async def loaded(db: Database, tmp_path: Path) -> Database:
    await shop().load(db, tmp_path / "shop")
    await refresh_all(db, T)
    async with db.read() as session:
        nobody = (await session.execute(text("SELECT person_id FROM orders WHERE order_id = 'O-nobody'"))).scalar_one()
    assert nobody is None, "the order without identifiers is unattributed"
    return db


async def run(db: Database, command: ReportCommand, members: list[str] | None = None) -> Report:
    async with db.read() as session:
        return await report(session, command, T, members=members)


async def ids(db: Database, *members: str) -> list[str]:
    return [await person_of(db, m) for m in members]


def table_of(figures: Report) -> list[tuple[object, ...]]:
    return [(row.key, *row.values) for row in figures.rows]


# ---------------------------------------------------------------------------------- order figures


async def test_sales_by_channel_last_month(loaded: Database) -> None:
    figures = await run(
        loaded, ReportCommand(measures=("sales", "orders", "customers", "aov"), by="channel", window=OCTOBER)
    )
    assert (figures.kind, figures.first, figures.last) == ("figures", date(2026, 10, 1), date(2026, 10, 31))
    assert figures.columns == ("sales", "orders", "customers", "aov")
    # unattributed O-nobody counts in pos's sales and orders, not in its customers (A, B)
    assert table_of(figures) == [
        ("ecom", 120_000, 1, 1, 120_000),
        ("pos", 46_700, 4, 2, 11_675),
        ("miniapp", 30_025, 1, 1, 30_025),
    ]
    # 196,725 fen / 6 orders = 32,787.5 → 32,788 (half up); customers A, B, E
    assert figures.totals == (196_725, 6, 3, 32_788)


async def test_only_the_asked_measure_and_the_default_window(loaded: Database) -> None:
    figures = await run(loaded, ReportCommand(by="channel", window=OCTOBER))
    assert figures.columns == ("sales",)
    assert table_of(figures) == [("ecom", 120_000), ("pos", 46_700), ("miniapp", 30_025)]
    # no window: the last 30 days, 2026-10-26 .. T: B's 250.50 (10-31) and C's 888.00 (11-01)
    recent = await run(loaded, ReportCommand(measures=("sales", "orders")))
    assert (recent.first, recent.last, recent.rows, recent.totals) == (date(2026, 10, 26), T, (), (113_850, 2))


async def test_by_store_and_city(loaded: Database) -> None:
    stores = await run(loaded, ReportCommand(measures=("sales", "orders"), by="store", window=OCTOBER))
    assert [(row.key, row.name, *row.values) for row in stores.rows] == [
        ("", "", 150_025, 2),  # online orders have no store
        ("S002", "北京一店", 25_050, 1),
        ("S001", "上海一店", 14_990, 2),
        ("S003", "上海二店", 6_660, 1),  # the unattributed order
    ]
    cities = await run(loaded, ReportCommand(measures=("sales",), by="city", window=OCTOBER))
    assert table_of(cities) == [("", 150_025), ("北京", 25_050), ("上海", 21_650)]
    assert cities.totals == (196_725,)


async def test_by_category(loaded: Database) -> None:
    figures = await run(loaded, ReportCommand(measures=("sales", "orders", "customers"), by="category", window=OCTOBER))
    # Σ qty × unit_price of October's paid lines (D's refunded SKU2 and C's September SKU0 never)
    assert table_of(figures) == [("连衣裙", 120_025, 2, 2), ("", 20_000, 1, 1), ("T恤", 10_000, 1, 1)]
    assert figures.totals == (150_025, 2, 2)


async def test_segment_restriction(loaded: Database) -> None:
    among = await ids(loaded, "A", "B")
    figures = await run(
        loaded, ReportCommand(measures=("sales", "orders", "customers"), by="channel", window=OCTOBER), members=among
    )
    # A: 100.00 pos + 300.25 miniapp; B: 250.50 + 49.90 pos; the unattributed order is nobody's
    assert table_of(figures) == [("pos", 40_040, 3, 2), ("miniapp", 30_025, 1, 1)]
    assert (figures.totals, figures.members) == ((70_065, 4, 2), 2)
    nobody = await run(loaded, ReportCommand(measures=("sales", "aov"), by="store", window=OCTOBER), members=[])
    assert (nobody.rows, nobody.totals, nobody.empty) == ((), (0, 0), True)


async def test_restriction_by_a_segment_tree(loaded: Database) -> None:
    """The segment's compiled SELECT joined in (no ids through Python): 购买 = A and E as of T."""
    buyers = seg.Tag("lifecycle", seg.eq("购买"))

    async def run_segment(command: ReportCommand, tree: seg.Segment) -> Report:
        async with loaded.read() as session:
            return await report(session, command, T, segment=tree)

    figures = await run_segment(
        ReportCommand(measures=("sales", "orders", "customers"), by="channel", window=OCTOBER), buyers
    )
    # A: 100.00 pos + 300.25 miniapp; E: 1,200.00 ecom
    assert table_of(figures) == [("ecom", 120_000, 1, 1), ("miniapp", 30_025, 1, 1), ("pos", 10_000, 1, 1)]
    assert (figures.totals, figures.members) == ((160_025, 3, 2), 2)
    # the category lines of A's and E's orders: 连衣裙 200.25 + 1,000.00, T恤 100.00, unknown 200.00
    categories = await run_segment(ReportCommand(measures=("sales",), by="category", window=OCTOBER), buyers)
    assert table_of(categories) == [("连衣裙", 120_025), ("", 20_000), ("T恤", 10_000)]
    # the funnel of 双11 among A and E: both received, K1 (A) consumed, A bought after the touch
    funnel = await run_segment(ReportCommand(measures=("redemption",), window=OCTOBER, campaign="双11"), buyers)
    assert table_of(funnel) == [
        ("received", 2, None), ("coupons", 2, None), ("redeemed", 1, 0.5), ("converted", 1, 0.5)]
    # tag distribution within 购买 or 忠诚 (A, E; B, C)
    either = seg.any_of(buyers, seg.Tag("lifecycle", seg.eq("忠诚")))
    spread = await run_segment(ReportCommand(measures=("customers",), by="lifecycle"), either)
    assert (table_of(spread), spread.members) == ([("忠诚", 2), ("购买", 2)], 4)
    # D (流失) only refunded: one person, no figures
    lost = await run_segment(ReportCommand(measures=("sales", "orders"), by="store", window=OCTOBER),
                             seg.Tag("lifecycle", seg.eq("流失")))
    assert (lost.members, lost.rows, lost.totals, lost.empty) == (1, (), (0, 0), True)


async def test_no_data_is_zeros(db: Database) -> None:
    await db.migrate()
    dimensions: tuple[ReportDimension | None, ...] = (None, "channel", "store", "city", "category", "lifecycle", "rfm")
    for by in dimensions:
        figures = await run(db, ReportCommand(measures=("sales", "orders", "customers", "aov"), by=by))
        assert (figures.rows, figures.totals) == ((), (0, 0, 0, 0)), by
    funnel = await run(db, ReportCommand(measures=("conversion", "redemption"), campaign="双11"))
    assert table_of(funnel) == [
        ("received", 0, None),
        ("coupons", 0, None),
        ("redeemed", 0, 0.0),
        ("converted", 0, 0.0),
    ]


# ---------------------------------------------------------------------------------- tag distributions


async def test_lifecycle_distribution(loaded: Database) -> None:
    figures = await run(loaded, ReportCommand(measures=("customers",), by="lifecycle", window=OCTOBER))
    assert table_of(figures) == [("忠诚", 2), ("购买", 2), ("注册", 1), ("兴趣", 1), ("沉睡", 1), ("流失", 1)]
    assert figures.totals == (8,)
    # sales by lifecycle: October's paid orders of 忠诚 (B) and 购买 (A, E) persons
    sales = await run(loaded, ReportCommand(measures=("sales", "orders", "customers"), by="lifecycle", window=OCTOBER))
    assert table_of(sales)[:3] == [("忠诚", 30_040, 2, 2), ("购买", 160_025, 3, 2), ("注册", 0, 0, 1)]
    assert sales.totals == (190_065, 5, 8)
    among = await run(
        loaded, ReportCommand(measures=("customers",), by="lifecycle"), members=await ids(loaded, "A", "B", "F")
    )
    assert table_of(among) == [("忠诚", 1), ("购买", 1), ("注册", 1)]


async def test_rfm_distribution(loaded: Database) -> None:
    # A 一般价值 (R, F; 400.25), B 一般价值 (R, F; 300.40), C 重要价值 (2,388.00), E 重要发展 (F low);
    # nobody else has an order in 730 days
    figures = await run(loaded, ReportCommand(measures=("customers",), by="rfm"))
    assert table_of(figures) == [("重要价值客户", 1), ("重要发展客户", 1), ("一般价值客户", 2)]
    assert figures.totals == (4,)


# ---------------------------------------------------------------------------------- campaigns


async def test_campaign_redemption_and_conversion(loaded: Database) -> None:
    figures = await run(loaded, ReportCommand(measures=("redemption", "conversion"), window=OCTOBER, campaign="双11"))
    assert (figures.kind, figures.campaign_ids) == ("campaign", ("双11",))
    # received A B E F H; coupons K1..K4, K1 and K2 consumed by T (K4 after T); A and B bought after
    # their first touch (E's order was before it)
    assert table_of(figures) == [
        ("received", 5, None),
        ("coupons", 4, None),
        ("redeemed", 2, 0.5),
        ("converted", 2, 0.4),
    ]
    among = await run(
        loaded,
        ReportCommand(measures=("redemption",), window=OCTOBER, campaign="双11"),
        members=await ids(loaded, "A", "E"),
    )
    assert table_of(among) == [("received", 2, None), ("coupons", 2, None), ("redeemed", 1, 0.5), ("converted", 1, 0.5)]


async def test_campaign_edges_and_zero_cases(loaded: Database) -> None:
    # November so far: C got K6 at 11-01 00:00:00 and ordered at that same second (at or after: converted)
    november = await run(loaded, ReportCommand(measures=("conversion",), window=Window("month", 0), campaign="双11"))
    assert table_of(november) == [
        ("received", 1, None),
        ("coupons", 1, None),
        ("redeemed", 0, 0.0),
        ("converted", 1, 1.0),
    ]
    august = Window("dates", start=date(2026, 8, 1), end=date(2026, 8, 31))
    quiet = await run(loaded, ReportCommand(measures=("conversion", "redemption"), window=august, campaign="双11"))
    assert table_of(quiet) == [("received", 0, None), ("coupons", 0, None), ("redeemed", 0, 0.0), ("converted", 0, 0.0)]
    unknown = await run(loaded, ReportCommand(measures=("redemption",), window=OCTOBER, campaign="不存在"))
    assert (unknown.campaign_ids, table_of(unknown)[2]) == ((), ("redeemed", 0, 0.0))
    assert texts.REPORT_CAMPAIGN_UNKNOWN.format(campaign="不存在") in render_text(unknown)


async def test_rates_without_a_campaign_cover_every_campaign(loaded: Database) -> None:
    # + 618: C received and got K7 (consumed 10-04), no October order; H is counted once
    figures = await run(loaded, ReportCommand(measures=("redemption", "conversion"), window=OCTOBER))
    assert (figures.kind, figures.campaign) == ("campaign", None)
    assert table_of(figures) == [
        ("received", 6, None),
        ("coupons", 5, None),
        ("redeemed", 3, 0.6),
        ("converted", 2, pytest.approx(1 / 3)),
    ]


# ---------------------------------------------------------------------------------- text and chart


def _channels() -> Report:
    return Report(
        kind="figures",
        measures=("sales", "orders"),
        by="channel",
        columns=("sales", "orders"),
        rows=(ReportRow("ecom", (120_000, 1)), ReportRow("pos", (46_700, 4)), ReportRow("miniapp", (30_025, 1))),
        totals=(196_725, 6),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
    )


def _funnel() -> Report:
    return Report(
        kind="campaign",
        measures=("redemption", "conversion"),
        by=None,
        columns=("count", "rate"),
        rows=(
            ReportRow("received", (5, None)),
            ReportRow("coupons", (4, None)),
            ReportRow("redeemed", (2, 0.5)),
            ReportRow("converted", (2, 0.4)),
        ),
        totals=(),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
        campaign="双11",
        campaign_ids=("双11",),
    )


def test_text_of_a_breakdown() -> None:
    assert render_text(_channels()).splitlines() == [
        "各渠道销售额、订单数（2026-10-01至2026-10-31）",
        "电商：销售额 1,200.00元，订单数 1单",
        "门店：销售额 467.00元，订单数 4单",
        "小程序：销售额 300.25元，订单数 1单",
        "合计：销售额 1,967.25元，订单数 6单",
    ]


def test_text_of_a_distribution_a_campaign_and_nothing() -> None:
    lifecycle = Report(
        kind="figures",
        measures=("customers",),
        by="lifecycle",
        columns=("customers",),
        rows=(ReportRow("忠诚", (1,)), ReportRow("流失", (3,))),
        totals=(4,),
        first=date(2026, 10, 26),
        last=T,
        as_of=T,
        members=4,
    )
    assert render_text(lifecycle).splitlines() == [
        "生命周期分布（截至2026-11-24）",
        "范围：所选人群（4人）",
        "忠诚：1人（占25.00%）",
        "流失：3人（占75.00%）",
        "合计：4人",
    ]
    assert render_text(_funnel()).splitlines() == [
        "双11活动复盘（2026-10-01至2026-10-31）",
        "触达人数：5人",
        "领券数：4张",
        "核销数：2张，核销率 50.00%",
        "转化人数：2人，转化率 40.00%",
    ]
    empty = Report(
        kind="figures",
        measures=("sales",),
        by="store",
        columns=("sales",),
        rows=(),
        totals=(0,),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
    )
    assert render_text(empty).splitlines() == ["各门店销售额（2026-10-01至2026-10-31）", texts.REPORT_NO_DATA]
    total = Report(
        kind="figures",
        measures=("sales", "aov"),
        by=None,
        columns=("sales", "aov"),
        rows=(),
        totals=(5, 123_456_789),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
    )
    assert render_text(total).splitlines()[1] == "销售额 0.05元，客单价 1,234,567.89元"


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.mark.parametrize("figures", [_channels(), _funnel()], ids=["breakdown", "campaign"])
def test_chart_is_an_800_by_500_png(figures: Report, tmp_path: Path) -> None:
    from PIL import Image  # installed with matplotlib

    png = render_chart(figures)
    assert _png_size(png) == (800, 500)
    image = Image.open(save_chart(png, tmp_path, "k/../1"))
    image.load()
    assert (image.format, image.size) == ("PNG", (800, 500))
    assert render_chart(figures) == png  # the same report, the same bytes


def test_chart_of_nothing_and_of_many_rows(tmp_path: Path) -> None:
    many = Report(
        kind="figures",
        measures=("sales", "orders", "customers", "aov"),
        by="store",
        columns=("sales", "orders", "customers", "aov"),
        rows=tuple(ReportRow(f"S{i:03d}", (i * 10_000, i, i, 10_000), name=f"上海第{i}店") for i in range(40, 0, -1)),
        totals=(1, 1, 1, 1),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
    )
    empty = Report(
        kind="figures",
        measures=("sales",),
        by="store",
        columns=("sales",),
        rows=(),
        totals=(0,),
        first=date(2026, 10, 1),
        last=date(2026, 10, 31),
        as_of=T,
    )
    for figures in (many, empty):
        assert _png_size(render_chart(figures)) == (800, 500)
    assert "另有20项" in render_text(many)
    path = save_chart(b"\x89PNG", tmp_path / "media", "abc")
    assert path == (tmp_path / "media" / "reports" / "abc.png").resolve() and path.read_bytes() == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["abc.png"]  # no temporary file left behind


def test_a_cjk_font_is_found() -> None:
    """Chinese labels need a CJK font; scripts/test installs fonts-wqy-microhei when fc-list has none."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    except OSError:
        pytest.skip("fontconfig (fc-list) not installed")
    if not listed.strip():
        pytest.skip("no CJK font installed (scripts/test installs fonts-wqy-microhei)")
    assert cjk_font() is not None


def test_without_a_cjk_font_the_chart_still_renders(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from matplotlib import font_manager

    import bot.report_chart as chart

    monkeypatch.setattr(
        font_manager.fontManager,
        "ttflist",
        [f for f in font_manager.fontManager.ttflist if f.name not in chart.CJK_FONTS],
    )
    monkeypatch.setattr(chart.shutil, "which", lambda _name: None)
    chart.cjk_font.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="bot.report_chart"), pytest.warns(UserWarning, match="[Gg]lyph"):
            assert _png_size(render_chart(_channels())) == (800, 500)
            assert _png_size(render_chart(_funnel())) == (800, 500)
        assert [r.levelname for r in caplog.records if r.name == "bot.report_chart"] == ["WARNING"]  # once
    finally:
        chart.cjk_font.cache_clear()
