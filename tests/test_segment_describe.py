"""Segments read back in plain Chinese (nlp.describe)."""

from __future__ import annotations

from datetime import date

from nlp.describe import describe
from nlp.segment import (
    And,
    Bought,
    CampaignTouch,
    CartNotBought,
    Compare,
    CouponHeld,
    Did,
    Everyone,
    FirstOrder,
    GuideHolds,
    Item,
    Label,
    Not,
    Or,
    OrderMetric,
    Returning,
    Saved,
    StoreCity,
    Tag,
    Where,
    Window,
    days,
    eq,
)
from nlp.vocabulary import GuideWord, StoreWord, Vocabulary

T = date(2026, 11, 1)
VOCAB = Vocabulary(
    stores=(StoreWord("S001", "上海一店", "上海"),), guides=(GuideWord("G001", "张三", "S001", "guide"),)
)


def test_the_examples_of_commands_md() -> None:
    assert describe(And((Tag("city", eq("上海")), Tag("lifecycle", eq("忠诚"))))) == "城市为上海，且生命周期为忠诚"
    example_1 = And(
        (
            OrderMetric("count", Compare("ge", 2), days(90)),
            OrderMetric("aov", Compare("gt", 30_000), days(90)),
            Tag("lifecycle", eq("沉睡")),
            Tag("is_member", eq("是")),
        )
    )
    assert describe(example_1) == "近90天消费次数≥2次，且近90天客单价>300元，且生命周期为沉睡，且是会员"
    assert describe(example_1, today=T).startswith("近90天（2026-08-04至2026-11-01）消费次数≥2次")
    example_3 = And(
        (
            Did("browse", days(7), Item("category", "连衣裙")),
            Not(Bought(days(7), Item("category", "连衣裙"))),
            Tag("oa_follower", eq("是")),
        )
    )
    assert describe(example_3) == "近7天浏览过连衣裙，且近7天没有买过连衣裙，且是公众号粉丝"
    example_8 = And(
        (
            OrderMetric("amount", Compare("ge", 500_000), Window("year", 0)),
            Not(Bought(days(90))),
            Tag("gender", eq("F")),
            Tag("is_member", eq("是")),
        )
    )
    assert describe(example_8) == "今年消费金额≥5000元，且近90天没有购买，且是女性，且是会员"


def test_names_money_windows_and_negations() -> None:
    assert describe(Tag("preferred_store", eq("S001")), VOCAB) == "常去门店为上海一店（S001）"
    assert describe(Tag("preferred_store", eq("S404")), VOCAB) == "常去门店为S404"
    assert describe(GuideHolds("G001"), VOCAB) == "导购张三（G001）的好友"
    assert describe(OrderMetric("max", Compare("gt", 100_050), Window("month", -1)), today=T) == (
        "上个月（2026-10-01至2026-10-31）单笔最高>1000.5元"
    )
    assert describe(Bought(Window("festival", name="双11"), where=Where(store_id="S001")), VOCAB) == (
        "双11在上海一店（S001）有购买"
    )
    assert describe(Bought(days(30), where=Where(channels=("miniapp", "ecom", "oa_mall")))) == (
        "近30天在小程序、电商或公众号商城有购买"
    )
    assert describe(Tag("level", Compare("ge", "V3"))) == "会员等级V3及以上"
    assert describe(Not(Tag("lifecycle", eq("忠诚")))) == "生命周期不是忠诚"
    assert describe(Tag("city", eq(None))) == "没有城市"
    assert describe(Not(And((Label("VIP"), StoreCity("上海"))))) == "不满足（有“VIP”标签，且常去门店在上海）"
    assert describe(Or((Label("VIP"), And((StoreCity("上海"), Tag("is_member", eq("是"))))))) == (
        "有“VIP”标签，或（常去门店在上海，且是会员）"
    )
    assert describe(Everyone()) == "所有顾客"
    assert describe(Saved("上海忠诚")) == "人群“上海忠诚”"


def test_every_node_reads_and_every_phrase_comes_from_texts() -> None:
    nodes = [
        CartNotBought(days(30), Item("sku", "SKU1")),
        CouponHeld(days(30)),
        CampaignTouch("双11", "redeemed"),
        Not(CampaignTouch("618", "joined")),
        FirstOrder(),
        Returning(days(90)),
        OrderMetric("amount", Compare("between", 10_000, 50_000), days(365), item=Item("brand", "木棉")),
        Tag("coupon_redemption_rate", Compare("ge", 0.5)),
        Tag("birthday_month", eq(12)),
        Tag("guides", eq("G001")),
        Saved(),
    ]
    readings = [describe(n, VOCAB, T) for n in nodes]
    assert all(readings)
    assert readings[6] == "近365天（2025-11-02至2026-11-01）购买木棉品牌的金额在100元至500元之间"
    assert readings[7] == "券核销率≥50%"
    assert readings[8] == "生日在12月"


def test_readings_say_what_the_tree_says_in_plain_chinese() -> None:
    # a city is the member record's city: no "会员" the tree does not say
    assert describe(Tag("city", eq("上海"))) == "城市为上海"
    assert describe(Not(Tag("city", eq("上海")))) == "城市不是上海"
    assert describe(Tag("gender", eq("F"))) == "是女性"
    # a campaign named …活动 is not read "…活动活动"
    assert describe(CampaignTouch("会员日活动", "received")) == "收到过会员日活动"
    assert describe(Not(CampaignTouch("会员日活动", "redeemed"))) == "没有核销过会员日活动的券"
    assert describe(CampaignTouch("CP001", "joined")) == "参加过CP001活动"
    # brands, held coupons
    assert describe(Bought(days(30), Item("brand", "木棉"))) == "近30天买过木棉品牌"
    assert describe(Tag("coupon_outstanding", eq("是"))) == "持有已领取未核销的券"
    assert describe(CouponHeld(days(30))) == "近30天领的券中有至今未核销的"
    # "at any time" (老客 after 半年内没回购) has no dates to show
    ever = And((Not(Bought(days(180))), Bought(Window("days", 36_500))))
    assert describe(ever, today=T) == "近180天（2026-05-06至2026-11-01）没有购买，且曾经有购买"
    # not ≥ 2 orders is < 2 (counts and sums are 0 without orders); not for aov, absent then
    assert describe(Not(OrderMetric("count", Compare("ge", 2), days(365)))) == "近365天消费次数<2次"
    assert describe(Not(OrderMetric("amount", Compare("gt", 100_000), days(30)))) == "近30天消费金额≤1000元"
    assert describe(Not(OrderMetric("aov", Compare("gt", 30_000), days(30)))) == "不满足（近30天客单价>300元）"
    only_online = And(
        (
            Bought(days(365), where=Where(channels=("miniapp", "ecom", "oa_mall"))),
            Not(Bought(days(365), where=Where(channels=("pos",)))),
        )
    )
    assert describe(only_online) == "近365天在小程序、电商或公众号商城有购买，且近365天在门店没有购买"
    assert describe(Did("add_contact", Window("week", -1))) == "上周添加过导购企微"


def test_a_report_is_read_back_with_its_window_breakdown_and_segment() -> None:
    from nlp.describe import describe_report
    from nlp.intent import ReportCommand

    last_month = Window("month", -1)
    among = And((Tag("price_orientation", eq("价格导向")), Tag("is_member", eq("是"))))
    assert (
        describe_report(ReportCommand(("sales", "orders"), "channel", last_month, segment=among), VOCAB, T)
        == "上个月（2026-10-01至2026-10-31）各渠道的销售额、订单数，只统计：购买类型为价格导向，且是会员"
    )
    # no window: the last 30 days, T included; no segment: nothing about whom
    assert describe_report(ReportCommand(("sales",)), VOCAB, T) == "近30天（2026-10-03至2026-11-01）的销售额"
    # a distribution is of T, never of a window; a store of the segment by its name
    assert (
        describe_report(ReportCommand(("customers",), "lifecycle", segment=Tag("preferred_store", eq("S001"))),
                        VOCAB, T)
        == "生命周期分布（截至2026-11-01），只统计：常去门店为上海一店（S001）"
    )
    assert (
        describe_report(ReportCommand(("conversion", "redemption"), None, last_month, "双11"), VOCAB, T)
        == "上个月（2026-10-01至2026-10-31）双11活动的转化率、核销率"
    )
