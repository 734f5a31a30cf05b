"""The acceptance set: Chinese segment commands, each with who it means on the sample as of T,
written as a predicate over the oracle's person model (tests/segment_oracle/model.py).

The meaning comes from spec/commands.md and spec/tags.md; where the spec leaves a choice, the
reading taken is written next to the case (`why`), and listed in `AMBIGUOUS`.
Tag conditions use the tags the spec authors computed (expected_profiles.jsonl); order and event
conditions are computed here from the CSV rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.segment_oracle.model import ONLINE, Person, ge, gt, le, lt
from tests.segment_oracle.windows import (
    D7,
    D30,
    D90,
    D180,
    D365,
    LAST_MONTH,
    LAST_WEEK,
    LAST_YEAR,
    LAST_YEAR_D11,
    SHUANG11,
    SIX18,
    THIS_MONTH,
    THIS_WEEK,
    THIS_YEAR,
    days,
)

Pred = Callable[[Person], bool]


@dataclass(frozen=True)
class Case:
    command: str
    who: Pred
    kinds: tuple[str, ...] = ()  # condition kinds / phrasings it exercises (for the coverage report)
    why: str = ""  # the reading taken where the spec leaves a choice


def cat(name: str) -> tuple[str, str]:
    return ("category", name)


def brand(name: str) -> tuple[str, str]:
    return ("brand", name)


def sku(name: str) -> tuple[str, str]:
    return ("sku", name)


def lifecycle(value: str) -> Pred:
    return lambda p: p.tag("lifecycle") == value


def member(p: Person) -> bool:
    return p.member


C = Case
CASES: list[Case] = [
    # ------------------------------------------------------------------ the examples of commands.md
    C(
        "圈选近90天消费2次以上且客单价高于300元的沉睡会员",
        lambda p: p.tag("lifecycle") == "沉睡" and p.member and p.orders(D90).count >= 2 and gt(p.orders(D90).aov, 300),
        ("example", "圈选", "以上", "高于", "carry-window", "且"),
    ),
    C(
        "圈选近90天消费2次以上且客单价高于300元的会员",
        lambda p: p.member and p.orders(D90).count >= 2 and gt(p.orders(D90).aov, 300),
        ("order-count", "aov", "carry-window", "且", "以上", "高于", "元"),
    ),
    C(
        "看看上海有多少高价值会员",
        lambda p: p.tag("city") == "上海" and p.tag("lifecycle") == "忠诚" and p.member,
        ("看看", "有多少", "city", "高价值"),
    ),
    C(
        "找出近7天浏览过连衣裙但没下单的公众号粉丝",
        lambda p: p.did("browse", D7, cat("连衣裙")) and not p.bought(D7, cat("连衣裙")) and p.follower,
        ("找出", "browse", "negation-takes-object", "但", "没", "粉丝", "近N天"),
    ),
    C(
        "上海门店的价格导向会员",
        lambda p: p.store_city == "上海" and p.tag("price_orientation") == "价格导向" and p.member,
        ("store-city", "价格导向"),
    ),
    C("领券未核销的人", lambda p: p.tag("coupon_outstanding") == "是", ("coupon-tag", "人")),
    C(
        "今年累计消费满5000元但近三个月没买过的女性会员",
        lambda p: p.orders(THIS_YEAR).amount >= 5000 and not p.bought(D90) and p.tag("gender") == "F" and p.member,
        ("order-amount", "满", "今年", "近三个月", "但", "没", "gender"),
    ),
    C(
        "RFM为重要挽留客户且偏好品类是女鞋的有多少",
        lambda p: p.tag("rfm") == "重要挽留客户" and p.tag("preferred_category") == "女鞋",
        ("rfm", "preferred_category", "有多少"),
    ),
    # ------------------------------------------------------------------ lifecycle, by value and by name
    C("沉睡会员", lambda p: p.tag("lifecycle") == "沉睡" and p.member, ("lifecycle",)),
    C("高价值会员", lambda p: p.tag("lifecycle") == "忠诚" and p.member, ("lifecycle", "高价值")),
    C("忠诚客户", lifecycle("忠诚"), ("lifecycle", "客户")),
    C("流失的顾客", lifecycle("流失"), ("lifecycle", "顾客")),
    C("筛选兴趣阶段的用户", lifecycle("兴趣"), ("lifecycle", "筛选", "用户")),
    C("注册阶段的会员", lambda p: p.tag("lifecycle") == "注册" and p.member, ("lifecycle",)),
    C("认知阶段的人", lifecycle("认知"), ("lifecycle",)),
    C("购买阶段的客户有哪些", lifecycle("购买"), ("lifecycle", "哪些")),
    C("生命周期是沉睡的人", lifecycle("沉睡"), ("lifecycle", "by-name")),
    C("生命周期为忠诚的会员有多少", lambda p: p.tag("lifecycle") == "忠诚" and p.member, ("lifecycle", "by-name")),
    C(
        "沉睡或流失的会员",
        lambda p: p.tag("lifecycle") in ("沉睡", "流失") and p.member,
        ("lifecycle", "或"),
    ),
    C(
        "沉睡会员或者流失会员",
        lambda p: p.tag("lifecycle") in ("沉睡", "流失") and p.member,
        ("lifecycle", "或者"),
    ),
    # ------------------------------------------------------------------ other tags
    C("价格导向的会员", lambda p: p.tag("price_orientation") == "价格导向" and p.member, ("price_orientation",)),
    C("品质导向的顾客", lambda p: p.tag("price_orientation") == "品质导向", ("price_orientation",)),
    C("购买类型是价格导向的人", lambda p: p.tag("price_orientation") == "价格导向", ("price_orientation", "by-name")),
    C("偏好品类是女鞋的人", lambda p: p.tag("preferred_category") == "女鞋", ("preferred_category",)),
    C("偏好品类为男鞋的会员", lambda p: p.tag("preferred_category") == "男鞋" and p.member, ("preferred_category",)),
    C(
        "偏好品类是女鞋或者男鞋的人",
        lambda p: p.tag("preferred_category") in ("女鞋", "男鞋"),
        ("preferred_category", "或者"),
    ),
    C("浏览偏好是配饰的人", lambda p: p.tag("browse_preference") == "配饰", ("browse_preference",)),
    C("偏好渠道是小程序的人", lambda p: p.tag("preferred_channel") == "小程序", ("preferred_channel",)),
    C("偏好渠道为门店的会员", lambda p: p.tag("preferred_channel") == "门店" and p.member, ("preferred_channel",)),
    C("偏好渠道是电商的客户", lambda p: p.tag("preferred_channel") == "电商", ("preferred_channel",)),
    C("RFM为重要价值客户的会员", lambda p: p.tag("rfm") == "重要价值客户" and p.member, ("rfm",)),
    C("重要保持客户", lambda p: p.tag("rfm") == "重要保持客户", ("rfm", "value-alone")),
    C("一般挽留客户有多少", lambda p: p.tag("rfm") == "一般挽留客户", ("rfm", "value-alone")),
    C("RFM分层是重要挽留客户的人", lambda p: p.tag("rfm") == "重要挽留客户", ("rfm", "by-name")),
    C("购买力高的会员", lambda p: p.tag("purchase_power") == "高" and p.member, ("purchase_power",)),
    C("购买力为中的人", lambda p: p.tag("purchase_power") == "中", ("purchase_power",)),
    C("购买力低的顾客", lambda p: p.tag("purchase_power") == "低", ("purchase_power",)),
    C("钱包深度深的客户", lambda p: p.tag("wallet_depth") == "深", ("wallet_depth",)),
    C("钱包深度浅的会员", lambda p: p.tag("wallet_depth") == "浅" and p.member, ("wallet_depth",)),
    C("常去门店是S004的人", lambda p: p.tag("preferred_store") == "S004", ("preferred_store", "by-name")),
    C("渠道来源是store_S009的人", lambda p: p.tag("source") == "store_S009", ("source",)),
    C("渠道来源是poster_1111的会员", lambda p: p.tag("source") == "poster_1111" and p.member, ("source",)),
    C("领券未核销的会员", lambda p: p.tag("coupon_outstanding") == "是" and p.member, ("coupon-tag",)),
    C(
        "券核销率低于0.5的人",
        lambda p: p.tag("coupon_redemption_rate") is not None and p.tag("coupon_redemption_rate") < 0.5,
        ("coupon_redemption_rate", "低于", "decimal"),
        why="a rate is compared as the 0..1 number of tags.md; people without coupons have no rate and are out",
    ),
    C(
        "核心SKU是SKU0020的人",
        lambda p: "SKU0020" in (p.tag("core_sku") or []),
        ("core_sku",),
    ),
    C("所属导购是GS0091的人", lambda p: p.holds("GS0091"), ("guides", "by-name")),
    # ------------------------------------------------------------------ membership, follow, contact
    C("圈选会员", member, ("is_member", "圈选")),
    C("公众号粉丝", lambda p: p.follower, ("oa_follower",)),
    C("粉丝有多少", lambda p: p.follower, ("oa_follower", "有多少")),
    C("企微好友", lambda p: p.contact, ("wecom_contact",)),
    C(
        "好友里的高价值会员",
        lambda p: p.contact and p.tag("lifecycle") == "忠诚" and p.member,
        ("wecom_contact", "X里"),
        why="好友 alone = 企微好友 (tags.md)",
    ),
    C("公众号粉丝但不是会员", lambda p: p.follower and not p.member, ("oa_follower", "但", "不")),
    C("非会员的粉丝", lambda p: p.follower and not p.member, ("非",)),
    C("不是企微好友的会员", lambda p: not p.contact and p.member, ("不", "wecom_contact")),
    C("是会员并且是公众号粉丝的人", lambda p: p.member and p.follower, ("并且",)),
    C("企微好友而且是会员", lambda p: p.contact and p.member, ("而且",)),
    C("是会员和粉丝的人", lambda p: p.member and p.follower, ("和",)),
    C("既是企微好友同时也是公众号粉丝的人", lambda p: p.contact and p.follower, ("同时",)),
    C("高价值会员但是不是企微好友", lambda p: p.tag("lifecycle") == "忠诚" and p.member and not p.contact, ("但是",)),
    C(
        "没有加企微的会员",
        lambda p: p.member and not p.contact,
        ("没有", "wecom_contact", "synonym"),
        why="没有加企微 = not wecom_contact (加企微 = 企微好友)",
    ),
    # ------------------------------------------------------------------ member attributes
    C("杭州的会员", lambda p: p.tag("city") == "杭州" and p.member, ("city",)),
    C("城市是成都的顾客", lambda p: p.tag("city") == "成都", ("city", "by-name")),
    C("北京的高价值会员", lambda p: p.tag("city") == "北京" and p.tag("lifecycle") == "忠诚" and p.member, ("city",)),
    C("女性会员", lambda p: p.tag("gender") == "F" and p.member, ("gender",)),
    C("男性会员有多少", lambda p: p.tag("gender") == "M" and p.member, ("gender",)),
    C("性别为女的人", lambda p: p.tag("gender") == "F", ("gender", "by-name")),
    C("V3及以上会员", lambda p: p.level is not None and p.level >= 3 and p.member, ("level", "及以上")),
    C("等级V2以下的会员", lambda p: p.level is not None and p.level <= 2 and p.member, ("level", "以下")),
    C("会员等级低于V2的人", lambda p: p.level is not None and p.level < 2, ("level", "低于")),
    C("会员等级是V5的", lambda p: p.level == 5, ("level", "是")),
    C("V1到V3之间的会员", lambda p: p.level is not None and 1 <= p.level <= 3 and p.member, ("level", "A到B之间")),
    C("等级不低于V4的会员", lambda p: p.level is not None and p.level >= 4 and p.member, ("level", "不低于")),
    C("本月过生日的会员", lambda p: p.tag("birthday_month") == 11 and p.member, ("birthday_month", "本月")),
    C("生日在下个月的会员", lambda p: p.tag("birthday_month") == 12 and p.member, ("birthday_month", "下个月")),
    C(
        "本月过生日的女性会员",
        lambda p: p.tag("birthday_month") == 11 and p.tag("gender") == "F" and p.member,
        ("birthday_month", "gender"),
    ),
    # ------------------------------------------------------------------ places
    C("上海的会员", lambda p: p.tag("city") == "上海" and p.member, ("city",)),
    C(
        "上海和北京的会员",
        lambda p: p.tag("city") in ("上海", "北京") and p.member,
        ("city", "和-union"),
        why="two cities joined by 和 mean either city (a member record has one city; 'and' would always be empty)",
    ),
    C("上海门店的会员", lambda p: p.store_city == "上海" and p.member, ("store-city",)),
    C(
        "北京门店的价格导向会员",
        lambda p: p.store_city == "北京" and p.tag("price_orientation") == "价格导向" and p.member,
        ("store-city",),
    ),
    C("门店S001的会员", lambda p: p.tag("preferred_store") == "S001" and p.member, ("store",)),
    C("S002门店的顾客", lambda p: p.tag("preferred_store") == "S002", ("store",)),
    C("上海一店的会员", lambda p: p.tag("preferred_store") == "S001" and p.member, ("store-name",)),
    C("杭州二店的顾客", lambda p: p.tag("preferred_store") == "S009", ("store-name",)),
    C("近半年在门店S005消费过的人", lambda p: p.bought(D180, where="S005"), ("where-store", "bought")),
    C(
        "在门店S004消费2次以上的会员",
        lambda p: p.orders(where="S004").count >= 2 and p.member,
        ("where-store", "default-365"),
    ),
    C("今年在上海一店买过的会员", lambda p: p.bought(THIS_YEAR, where="S001") and p.member, ("where-store-name",)),
    C("近90天线下消费2次以上的人", lambda p: p.orders(D90, where=("pos",)).count >= 2, ("where-channel", "线下")),
    C("今年在门店消费过的会员", lambda p: p.bought(THIS_YEAR, where=("pos",)) and p.member, ("where-channel", "门店")),
    C(
        "近一年在小程序消费满1000元的人",
        lambda p: p.orders(D365, where=("miniapp",)).amount >= 1000,
        ("where-channel", "小程序", "近一年"),
    ),
    C("电商消费超过2次的顾客", lambda p: p.orders(where=("ecom",)).count > 2, ("where-channel", "电商", "超过")),
    C("公众号商城买过的人", lambda p: p.bought(where=("oa_mall",)), ("where-channel", "公众号商城")),
    C(
        "线上消费金额超过2000元的会员",
        lambda p: p.orders(where=ONLINE).amount > 2000 and p.member,
        ("where-channel", "线上"),
    ),
    C(
        "近半年线上买过但线下没买过的人",
        lambda p: p.bought(D180, where=ONLINE) and not p.bought(D180, where=("pos",)),
        ("where-channel", "carry-window"),
        why="线下没买过 keeps 近半年 (carried across 但)",
    ),
    # ------------------------------------------------------------------ guides
    C("导购周芳的好友", lambda p: p.holds("GS0091"), ("guide-name",)),
    C("导购GS0120的好友", lambda p: p.holds("GS0120"), ("guide-id",)),
    C("导购吴军的企微好友", lambda p: p.holds("GS0082"), ("guide-name",)),
    C("导购何超的好友中的会员", lambda p: p.holds("GS0021") and p.member, ("guide-name", "X中")),
    C(
        "导购胡霞的好友",
        lambda p: p.holds("GS0010"),
        ("guide-name", "manager"),
        why="a manager counts as a guide (any staff member of guides.csv)",
    ),
    # ------------------------------------------------------------------ X中 / X里 / X当中
    C("沉睡会员中杭州的", lambda p: p.tag("lifecycle") == "沉睡" and p.member and p.tag("city") == "杭州", ("X中",)),
    C("高价值会员里的女性", lambda p: p.tag("lifecycle") == "忠诚" and p.member and p.tag("gender") == "F", ("X里",)),
    C("企微好友当中近90天买过的人", lambda p: p.contact and p.bought(D90), ("X当中", "bought")),
    C("粉丝中偏好品类是配饰的", lambda p: p.follower and p.tag("preferred_category") == "配饰", ("X中",)),
    C(
        "上海会员里购买力高的",
        lambda p: p.tag("city") == "上海" and p.member and p.tag("purchase_power") == "高",
        ("X里", "purchase_power"),
    ),
    # ------------------------------------------------------------------ order counts: every comparison word
    C("近90天消费2次以上的会员", lambda p: p.orders(D90).count >= 2 and p.member, ("以上", "近N天")),
    C("近一年消费3次及以上的人", lambda p: p.orders(D365).count >= 3, ("及以上", "近一年")),
    C("今年消费次数不少于两次的会员", lambda p: p.orders(THIS_YEAR).count >= 2 and p.member, ("不少于", "两")),
    C("近半年至少消费二次的顾客", lambda p: p.orders(D180).count >= 2, ("至少", "二", "近半年")),
    C("消费超过3次的客户", lambda p: p.orders(D365).count > 3, ("超过", "default-365")),
    C("最近60天消费多于1次的人", lambda p: p.orders(days(60)).count > 1, ("多于", "最近N天")),
    C("过去45天消费大于1次的会员", lambda p: p.orders(days(45)).count > 1 and p.member, ("大于", "过去N天")),
    C(
        "近一年消费2次以下的会员",
        lambda p: p.orders(D365).count <= 2 and p.member,
        ("以下", "count-zero"),
        why="a count of 0 is ≤ 2: members without orders are in",
    ),
    C("今年消费1次及以下的会员", lambda p: p.orders(THIS_YEAR).count <= 1 and p.member, ("及以下",)),
    C("近半年消费不超过1次的会员", lambda p: p.orders(D180).count <= 1 and p.member, ("不超过",)),
    C("近一年至多消费两次的会员", lambda p: p.orders(D365).count <= 2 and p.member, ("至多",)),
    C("近一年最多消费1次的会员", lambda p: p.orders(D365).count <= 1 and p.member, ("最多",)),
    C(
        "近30天消费不到2次的会员",
        lambda p: p.orders(D30).count < 2 and p.member,
        ("不到", "近30天", "count-zero"),
        why="a count is 0 without orders, so members who did not buy at all are in (segment.py says so too)",
    ),
    C(
        "近90天消费少于2次的高价值会员",
        lambda p: p.orders(D90).count < 2 and p.tag("lifecycle") == "忠诚" and p.member,
        ("少于",),
    ),
    C("去年消费正好2次的人", lambda p: p.orders(LAST_YEAR).count == 2, ("正好", "去年")),
    C("今年消费等于1次的会员", lambda p: p.orders(THIS_YEAR).count == 1 and p.member, ("等于", "今年")),
    C("消费2至4次的会员", lambda p: 2 <= p.orders(D365).count <= 4 and p.member, ("A至B", "default-365")),
    C("近一年消费2到3次之间的人", lambda p: 2 <= p.orders(D365).count <= 3, ("A到B之间",)),
    C("近一年下单2次以上的人", lambda p: p.orders(D365).count >= 2, ("synonym-下单",)),
    C("近一年购买次数超过两次的会员", lambda p: p.orders(D365).count > 2 and p.member, ("synonym-购买次数",)),
    C("最近十二天消费过的人", lambda p: p.bought(days(12)), ("十二", "最近N天", "bought")),
    # ------------------------------------------------------------------ amounts: numerals and comparisons
    C("今年累计消费满5000元的人", lambda p: p.orders(THIS_YEAR).amount >= 5000, ("满", "order-amount")),
    C("近一年消费金额不少于1.5万的人", lambda p: p.orders(D365).amount >= 15000, ("1.5万", "不少于")),
    C(
        "近半年消费金额在三千到一万之间的会员",
        lambda p: 3000 <= p.orders(D180).amount <= 10000 and p.member,
        ("三千", "A到B之间", "一万"),
    ),
    C("近一个月消费金额大于3k的人", lambda p: p.orders(D30).amount > 3000, ("3k", "大于", "近一个月")),
    C("近一年累计消费满一千五的会员", lambda p: p.orders(D365).amount >= 1500 and p.member, ("一千五",)),
    C("近一年消费金额在一万到两万五之间的人", lambda p: 10000 <= p.orders(D365).amount <= 25000, ("两万五", "一万")),
    C("今年消费超过1万元的人", lambda p: p.orders(THIS_YEAR).amount > 10000, ("万",)),
    C("近一年消费1000-3000元的人", lambda p: 1000 <= p.orders(D365).amount <= 3000, ("A-B",)),
    C(
        "去年消费满2000元但今年没买过的人",
        lambda p: p.orders(LAST_YEAR).amount >= 2000 and not p.bought(THIS_YEAR),
        ("去年", "今年", "没"),
    ),
    C(
        "近一年消费不足500元的会员",
        lambda p: p.orders(D365).amount < 500 and p.member,
        ("不足", "amount-zero"),
        why="a sum is 0 without orders, so members who did not buy are in",
    ),
    C("近一年消费金额低于三百元的会员", lambda p: p.orders(D365).amount < 300 and p.member, ("三百元", "低于")),
    C("618消费超过500元的人", lambda p: p.orders(SIX18).amount > 500, ("618",)),
    C(
        "近三个月累计消费不高于1000元的购买阶段客户",
        lambda p: p.orders(D90).amount <= 1000 and p.tag("lifecycle") == "购买",
        ("不高于",),
    ),
    # ------------------------------------------------------------------ aov / max
    C(
        "客单价低于200元的顾客",
        lambda p: lt(p.orders(D365).aov, 200),
        ("aov", "低于", "aov-absent"),
        why="客单价 needs at least one order (segment.py: aov absent compares false)",
    ),
    C("客单价300块以上的会员", lambda p: ge(p.orders(D365).aov, 300) and p.member, ("aov", "300块")),
    C("近三个月客单价不超过三百元的人", lambda p: le(p.orders(D90).aov, 300), ("aov", "三百元", "近三个月")),
    C("客单价500元起的会员", lambda p: ge(p.orders(D365).aov, 500) and p.member, ("aov", "起")),
    C(
        "今年客单价小于1000元的高价值会员",
        lambda p: lt(p.orders(THIS_YEAR).aov, 1000) and p.tag("lifecycle") == "忠诚" and p.member,
        ("aov", "小于"),
    ),
    C("单笔最高超过1000元的会员", lambda p: gt(p.orders(D365).max, 1000) and p.member, ("max",)),
    C("近一季度单笔最高不足500元的人", lambda p: lt(p.orders(D90).max, 500), ("max", "不足", "近一季度")),
    C("近半年有单笔消费超过2000元的会员", lambda p: gt(p.orders(D180).max, 2000) and p.member, ("max", "单笔")),
    C(
        "客单价高于300元且近90天消费2次以上的会员",
        lambda p: gt(p.orders(D365).aov, 300) and p.orders(D90).count >= 2 and p.member,
        ("word-order", "default-365"),
        why="the window only carries forward: 客单价 before 近90天 keeps the default 365 days",
    ),
    # ------------------------------------------------------------------ windows
    C("近7天消费过的人", lambda p: p.bought(D7), ("近N天", "bought")),
    C("近一周买过的会员", lambda p: p.bought(D7) and p.member, ("近一周",)),
    C("近一个月消费过的会员", lambda p: p.bought(D30) and p.member, ("近一个月",)),
    C("近三个月没有消费的会员", lambda p: not p.bought(D90) and p.member, ("近三个月", "没有")),
    C("近一季度买过的人", lambda p: p.bought(D90), ("近一季度",)),
    C(
        "近半年未购买的高价值会员",
        lambda p: not p.bought(D180) and p.tag("lifecycle") == "忠诚" and p.member,
        ("近半年", "未"),
    ),
    C("近一年消费过的粉丝", lambda p: p.bought(D365) and p.follower, ("近一年",)),
    C("本周消费过的人", lambda p: p.bought(THIS_WEEK), ("本周",)),
    C("上周买过的顾客", lambda p: p.bought(LAST_WEEK), ("上周",)),
    C("本月有消费的会员", lambda p: p.bought(THIS_MONTH) and p.member, ("本月",)),
    C("上个月没有购买的会员", lambda p: not p.bought(LAST_MONTH) and p.member, ("上个月", "没有")),
    C("上个月消费2次以上的人", lambda p: p.orders(LAST_MONTH).count >= 2, ("上个月",)),
    C("今年买过的会员", lambda p: p.bought(THIS_YEAR) and p.member, ("今年",)),
    C(
        "去年买过但今年没买过的会员",
        lambda p: p.bought(LAST_YEAR) and not p.bought(THIS_YEAR) and p.member,
        ("去年", "今年"),
    ),
    C("618买过的人", lambda p: p.bought(SIX18), ("618",)),
    C(
        "双11消费过的人",
        lambda p: p.bought(SHUANG11),
        ("双11",),
        why="双11 without a year is 2026-11-01..11 (begun by T), cut at T: only 2026-11-01",
    ),
    C("去年双11消费过的会员", lambda p: p.bought(LAST_YEAR_D11) and p.member, ("去年双11",)),
    C(
        "去年双11买过但今年618没买过的人",
        lambda p: p.bought(LAST_YEAR_D11) and not p.bought(SIX18),
        ("去年双11", "618"),
    ),
    C("近30天消费过的新客", lambda p: p.bought(D30) and p.first_order_in(D30), ("近30天", "新客")),
    # ------------------------------------------------------------------ window carry-over and default
    C(
        "近90天消费过且消费金额超过1000元的会员",
        lambda p: p.bought(D90) and p.orders(D90).amount > 1000 and p.member,
        ("carry-window",),
    ),
    C(
        "近半年买过女鞋并且消费超过2次的人",
        lambda p: p.bought(D180, cat("女鞋")) and p.orders(D180).count > 2,
        ("carry-window", "并且"),
    ),
    C(
        "近30天买过同时近一年消费满3000元的人",
        lambda p: p.bought(D30) and p.orders(D365).amount >= 3000,
        ("carry-window-reset", "同时"),
    ),
    C(
        "今年消费2次以上而且客单价高于500元的会员",
        lambda p: p.orders(THIS_YEAR).count >= 2 and gt(p.orders(THIS_YEAR).aov, 500) and p.member,
        ("carry-window", "而且"),
    ),
    C(
        "近90天买过外套和针织衫的人",
        lambda p: p.bought(D90, cat("外套")) and p.bought(D90, cat("针织衫")),
        ("carry-window", "和"),
        why="两个品类 joined by 和 = bought each (in orders of the window)",
    ),
    C("买过女鞋的会员", lambda p: p.bought(D365, cat("女鞋")) and p.member, ("default-365", "bought-category")),
    C("消费满3000元的会员", lambda p: p.orders(D365).amount >= 3000 and p.member, ("default-365",)),
    # ------------------------------------------------------------------ bought a category / brand / SKU
    C("近半年买过童装的人", lambda p: p.bought(D180, cat("童装")), ("bought-category", "近半年")),
    C("去年买过木棉的人", lambda p: p.bought(LAST_YEAR, brand("木棉")), ("bought-brand", "去年")),
    C("本月买过SKU0037的人", lambda p: p.bought(THIS_MONTH, sku("SKU0037")), ("bought-sku", "本月")),
    C("近三个月买过SKU0039的会员", lambda p: p.bought(D90, sku("SKU0039")) and p.member, ("bought-sku",)),
    C(
        "近半年买过木棉但近一个月没买过的人",
        lambda p: p.bought(D180, brand("木棉")) and not p.bought(D30, brand("木棉")),
        ("negation-takes-object", "bought-brand"),
    ),
    C(
        "今年买过青禾但是近三个月没有买过的会员",
        lambda p: p.bought(THIS_YEAR, brand("青禾")) and not p.bought(D90, brand("青禾")) and p.member,
        ("negation-takes-object", "但是"),
    ),
    C(
        "买过女鞋而没买过男鞋的人",
        lambda p: p.bought(D365, cat("女鞋")) and not p.bought(D365, cat("男鞋")),
        ("而", "没"),
    ),
    C(
        "今年买过连衣裙或者外套的人",
        lambda p: p.bought(THIS_YEAR, cat("连衣裙")) or p.bought(THIS_YEAR, cat("外套")),
        ("或者", "bought-category"),
        why="两个品类 joined by 或者 share the verb and the window",
    ),
    C(
        "近一年买过云裳的女性会员",
        lambda p: p.bought(D365, brand("云裳")) and p.tag("gender") == "F" and p.member,
        ("bought-brand",),
    ),
    C(
        "近半年在小程序买过牛仔裤的人",
        lambda p: p.bought(D180, cat("牛仔裤"), where=("miniapp",)),
        ("bought-category", "where-channel"),
    ),
    C(
        "从未买过童装的会员",
        lambda p: not p.bought(D365, cat("童装")) and p.member,
        ("从未", "default-365"),
        why="从未 without a window: the spec's default 365 days (commands.md pins it for every order condition)",
    ),
    C("近一年从未消费过的会员", lambda p: not p.bought(D365) and p.member, ("从未",)),
    # ------------------------------------------------------------------ events
    C(
        "近30天浏览过外套但没下单的人",
        lambda p: p.did("browse", D30, cat("外套")) and not p.bought(D30, cat("外套")),
        ("browse", "negation-takes-object"),
    ),
    C(
        "近30天浏览过女鞋但没买的会员",
        lambda p: p.did("browse", D30, cat("女鞋")) and not p.bought(D30, cat("女鞋")) and p.member,
        ("browse", "negation-takes-object"),
    ),
    C(
        "浏览过男鞋的人",
        lambda p: p.did("browse", D365, cat("男鞋")),
        ("browse", "default-365"),
        why="an event condition without a window takes the same 365 days as order conditions",
    ),
    C(
        "近30天消费过或者近7天浏览过的粉丝",
        lambda p: (p.bought(D30) or p.did("browse", D7)) and p.follower,
        ("或者", "browse"),
    ),
    C("近7天浏览过的粉丝", lambda p: p.did("browse", D7) and p.follower, ("browse",)),
    C(
        "近90天加购过女鞋但没买的人",
        lambda p: p.did("add_cart", D90, cat("女鞋")) and not p.bought(D90, cat("女鞋")),
        ("add_cart", "negation-takes-object"),
    ),
    C("近一个月加购未购买的人", lambda p: p.cart_not_bought(D30), ("cart-not-bought",)),
    C("加购未购买的会员", lambda p: p.cart_not_bought(D365) and p.member, ("cart-not-bought", "default-365")),
    C(
        "近半年加购了但没有购买的顾客",
        lambda p: p.cart_not_bought(D180),
        ("cart-not-bought",),
        why="加购了但没有购买 = 加购未购买 (per sku, a later order)",
    ),
    C("近30天领券未核销的人", lambda p: p.coupon_held(D30), ("coupon-window",)),
    C("近7天领券未核销的会员", lambda p: p.coupon_held(D7) and p.member, ("coupon-window",)),
    C("近半年领过券的会员", lambda p: p.did("coupon_get", D180) and p.member, ("coupon_get",)),
    C(
        "近一年浏览过童装并且加购过童装的人",
        lambda p: p.did("browse", D365, cat("童装")) and p.did("add_cart", D365, cat("童装")),
        ("browse", "add_cart"),
    ),
    C(
        "近90天买过牛仔裤同时浏览过外套的人",
        lambda p: p.bought(D90, cat("牛仔裤")) and p.did("browse", D90, cat("外套")),
        ("carry-window", "同时"),
    ),
    # ------------------------------------------------------------------ 新客 / 老客
    C("新客", lambda p: p.first_order_in(D30), ("新客",)),
    C("近90天的新客", lambda p: p.first_order_in(D90), ("新客",)),
    C("今年的新客有多少", lambda p: p.first_order_in(THIS_YEAR), ("新客",)),
    C("老客", lambda p: p.returning(D30), ("老客",)),
    C("近90天的老客", lambda p: p.returning(D90), ("老客",)),
    C("本月的老客会员", lambda p: p.returning(THIS_MONTH) and p.member, ("老客",)),
    # ------------------------------------------------------------------ edges: bounds met exactly, refunds, expiry
    C("单笔最高1999元及以上的人", lambda p: ge(p.orders(D365).max, 1999), ("max", "及以上", "bound-met")),
    C("单笔最高超过1999元的人", lambda p: gt(p.orders(D365).max, 1999), ("max", "超过", "bound-met")),
    C("客单价不超过59元的人", lambda p: le(p.orders(D365).aov, 59), ("aov", "不超过", "bound-met")),
    C("近一年累计消费等于59元的人", lambda p: p.orders(D365).amount == 59, ("order-amount", "等于", "bound-met")),
    C(
        "上个月领券未核销的人",
        lambda p: p.coupon_held(LAST_MONTH),
        ("coupon-window", "上个月", "expiry-bound"),
        why="a coupon gotten 2026-10-02 with valid_days 30 expires 11-01 = T: still outstanding (≥ T)",
    ),
    C(
        "近一年买过2次以上女鞋的人",
        lambda p: p.orders(D365, item=cat("女鞋")).count >= 2,
        ("order-count-item",),
        why="counts the paid orders containing the category",
    ),
    C(
        "客单价在200到500之间的人",
        lambda p: ge(p.orders(D365).aov, 200) and le(p.orders(D365).aov, 500),
        ("aov", "A到B之间"),
    ),
    C("V2-V4的会员", lambda p: p.level is not None and 2 <= p.level <= 4 and p.member, ("level", "A-B")),
    C("上个月在门店S004消费过的人", lambda p: p.bought(LAST_MONTH, where="S004"), ("where-store", "上个月")),
    C("近30天没有浏览过的粉丝", lambda p: p.follower and not p.did("browse", D30), ("browse", "没有")),
    C(
        "近90天买过女鞋且消费满2000元的会员",
        lambda p: p.bought(D90, cat("女鞋")) and p.orders(D90).amount >= 2000 and p.member,
        ("carry-window",),
    ),
    C(
        "上个月没有购买的忠诚会员",
        lambda p: not p.bought(LAST_MONTH) and p.tag("lifecycle") == "忠诚" and p.member,
        ("上个月", "没有"),
    ),
    C("本周在小程序下过单的人", lambda p: p.bought(THIS_WEEK, where=("miniapp",)), ("本周", "where-channel")),
    C("近一年从未在电商买过的会员", lambda p: not p.bought(D365, where=("ecom",)) and p.member, ("从未", "电商")),
    C("今年没有领过券的粉丝", lambda p: p.follower and not p.did("coupon_get", THIS_YEAR), ("coupon_get", "没有")),
    C("非高价值的会员", lambda p: p.member and p.tag("lifecycle") != "忠诚", ("非", "lifecycle")),
    C(
        "近90天消费2次以上或者近一年客单价高于1000元的会员",
        lambda p: (p.orders(D90).count >= 2 or gt(p.orders(D365).aov, 1000)) and p.member,
        ("或者", "order-count", "aov"),
    ),
    C("去年在上海一店消费过的人", lambda p: p.bought(LAST_YEAR, where="S001"), ("where-store-name", "去年")),
    C(
        "近半年买过SKU0037或SKU0039的人",
        lambda p: p.bought(D180, sku("SKU0037")) or p.bought(D180, sku("SKU0039")),
        ("bought-sku", "或"),
    ),
    C("导购张明的好友", lambda p: p.holds("GS0072"), ("guide-name",)),
    C("渠道来源是guide_GS0060的人", lambda p: p.tag("source") == "guide_GS0060", ("source",)),
    C("偏好渠道是公众号商城的人", lambda p: p.tag("preferred_channel") == "公众号商城", ("preferred_channel",)),
    C("企微好友中领券未核销的", lambda p: p.contact and p.tag("coupon_outstanding") == "是", ("X中", "coupon-tag")),
    C("近7天加购未购买的人", lambda p: p.cart_not_bought(D7), ("cart-not-bought",)),
    C("去年双11买过木棉的人", lambda p: p.bought(LAST_YEAR_D11, brand("木棉")), ("去年双11", "bought-brand")),
    C("618在小程序消费过的会员", lambda p: p.bought(SIX18, where=("miniapp",)) and p.member, ("618", "where-channel")),
    C(
        "最近7天浏览过但没下单的人",
        lambda p: p.did("browse", D7) and not p.bought(D7),
        ("browse", "negation-takes-object"),
        why="the browse names no item, so 没下单 means no paid order at all in the 7 days",
    ),
    C(
        "一般挽留客户中近30天浏览过的人",
        lambda p: p.tag("rfm") == "一般挽留客户" and p.did("browse", D30),
        ("rfm", "X中"),
    ),
    C(
        "今年消费金额不低于3000元的会员",
        lambda p: p.orders(THIS_YEAR).amount >= 3000 and p.member,
        ("不低于", "order-amount"),
    ),
    C(
        "近90天买过女鞋且消费2次以上且客单价高于500元的人",
        lambda p: p.bought(D90, cat("女鞋")) and p.orders(D90).count >= 2 and gt(p.orders(D90).aov, 500),
        ("carry-window", "且"),
    ),
    C(
        "近一个月的忠诚会员",
        lambda p: p.tag("lifecycle") == "忠诚" and p.member,
        ("tag-no-window",),
        why="tag words never take a window (commands.md): 忠诚 as of T",
    ),
    C(
        "近半年偏好品类是女鞋的人",
        lambda p: p.tag("preferred_category") == "女鞋",
        ("tag-no-window",),
        why="tag words never take a window: 偏好品类 is the tag as of T, not recomputed over 180 days",
    ),
    # ------------------------------------------------------------------ noise words, synonyms, word orders
    C(
        "帮我圈选一下杭州的沉睡会员",
        lambda p: p.tag("city") == "杭州" and p.tag("lifecycle") == "沉睡" and p.member,
        ("圈选", "noise"),
    ),
    C("筛选出偏好品类是女鞋的会员", lambda p: p.tag("preferred_category") == "女鞋" and p.member, ("筛选",)),
    C("找出购买力高的粉丝", lambda p: p.tag("purchase_power") == "高" and p.follower, ("找出",)),
    C("看看有多少企微好友", lambda p: p.contact, ("看看", "有多少")),
    C("哪些会员本月过生日", lambda p: p.tag("birthday_month") == 11 and p.member, ("哪些", "word-order")),
    C("会员中沉睡的", lambda p: p.member and p.tag("lifecycle") == "沉睡", ("X中", "word-order")),
    C(
        "杭州高价值会员",
        lambda p: p.tag("city") == "杭州" and p.tag("lifecycle") == "忠诚" and p.member,
        ("city", "no-的"),
    ),
    C("近90天下过单的会员", lambda p: p.bought(D90) and p.member, ("synonym-下单",)),
    C("近90天购买过的会员", lambda p: p.bought(D90) and p.member, ("synonym-购买",)),
    C("所有顾客", lambda p: True, ("everyone",)),
]

# The cases where the spec leaves a choice, with the reading taken.
AMBIGUOUS = [(c.command, c.why) for c in CASES if c.why]
