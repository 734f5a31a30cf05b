"""The command parser against hand-built trees (commands.md): conditions, comparisons, windows
and their carry-over, negation and its object, places, unknown names, unplaced words, and the
command families. Vocabulary from the sample retailer's CSVs; T = 2026-11-01 (a Sunday)."""

from __future__ import annotations

import csv
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nlp.examples import EXAMPLES
from nlp.intent import (
    CampaignCommand,
    CouponOffer,
    HelpCommand,
    LabelCommand,
    NotUnderstood,
    PersonRef,
    PortraitCommand,
    ReplyCommand,
    ReportCommand,
    SegmentCommand,
)
from nlp.parse import parse_command, parse_segment
from nlp.segment import (
    DEFAULT_WINDOW,
    ONLINE,
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
    OrderMetric,
    Returning,
    Saved,
    Segment,
    StoreCity,
    Tag,
    Where,
    Window,
    all_of,
    any_of,
    days,
    eq,
)
from nlp.vocabulary import GuideWord, StoreWord, Vocabulary

DATA = Path(__file__).parent / "fixtures" / "sample" / "data"
T = date(2026, 11, 1)
SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=SH)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def vocab() -> Vocabulary:
    products = _rows("products.csv")
    return Vocabulary(
        stores=tuple(StoreWord(r["store_id"], r["name"], r["city"]) for r in _rows("stores.csv")),
        guides=tuple(GuideWord(r["guide_id"], r["name"], r["store_id"], r["role"]) for r in _rows("guides.csv")),
        categories=tuple(sorted({p["category"] for p in products})),
        brands=tuple(sorted({p["brand"] for p in products})),
        skus=tuple(p["sku"] for p in products),
        coupons=tuple((r["card_id"], r["name"]) for r in _rows("coupons.csv")),
        campaigns=("CP001", "会员日活动"),
        labels=("价格敏感", "VIP"),
        segments=("上海忠诚会员",),
        cities=("上海", "北京", "杭州", "成都", "广州", "深圳"),
        sources=("store_0021",),
    )


def seg(text: str) -> Segment | NotUnderstood:
    return parse_segment(text, vocab(), T)


def tag(key: str, value: object) -> Tag:
    return Tag(key, eq(value))


MEMBER = tag("is_member", "是")
CAT = lambda name: Item("category", name)  # noqa: E731
YEAR0 = Window("year", 0)

# ------------------------------------------------------------------------------ commands.md examples


def test_example_1() -> None:
    assert seg("圈选近90天消费2次以上且客单价高于300元的沉睡会员") == all_of(
        OrderMetric("count", Compare("ge", 2), days(90)),
        OrderMetric("aov", Compare("gt", 30000), days(90)),
        tag("lifecycle", "沉睡"),
        MEMBER,
    )


def test_example_2() -> None:
    assert seg("看看上海有多少高价值会员") == all_of(tag("city", "上海"), tag("lifecycle", "忠诚"), MEMBER)


def test_example_3() -> None:
    assert seg("找出近7天浏览过连衣裙但没下单的公众号粉丝") == all_of(
        Did("browse", days(7), CAT("连衣裙")),
        Not(Bought(days(7), CAT("连衣裙"))),
        tag("oa_follower", "是"),
    )


def test_example_8() -> None:
    assert seg("今年累计消费满5000元但近三个月没买过的女性会员") == all_of(
        OrderMetric("amount", Compare("ge", 500000), YEAR0),
        Not(Bought(days(90))),
        tag("gender", "F"),
        MEMBER,
    )


def test_example_9() -> None:
    assert seg("RFM为重要挽留客户且偏好品类是女鞋的有多少") == all_of(
        tag("rfm", "重要挽留客户"), tag("preferred_category", "女鞋")
    )


# ------------------------------------------------------------------------------ comparisons

CMP_CASES = [
    ("以上", "ge"),
    ("及以上", "ge"),
    ("不少于", "ge"),
    ("不低于", "ge"),
    ("至少", "ge"),
    ("起", "ge"),
    ("满", "ge"),
    ("超过", "gt"),
    ("高于", "gt"),
    ("大于", "gt"),
    ("多于", "gt"),
    ("以下", "le"),
    ("及以下", "le"),
    ("不超过", "le"),
    ("不高于", "le"),
    ("至多", "le"),
    ("最多", "le"),
    ("低于", "lt"),
    ("少于", "lt"),
    ("小于", "lt"),
    ("不到", "lt"),
    ("不足", "lt"),
    ("正好", "eq"),
    ("等于", "eq"),
]
SUFFIX_WORDS = {"以上", "及以上", "以下", "及以下", "起"}


@pytest.mark.parametrize(("word", "op"), CMP_CASES)
def test_comparison_words_on_counts(word: str, op: str) -> None:
    text = f"消费3次{word}" if word in SUFFIX_WORDS else f"消费{word}3次"
    assert seg(text) == OrderMetric("count", Compare(op, 3), DEFAULT_WINDOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(("word", "op"), CMP_CASES)
def test_comparison_words_on_money(word: str, op: str) -> None:
    text = f"客单价300元{word}" if word in SUFFIX_WORDS else f"客单价{word}300元"
    assert seg(text) == OrderMetric("aov", Compare(op, 30000), DEFAULT_WINDOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["客单价200到500元之间", "客单价在200到500元之间", "客单价200至500元", "客单价200-500元", "客单价200元到500元"],
)
def test_between_inclusive(text: str) -> None:
    assert seg(text) == OrderMetric("aov", Compare("between", 20000, 50000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("消费2次以上", OrderMetric("count", Compare("ge", 2))),
        ("消费两次以上", OrderMetric("count", Compare("ge", 2))),
        ("买了十二次以上", OrderMetric("count", Compare("ge", 12))),
        ("下单3次以上", OrderMetric("count", Compare("ge", 3))),
        ("至少消费2次", OrderMetric("count", Compare("ge", 2))),
        ("消费次数不少于5", OrderMetric("count", Compare("ge", 5))),
        ("消费次数大于等于3", OrderMetric("count", Compare("ge", 3))),
        ("消费次数小于等于3", OrderMetric("count", Compare("le", 3))),
        ("消费>=2次", OrderMetric("count", Compare("ge", 2))),
        ("客单价≥500", OrderMetric("aov", Compare("ge", 50000))),
        ("累计消费满5000元", OrderMetric("amount", Compare("ge", 500000))),
        ("消费金额超过1.5万", OrderMetric("amount", Compare("gt", 1500000))),
        ("累计消费三千元以上", OrderMetric("amount", Compare("ge", 300000))),
        ("累计消费一千五以上", OrderMetric("amount", Compare("ge", 150000))),
        ("累计消费两万五以上", OrderMetric("amount", Compare("ge", 2500000))),
        ("消费3k以上", OrderMetric("amount", Compare("ge", 300000))),
        ("消费300块以上", OrderMetric("amount", Compare("ge", 30000))),
        ("单笔最高超过1000元", OrderMetric("max", Compare("gt", 100000))),
        ("单笔超过1000元", OrderMetric("max", Compare("gt", 100000))),
        ("客单价高于三百元", OrderMetric("aov", Compare("gt", 30000))),
        ("买童装超过2次", OrderMetric("count", Compare("gt", 2), item=CAT("童装"))),
    ],
)
def test_order_metrics(text: str, expected: Segment) -> None:
    assert seg(text) == expected


def test_levels() -> None:
    assert seg("V3及以上会员") == all_of(Tag("level", Compare("ge", "V3")), MEMBER)
    assert seg("会员等级V2以下") == Tag("level", Compare("le", "V2"))
    assert seg("V2到V4的会员") == all_of(Tag("level", Compare("between", "V2", "V4")), MEMBER)


# ------------------------------------------------------------------------------ windows


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("近90天买过", days(90)),
        ("最近3个月买过", days(90)),
        ("近一周买过", days(7)),
        ("近两周买过", days(14)),
        ("近半年买过", days(180)),
        ("本周买过", Window("week", 0)),
        ("上周买过", Window("week", -1)),
        ("本月买过", Window("month", 0)),
        ("上个月买过", Window("month", -1)),
        ("今年买过", Window("year", 0)),
        ("去年买过", Window("year", -1)),
        ("618买过", Window("festival", name="618")),
        ("去年双11买过", Window("festival", name="双11", year=2025)),
        ("2025年双11买过", Window("festival", name="双11", year=2025)),
        ("10月买过", Window("month_of", month=10)),
        ("买过", DEFAULT_WINDOW),
    ],
)
def test_window_words(text: str, window: Window) -> None:
    assert seg(text) == Bought(window)


def test_window_carries_over_and_words_until_another() -> None:
    assert seg("近30天买过童装且客单价高于300元并且近7天浏览过女鞋且加购过男鞋") == all_of(
        Bought(days(30), CAT("童装")),
        OrderMetric("aov", Compare("gt", 30000), days(30)),
        Did("browse", days(7), CAT("女鞋")),
        Did("add_cart", days(7), CAT("男鞋")),
    )


def test_tags_never_take_a_window() -> None:
    assert seg("近90天消费2次以上的沉睡会员") == all_of(
        OrderMetric("count", Compare("ge", 2), days(90)), tag("lifecycle", "沉睡"), MEMBER
    )
    # A window in front of tag words only changes nothing: the tag as of T.
    assert seg("近一个月的忠诚会员") == all_of(tag("lifecycle", "忠诚"), MEMBER)
    assert seg("近半年偏好品类是女鞋的人") == tag("preferred_category", "女鞋")
    # … but a window alone is not a segment.
    assert isinstance(seg("近30天的"), NotUnderstood)


def test_coupon_outstanding_with_and_without_window() -> None:
    assert seg("领券未核销的会员") == all_of(tag("coupon_outstanding", "是"), MEMBER)
    assert seg("近30天领券未核销的人") == CouponHeld(days(30))


def test_new_and_returning() -> None:
    assert seg("新客") == FirstOrder()
    assert seg("近90天的新客") == FirstOrder(days(90))
    assert seg("老客") == Returning()


# ------------------------------------------------------------------------------ and / or / not


@pytest.mark.parametrize("word", ["且", "并且", "而且", "和", "同时", "但", "但是", "而"])
def test_and_words(word: str) -> None:
    assert seg(f"沉睡会员{word}女性") == all_of(tag("lifecycle", "沉睡"), MEMBER, tag("gender", "F"))


@pytest.mark.parametrize("word", ["或", "或者"])
def test_or_words(word: str) -> None:
    assert seg(f"沉睡{word}流失的会员") == all_of(any_of(tag("lifecycle", "沉睡"), tag("lifecycle", "流失")), MEMBER)


def test_or_between_phrases() -> None:
    assert seg("沉睡会员或流失会员") == any_of(
        all_of(tag("lifecycle", "沉睡"), MEMBER), all_of(tag("lifecycle", "流失"), MEMBER)
    )


def test_or_between_whole_phrases_splits_the_command() -> None:
    assert seg("上海的女性会员或北京的男性会员") == any_of(
        all_of(tag("city", "上海"), tag("gender", "F"), MEMBER),
        all_of(tag("city", "北京"), tag("gender", "M"), MEMBER),
    )
    assert seg("近90天消费2次以上或者近一年客单价高于1000元的会员") == all_of(
        any_of(OrderMetric("count", Compare("ge", 2), days(90)), OrderMetric("aov", Compare("gt", 100000), days(365))),
        MEMBER,
    )


def test_bare_object_takes_the_previous_verb() -> None:
    assert seg("近30天买过童装或女鞋的会员") == all_of(
        any_of(Bought(days(30), CAT("童装")), Bought(days(30), CAT("女鞋"))), MEMBER
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("不是会员的粉丝", all_of(Not(MEMBER), tag("oa_follower", "是"))),
        ("非会员", Not(MEMBER)),
        ("公众号粉丝但不是会员", all_of(tag("oa_follower", "是"), Not(MEMBER))),
        ("没买过的粉丝", all_of(Not(Bought()), tag("oa_follower", "是"))),
        ("没有购买过的粉丝", all_of(Not(Bought()), tag("oa_follower", "是"))),
        ("未下单的粉丝", all_of(Not(Bought()), tag("oa_follower", "是"))),
        ("从未购买的粉丝", all_of(Not(Bought()), tag("oa_follower", "是"))),
        ("上个月没有购买的忠诚会员", all_of(Not(Bought(Window("month", -1))), tag("lifecycle", "忠诚"), MEMBER)),
    ],
)
def test_not_words(text: str, expected: Segment) -> None:
    assert seg(text) == expected


def test_negation_takes_the_previous_object() -> None:
    assert seg("近半年买过木棉但近一个月没买过") == all_of(
        Bought(days(180), Item("brand", "木棉")), Not(Bought(days(30), Item("brand", "木棉")))
    )
    assert seg("浏览过连衣裙但没下单") == all_of(
        Did("browse", DEFAULT_WINDOW, CAT("连衣裙")), Not(Bought(DEFAULT_WINDOW, CAT("连衣裙")))
    )
    assert seg("参加过618活动但没核销") == all_of(CampaignTouch("618", "joined"), Not(CampaignTouch("618", "redeemed")))


@pytest.mark.parametrize("word", ["中", "里", "当中"])
def test_within(word: str) -> None:  # "X中 Y" = X and Y
    assert seg(f"沉睡会员{word}杭州的") == all_of(tag("lifecycle", "沉睡"), MEMBER, tag("city", "杭州"))


def test_two_values_of_a_one_valued_tag_mean_either() -> None:
    assert seg("上海和北京的会员") == all_of(any_of(tag("city", "上海"), tag("city", "北京")), MEMBER)


# ------------------------------------------------------------------------------ tags and people


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("高价值会员", all_of(tag("lifecycle", "忠诚"), MEMBER)),
        ("流失会员", all_of(tag("lifecycle", "流失"), MEMBER)),
        ("注册阶段的", tag("lifecycle", "注册")),
        ("兴趣阶段的", tag("lifecycle", "兴趣")),
        ("认知阶段的", tag("lifecycle", "认知")),
        ("购买阶段的", tag("lifecycle", "购买")),
        ("RFM为重要价值客户", tag("rfm", "重要价值客户")),
        ("一般挽留客户", tag("rfm", "一般挽留客户")),
        ("购买力高的", tag("purchase_power", "高")),
        ("购买力低的", tag("purchase_power", "低")),
        ("钱包深度浅的", tag("wallet_depth", "浅")),
        ("价格导向会员", all_of(tag("price_orientation", "价格导向"), MEMBER)),
        ("品质导向的", tag("price_orientation", "品质导向")),
        ("偏好品类是女鞋", tag("preferred_category", "女鞋")),
        ("偏好女鞋的", tag("preferred_category", "女鞋")),
        ("浏览偏好是连衣裙的", tag("browse_preference", "连衣裙")),
        ("偏好渠道是小程序的", tag("preferred_channel", "小程序")),
        ("偏好线下的", tag("preferred_channel", "门店")),
        ("偏好线上的", Tag("preferred_channel", Compare("in", ("小程序", "电商", "公众号商城")))),
        ("粉丝", tag("oa_follower", "是")),
        ("企微好友", tag("wecom_contact", "是")),
        ("好友", tag("wecom_contact", "是")),
        ("女性", tag("gender", "F")),
        ("男性会员", all_of(tag("gender", "M"), MEMBER)),
        ("生日在下个月的", tag("birthday_month", 12)),
        ("本月过生日的", tag("birthday_month", 11)),
        ("渠道来源是store_0021的", tag("source", "store_0021")),
        ("有VIP标签的会员", all_of(Label("VIP"), MEMBER)),
        ("价格敏感的会员", all_of(Label("价格敏感"), MEMBER)),
        ("所有顾客", Everyone()),
        ("券核销率低于0.5的人", Tag("coupon_redemption_rate", Compare("lt", 0.5))),
        ("券核销率不低于50%的人", Tag("coupon_redemption_rate", Compare("ge", 0.5))),
        ("核心SKU是SKU0020的人", tag("core_sku", "SKU0020")),
        ("所属导购是GS0091的人", GuideHolds("GS0091")),
        ("没有加企微的会员", all_of(Not(tag("wecom_contact", "是")), MEMBER)),
        ("既是企微好友同时也是公众号粉丝的人", all_of(tag("wecom_contact", "是"), tag("oa_follower", "是"))),
    ],
)
def test_tag_words(text: str, expected: Segment) -> None:
    assert seg(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("上海的会员", all_of(tag("city", "上海"), MEMBER)),
        ("上海门店的会员", all_of(StoreCity("上海"), MEMBER)),
        ("门店S001的会员", all_of(tag("preferred_store", "S001"), MEMBER)),
        ("S001门店的会员", all_of(tag("preferred_store", "S001"), MEMBER)),
        ("上海一店的会员", all_of(tag("preferred_store", "S001"), MEMBER)),
        ("常去门店是上海二店的", tag("preferred_store", "S002")),
        ("在门店S005买过的", Bought(where=Where(store_id="S005"))),
        ("在上海一店买过童装", Bought(item=CAT("童装"), where=Where(store_id="S001"))),
        ("线下消费超过5次", OrderMetric("count", Compare("gt", 5), where=Where(("pos",)))),
        ("在门店消费过", Bought(where=Where(("pos",)))),
        ("小程序下单3次以上", OrderMetric("count", Compare("ge", 3), where=Where(("miniapp",)))),
        ("电商买过", Bought(where=Where(("ecom",)))),
        ("公众号商城买过", Bought(where=Where(("oa_mall",)))),
        ("近90天在线上消费2次以上", OrderMetric("count", Compare("ge", 2), days(90), Where(ONLINE))),
        ("导购胡霞的好友", GuideHolds("GS0010")),
        ("导购GS0011的好友", GuideHolds("GS0011")),
        ("收到过双11活动的", CampaignTouch("双11", "received")),
        ("参加过会员日活动的", CampaignTouch("会员日活动", "joined")),
    ],
)
def test_places_and_relationships(text: str, expected: Segment) -> None:
    assert seg(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("近7天点击过的", Did("click", days(7))),
        ("近7天领过券的", Did("coupon_get", days(7))),
        ("近30天加购未购买的顾客", CartNotBought(days(30))),
        ("加购未购买", CartNotBought()),
        ("本月买过SKU0012的", Bought(Window("month", 0), Item("sku", "SKU0012"))),
        ("近半年买过童装", Bought(days(180), CAT("童装"))),
        ("去年买过木棉", Bought(Window("year", -1), Item("brand", "木棉"))),
    ],
)
def test_items_and_events(text: str, expected: Segment) -> None:
    assert seg(text) == expected


def test_saved_segments() -> None:
    assert seg("刚才那批人中的女性") == all_of(Saved(""), tag("gender", "F"))
    assert seg("上海忠诚会员这个人群中近30天没买过的") == all_of(Saved("上海忠诚会员"), Not(Bought(days(30))))


def test_noise_and_punctuation() -> None:
    expected = all_of(tag("lifecycle", "沉睡"), MEMBER)
    for text in ("请帮我筛选一下沉睡会员们", "找出 沉睡 会员！", "哪些顾客是沉睡会员？", "圈选：沉睡会员。"):
        assert seg(text) == expected, text
    # full-width digits and letters (NFKC)
    assert seg("门店Ｓ００１的会员") == all_of(tag("preferred_store", "S001"), MEMBER)


# ------------------------------------------------------------------------------ not understood


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("门店S099的会员", ("store", "S099")),
        ("北京五店的会员", ("store", "北京五店")),
        ("近半年买过羽绒服的会员", ("category", "羽绒服")),
        ("导购G999的好友", ("guide", "G999")),
        ("导购王五的好友", ("guide", "王五")),
        ("偏好品类是羽绒服的", ("category", "羽绒服")),
        ("南京的会员", ("city", "南京")),
        ("南京门店的会员", ("city", "南京")),
        ("有高潜标签的会员", ("label", "高潜")),
        ("标签是高潜的会员", ("label", "高潜")),
        ("收到过春节活动的会员", ("campaign", "春节")),
    ],
)
def test_unknown_names(text: str, unknown: tuple[str, str]) -> None:
    result = seg(text)
    assert isinstance(result, NotUnderstood)
    assert result.unknown == (unknown,)
    assert 1 <= len(result.suggestions) <= 3 and all(s in EXAMPLES for s in result.suggestions)


@pytest.mark.parametrize(
    ("text", "unplaced"),
    [
        ("哈哈哈的会员", ("哈哈哈",)),
        ("沉睡会员和年龄大于30岁的", None),
        ("不", ("不",)),
    ],
)
def test_unplaced_words_are_reported(text: str, unplaced: tuple[str, ...] | None) -> None:
    result = seg(text)
    assert isinstance(result, NotUnderstood), result
    assert result.unplaced
    if unplaced is not None:
        assert result.unplaced == unplaced
    assert result.suggestions


def test_deterministic() -> None:
    text = "近30天买过童装或女鞋且客单价高于300元的上海女性会员"
    assert len({repr(seg(text)) for _ in range(5)}) == 1


# ------------------------------------------------------------------------------ commands


def cmd(text: str) -> object:
    return parse_command(text, vocab(), NOW)


def test_campaign_example() -> None:
    assert cmd("给上海门店的价格导向会员下周一上午10点发30元无门槛券") == CampaignCommand(
        segment=all_of(StoreCity("上海"), tag("price_orientation", "价格导向"), MEMBER),
        coupon=CouponOffer(card_id="C30"),
        send_at=datetime(2026, 11, 2, 10, 0, tzinfo=SH),
    )


def test_campaign_coupons_channels_content() -> None:
    result = cmd("给沉睡会员明天上午10点发满200减30的券")
    assert isinstance(result, CampaignCommand)
    assert result.coupon == CouponOffer(kind="cash", value=3000.0, threshold_fen=20000)
    result = cmd("给企微好友推送“双11活动开始啦”")
    assert isinstance(result, CampaignCommand)
    assert (result.channel, result.content, result.coupon) == ("wecom", "双11活动开始啦", None)
    assert result.segment == tag("wecom_contact", "是")
    result = cmd("给刚才那批人今晚8点发40元无门槛券")
    assert result == CampaignCommand(
        segment=Saved(""),
        coupon=CouponOffer(kind="cash", value=4000.0),
        send_at=datetime(2026, 11, 1, 20, 0, tzinfo=SH),
    )


def test_campaign_time_in_the_past_is_refused() -> None:
    result = cmd("给沉睡会员今天早上8点发30元无门槛券")
    assert isinstance(result, NotUnderstood)
    assert "过去" in result.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "统计上个月双11活动的核销率和转化率",
            ReportCommand(("conversion", "redemption"), None, Window("month", -1), "双11"),
        ),
        ("对比一下各渠道上个月的销售额", ReportCommand(("sales",), "channel", Window("month", -1))),
        ("各门店本月销售额", ReportCommand(("sales",), "store", Window("month", 0))),
        ("会员生命周期分布", ReportCommand(("customers",), "lifecycle")),
        ("RFM分布", ReportCommand(("customers",), "rfm")),
    ],
)
def test_reports(text: str, expected: ReportCommand) -> None:
    assert cmd(text) == expected


@pytest.mark.parametrize(
    ("text", "person"),
    [
        ("查一下13812345678", PersonRef(phone="13812345678")),
        ("查会员M000123", PersonRef(member_id="M000123")),
        ("看一下上海一店的张三的画像", PersonRef(name="张三", store_id="S001")),
    ],
)
def test_portraits(text: str, person: PersonRef) -> None:
    assert cmd(text) == PortraitCommand(person)


def test_labels() -> None:
    assert cmd("把领券未核销的人打上“价格敏感”标签") == LabelCommand(
        "价格敏感", segment=tag("coupon_outstanding", "是")
    )
    assert cmd("给13812345678打上VIP标签") == LabelCommand("VIP", person=PersonRef(phone="13812345678"))
    assert cmd("去掉沉睡会员的价格敏感标签") == LabelCommand(
        "价格敏感", add=False, segment=all_of(tag("lifecycle", "沉睡"), MEMBER)
    )


@pytest.mark.parametrize("text", ["帮助", "怎么用", "?", "？"])
def test_help(text: str) -> None:
    assert cmd(text) == HelpCommand()


@pytest.mark.parametrize(
    ("text", "yes"),
    [("确认", True), ("是", True), ("好的", True), ("发吧", True), ("取消", False), ("算了", False), ("不要了", False)],
)
def test_replies(text: str, yes: bool) -> None:
    assert cmd(text) == ReplyCommand(yes)


def test_segment_commands() -> None:
    assert cmd("看看上海有多少高价值会员") == SegmentCommand(
        all_of(tag("city", "上海"), tag("lifecycle", "忠诚"), MEMBER), count_only=True
    )
    assert cmd("圈选近半年的新客并保存为半年新客") == SegmentCommand(FirstOrder(days(180)), save_as="半年新客")
    assert cmd("筛选上海的沉睡会员，命名为上海沉睡") == SegmentCommand(
        all_of(tag("city", "上海"), tag("lifecycle", "沉睡"), MEMBER), save_as="上海沉睡"
    )


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_is_understood(text: str) -> None:
    assert not isinstance(cmd(text), NotUnderstood)


def test_not_understood_command_suggests() -> None:
    result = cmd("帮我弄一下那个什么东西")
    assert isinstance(result, NotUnderstood)
    assert result.suggestions and all(s in EXAMPLES for s in result.suggestions)


def test_campaign_time_anywhere_and_quotes_are_content() -> None:
    result = cmd("明天上午10点给高价值会员推送新品通知")
    assert isinstance(result, CampaignCommand)
    assert result.send_at == datetime(2026, 11, 2, 10, 0, tzinfo=SH)
    assert result.content == "新品通知"
    # 周末 inside the quoted message is not a send time
    assert cmd("向上海的会员群发“周末店庆”") == CampaignCommand(
        segment=all_of(tag("city", "上海"), MEMBER), content="周末店庆"
    )
    # a day word of the segment (今天) does not beat the clock time of the sending
    result = cmd("给今天买过的会员明天晚上8点发“谢谢光临”")
    assert isinstance(result, CampaignCommand)
    assert result.segment == all_of(Bought(days(1)), MEMBER)
    assert result.send_at == datetime(2026, 11, 2, 20, 0, tzinfo=SH)


def test_more_portraits_and_labels() -> None:
    assert cmd("查一下张三") == PortraitCommand(PersonRef(name="张三"))
    assert cmd("查一下 138-1234-5678") == PortraitCommand(PersonRef(phone="13812345678"))
    assert cmd("标记沉睡会员为“待唤醒”") == LabelCommand("待唤醒", segment=all_of(tag("lifecycle", "沉睡"), MEMBER))
    assert cmd("把13812345678的VIP标签去掉") == LabelCommand("VIP", add=False, person=PersonRef(phone="13812345678"))


def test_jieba_keeps_domain_words_whole() -> None:
    from nlp.lexicon import lexicon_for

    lexicon = lexicon_for(vocab())
    words = [w for w, _start, _end in lexicon.tokens("且客单价高于300元的上海门店的上海一店")]
    assert "客单价" in words and "上海一店" in words and "海门" not in words
    # Built once per vocabulary fingerprint (the view per saved-segment names shares its parts).
    again = lexicon_for(vocab())
    assert again.tokenizer is lexicon.tokenizer and again.table is lexicon.table


def test_parsing_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [e for e in EXAMPLES if e != "帮助"] * 4
    expected = [repr(cmd(t)) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda t: repr(cmd(t)), texts)) == expected


# ------------------------------------------------------------------------------ another retailer's words

OTHER = Vocabulary(
    stores=(
        StoreWord("SH01", "南京西路旗舰店", "上海"),
        StoreWord("BJ02", "三里屯店", "北京"),
        StoreWord("GZ-3", "天河城店", "广州"),
    ),
    guides=(GuideWord("w_lisa", "李莎", "SH01", "guide"), GuideWord("w_tom", "汤姆", "BJ02", "manager")),
    categories=("羽绒服", "口红", "运动鞋"),
    brands=("Estee Lauder", "Nike", "安踏"),
    skus=("A-1001", "nk_air_90"),
    campaigns=("春节大促", "CMP_2026_11"),
    labels=("高潜",),
    segments=("春节老客",),
    cities=("上海", "北京", "广州", "深圳"),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "近30天内在南京西路旗舰店买过羽绒服的会员",
            all_of(Bought(days(30), CAT("羽绒服"), Where(store_id="SH01")), MEMBER),
        ),
        ("三里屯店的会员", all_of(tag("preferred_store", "BJ02"), MEMBER)),
        ("门店GZ-3的", tag("preferred_store", "GZ-3")),
        ("导购李莎的好友", GuideHolds("w_lisa")),
        ("导购w_tom的好友", GuideHolds("w_tom")),
        ("买过Estee Lauder的女性", all_of(Bought(item=Item("brand", "Estee Lauder")), tag("gender", "F"))),
        (
            "近半年买过Nike或安踏的",
            any_of(Bought(days(180), Item("brand", "Nike")), Bought(days(180), Item("brand", "安踏"))),
        ),
        ("买过a-1001的", Bought(item=Item("sku", "A-1001"))),
        ("买过nk_air_90的", Bought(item=Item("sku", "nk_air_90"))),
        ("收到过春节大促活动的", CampaignTouch("春节大促", "received")),
        ("收到过CMP_2026_11的", CampaignTouch("CMP_2026_11", "received")),
        ("高潜会员", all_of(Label("高潜"), MEMBER)),
        ("春节老客中的女性", all_of(Saved("春节老客"), tag("gender", "F"))),
        ("深圳的会员", all_of(tag("city", "深圳"), MEMBER)),
        ("今年以来买过运动鞋的", Bought(YEAR0, CAT("运动鞋"))),
    ],
)
def test_another_retailers_words(text: str, expected: Segment) -> None:
    assert parse_segment(text, OTHER, T) == expected


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("门店SH99的会员", ("store", "SH99")),
        ("南京东路店的会员", ("store", "南京东路店")),
        ("杭州的会员", ("city", "杭州")),
    ],
)
def test_another_retailers_unknown_names(text: str, unknown: tuple[str, str]) -> None:
    result = parse_segment(text, OTHER, T)
    assert isinstance(result, NotUnderstood) and result.unknown == (unknown,)
