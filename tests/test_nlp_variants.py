"""千人千面 by chat: a campaign command giving kinds of customer their own message (nlp/parse.py).

Each expected tree is written out by hand from commands.md / tags.md."""

from __future__ import annotations

from datetime import datetime

import pytest

from nlp.intent import CampaignCommand, CampaignVariant, CouponOffer, NotUnderstood
from nlp.parse import parse_command
from nlp.segment import StoreCity, Tag, all_of, any_of, eq
from tests.test_nlp_parse import NOW, SH, vocab

MEMBER = Tag("is_member", eq("是"))
PRICE = Tag("price_orientation", eq("价格导向"))
QUALITY = Tag("price_orientation", eq("品质导向"))
LOYAL = Tag("lifecycle", eq("忠诚"))
MONDAY_10 = datetime(2026, 11, 2, 10, 0, tzinfo=SH)
THREE = "给上海门店的会员下周一上午10点发消息：价格导向的发30元无门槛券，品质导向的发新品推荐，忠诚客户发会员专享礼"


def cmd(text: str) -> object:
    return parse_command(text, vocab(), NOW)


def test_three_kinds_of_customer_in_one_campaign() -> None:
    result = cmd(THREE)
    assert result == CampaignCommand(
        segment=all_of(StoreCity("上海"), MEMBER),
        send_at=MONDAY_10,
        variants=(
            CampaignVariant("价格导向的", PRICE, coupon=CouponOffer(card_id="C30")),  # a coupon the retailer has
            CampaignVariant("品质导向的", QUALITY, content="新品推荐"),
            CampaignVariant("忠诚客户", LOYAL, content="会员专享礼"),
        ),
    )


def test_everyone_else_comes_last_wherever_it_is_said() -> None:
    said_last = cmd("给上海门店的会员下周一上午10点发消息：价格导向的发30元券，其他人发新品推荐")
    said_first = cmd("给上海门店的会员下周一上午10点发消息：其余的发新品推荐，价格导向的发30元券")
    assert isinstance(said_last, CampaignCommand) and isinstance(said_first, CampaignCommand)
    coupon = CouponOffer(kind="cash", value=3000.0, threshold_fen=0)
    assert said_last.variants == (
        CampaignVariant("价格导向的", PRICE, coupon=coupon),
        CampaignVariant("其他人", None, content="新品推荐"),
    )
    assert [v.when for v in said_first.variants] == [PRICE, None]
    assert (said_last.content, said_last.coupon) == ("", None)


def test_overlapping_conditions_keep_their_order() -> None:
    # a loyal price-oriented customer is held by both: the first written wins (the planner's rule)
    result = cmd("给会员发消息：忠诚客户发会员专享礼，价格导向的发8折券")
    assert isinstance(result, CampaignCommand)
    assert [(v.who, v.when) for v in result.variants] == [("忠诚客户", LOYAL), ("价格导向的", PRICE)]
    assert result.variants[1].coupon == CouponOffer(card_id="D20")  # "8折券" is one of the sample's coupons


def test_the_commands_own_message_is_for_everyone_left() -> None:
    result = cmd("给会员发新品通知，价格导向的再发30元券")
    assert isinstance(result, CampaignCommand)
    assert result.variants == (
        CampaignVariant("价格导向的", PRICE, coupon=CouponOffer(kind="cash", value=3000.0)),
        CampaignVariant("", None, content="新品通知"),
    )


def test_compound_conditions_quotes_and_continued_words() -> None:
    result = cmd("给会员明天10点发：女性的价格导向会员发“满200减30，仅限本周”，到店出示，给其他人发新品推荐")
    assert isinstance(result, CampaignCommand)
    assert result.send_at == MONDAY_10
    first, rest = result.variants
    assert first.when == all_of(Tag("gender", eq("F")), PRICE, MEMBER)
    # quoted words are the message as typed, punctuation kept; an unquoted clause continues it
    assert (first.content, first.coupon) == ("满200减30，仅限本周，到店出示", None)
    assert (rest.when, rest.content) == (None, "新品推荐")


@pytest.mark.parametrize(
    "text",
    [
        "给沉睡会员发消息：亲，好久不见，新品上市发福利啦",  # commas in a message are not versions
        "给上海门店的价格导向会员下周一上午10点发30元无门槛券",
    ],
)
def test_one_message_for_everyone_is_unchanged(text: str) -> None:
    result = cmd(text)
    assert isinstance(result, CampaignCommand) and result.variants == ()


def test_a_condition_that_is_no_tag_is_named() -> None:
    result = cmd("给会员发消息：价格敏感型的发30元券，其他人发新品推荐")
    assert isinstance(result, NotUnderstood)
    assert (result.variant, result.variant_issue) == ("价格敏感型的", "unknown")
    assert result.suggestions


@pytest.mark.parametrize(
    ("text", "who", "issue"),
    [
        ("给会员发消息：价格导向的发，其他人发新品推荐", "价格导向的", "no_content"),
        ("给会员发消息：其他人发新品推荐，其余的发会员礼", "其余的", "default_twice"),
        ("给会员发新品通知，价格导向的发30元券，其他人发会员礼", "其他人", "default_twice"),
    ],
)
def test_ambiguous_versions_are_refused(text: str, who: str, issue: str) -> None:
    result = cmd(text)
    assert isinstance(result, NotUnderstood)
    assert (result.variant, result.variant_issue) == (who, issue)


def test_versions_side_by_side_share_the_heads_other_conditions() -> None:
    # no quality-oriented person is among the price-oriented ones: the head is a version of its own,
    # and the campaign is for either kind, each keeping the head's 上海 and 会员
    result = cmd("给上海的价格导向会员明天10点发30元券，品质导向的发新品推荐")
    assert isinstance(result, CampaignCommand)
    shanghai = Tag("city", eq("上海"))
    price, quality = all_of(shanghai, PRICE, MEMBER), all_of(shanghai, MEMBER, QUALITY)
    assert result.segment == any_of(price, quality)
    assert [(v.when, v.content, v.coupon) for v in result.variants] == [
        (price, "", CouponOffer(kind="cash", value=3000.0)), (quality, "新品推荐", None),
    ]
    assert result.send_at == MONDAY_10


def test_a_channel_word_before_the_recipients_is_kept() -> None:
    result = cmd("通过企微给上海的会员发消息：价格导向的发30元券，其他人发新品推荐")
    assert isinstance(result, CampaignCommand) and result.channel == "wecom"
    assert result.segment == all_of(Tag("city", eq("上海")), MEMBER)
    single = cmd("通过企微给上海的会员发30元券")
    assert isinstance(single, CampaignCommand) and single.channel == "wecom"
