"""Words → lexemes: the domain words of tags.md and commands.md plus one retailer's `Vocabulary`,
cut by a jieba tokenizer whose user dictionary holds exactly those words.

How jieba is used: jieba decides where words begin and end. Every domain word (客单价, 领券未核销,
价格导向, 偏好品类 …) and every retailer word (store and guide names, categories, brands, SKUs,
coupon and campaign names, labels, saved segment names, cities) is added to a private
`jieba.Tokenizer` with a high frequency, so "且客单价" is cut 且 / 客单价 (jieba as-is cuts 且客 /
单价) and "上海门店" 上海 / 门店 (not 海门). The lexer then walks the tokens: at each token start
it tries the few compound patterns that jieba cannot know (numbers with units, ranges, windows,
ids such as 门店S001, birthday months) and takes the longer of that match and the jieba token; a
token found in the word table becomes that lexeme, anything else stays an `unknown` lexeme that
the grammar must place or report. Nothing meaningful is dropped silently.

One tokenizer per vocabulary fingerprint, built once, cached, and used under a lock (jieba's
tokenizer is not safe to share between threads while it cuts).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import jieba

from nlp.numbers import NUMBER, parse_number
from nlp.segment import ONLINE, Item, Tag, eq
from nlp.vocabulary import Vocabulary
from nlp.when import WINDOW_RE, window_of

jieba.setLogLevel(logging.CRITICAL + 10)
logging.getLogger("jieba").setLevel(logging.CRITICAL + 10)


@dataclass(frozen=True)
class Lexeme:
    kind: str
    text: str
    value: Any = None


# ---------------------------------------------------------------------------------- static words

AND_WORDS = (
    "且", "并且", "而且", "和", "同时", "但", "但是", "而", "并", "以及", "及", "还有", "又", "与", "跟", "却", "也",
    "同时也", "并且也", "而且也", "又是", "也是",
)  # fmt: skip
OR_WORDS = ("或", "或者", "或是", "还是")
NOT_WORDS = (
    "不",
    "非",
    "没",
    "没有",
    "未",
    "从未",
    "不是",
    "并非",
    "不属于",
    "从来没有",
    "从没",
    "尚未",
    "还没",
    "还没有",
    "从来没",
    "从来不",
    "从来没有过",
    "一直没",
    "一直没有",
    "一直未",
    "始终没",
    "始终没有",
    "都没",
    "都没有",
    "再没",
    "没再",
    "再也没",
    "再也没有",
    "一次都没",
    "一次也没",
    "一次都没有",
    "一次也没有",
)
ZHONG_WORDS = ("中", "里", "当中", "之中", "里面", "其中", "中的", "里的")
NOISE_WORDS = (
    "圈选",
    "筛选",
    "圈出",
    "圈一下",
    "找出",
    "找出来",
    "找到",
    "找一下",
    "看看",
    "看一下",
    "查看",
    "查一下",
    "查询",
    "有多少",
    "多少",
    "多少人",
    "有几个",
    "几个",
    "几位",
    "哪些",
    "哪些人",
    "一下",
    "帮我",
    "帮忙",
    "请",
    "麻烦",
    "所有",
    "全部",
    "一共",
    "共有",
    "总共",
    "都",
    "有",
    "是",
    "为",
    "了",
    "过",
    "这些",
    "那些",
    "人群",
    "群体",
    "名单",
    "数量",
    "人数",
    "个",
    "位",
    "吗",
    "呢",
    "啊",
    "吧",
    "给我",
    "列出",
    "我想",
    "想",
    "要",
    "之",
    "目前",
    "当前",
    "现在",
    "属于",
    "一批",
    "那批",
    "这批",
    "看",
    "找",
    "圈",
    "出",
    "来",
    "下",
    "这个人群",
    "这群人",
    "这个分组",
    "分组",
    "等",
    "哪",
    "人呢",
    "情况",
    "其",
    "这个",
    "那个",
    "里头",
    "分别",
    "的话",
    "既",
    "既是",
    "以来",
    "拉",
    "只要",
    "只看",
    "拉一下",
    "拉出",
    "拉个",
    "拉一个",
    "导出",
    "清单",
    "列表",
    "期间",
    "一共有",
    "看下",
    "瞧瞧",
    "筛一下",
    "筛出",
    "那种",
    "这种",
)
ANYONE_WORDS = ("人", "顾客", "客户", "用户", "消费者", "客人", "所有人")
CMP_WORDS: dict[str, str] = {
    "以上": "ge", "及以上": "ge", "或以上": "ge", "以上的": "ge", "不少于": "ge", "不低于": "ge", "至少": "ge",
    "起": "ge", "满": "ge", "及其以上": "ge", ">=": "ge", "≥": "ge",
    "超过": "gt", "高于": "gt", "大于": "gt", "多于": "gt", "超": "gt", ">": "gt",
    "以下": "le", "及以下": "le", "或以下": "le", "不超过": "le", "不高于": "le", "至多": "le", "最多": "le",
    "不多于": "le", "<=": "le", "≤": "le",
    "低于": "lt", "少于": "lt", "小于": "lt", "不到": "lt", "不足": "lt", "<": "lt",
    "大于等于": "ge", "大于或等于": "ge", "不小于": "ge", "高于或等于": "ge", "多于或等于": "ge",
    "小于等于": "le", "小于或等于": "le", "不大于": "le", "低于或等于": "le", "少于或等于": "le",
    "正好": "eq", "等于": "eq", "恰好": "eq", "刚好": "eq", "=": "eq", "+": "ge", "以上+": "ge", "多": "ge",
}  # fmt: skip
LIFECYCLE = {
    "忠诚": "忠诚", "高价值": "忠诚", "忠诚客户": "忠诚", "忠实": "忠诚", "沉睡": "沉睡", "流失": "流失",
    "沉睡唤醒": "沉睡", "待唤醒": "沉睡",
    "注册阶段": "注册", "兴趣阶段": "兴趣", "认知阶段": "认知", "购买阶段": "购买",
    "已流失": "流失", "休眠": "沉睡",
}  # fmt: skip
LIFECYCLE_VALUES = ("忠诚", "购买", "注册", "兴趣", "认知", "沉睡", "流失")
RFM_CLASSES = (
    "重要价值客户", "重要发展客户", "重要保持客户", "重要挽留客户",
    "一般价值客户", "一般发展客户", "一般保持客户", "一般挽留客户",
)  # fmt: skip
TAG_WORDS: dict[str, Tag] = {
    **{word: Tag("lifecycle", eq(value)) for word, value in LIFECYCLE.items()},
    **{name: Tag("rfm", eq(name)) for name in RFM_CLASSES},
    **{name[:4]: Tag("rfm", eq(name)) for name in RFM_CLASSES},
    **{f"{name[:4]}用户": Tag("rfm", eq(name)) for name in RFM_CLASSES},
    **{f"购买力{v}": Tag("purchase_power", eq(v)) for v in "高中低"},
    **{f"{v}购买力": Tag("purchase_power", eq(v)) for v in "高中低"},
    "购买力强": Tag("purchase_power", eq("高")), "购买力弱": Tag("purchase_power", eq("低")),
    "中等购买力": Tag("purchase_power", eq("中")), "购买力中等": Tag("purchase_power", eq("中")),
    **{f"钱包深度{v}": Tag("wallet_depth", eq(v)) for v in "深中浅"},
    **{f"钱包{v}": Tag("wallet_depth", eq(v)) for v in "深浅"},
    "价格导向": Tag("price_orientation", eq("价格导向")), "价格导向型": Tag("price_orientation", eq("价格导向")),
    "品质导向": Tag("price_orientation", eq("品质导向")), "品质导向型": Tag("price_orientation", eq("品质导向")),
    "会员": Tag("is_member", eq("是")), "会员们": Tag("is_member", eq("是")),
    "粉丝": Tag("oa_follower", eq("是")), "公众号粉丝": Tag("oa_follower", eq("是")),
    "关注公众号": Tag("oa_follower", eq("是")), "关注了公众号": Tag("oa_follower", eq("是")),
    "企微好友": Tag("wecom_contact", eq("是")), "好友": Tag("wecom_contact", eq("是")),
    "企业微信好友": Tag("wecom_contact", eq("是")), "企微客户": Tag("wecom_contact", eq("是")),
    "加企微": Tag("wecom_contact", eq("是")), "加了企微": Tag("wecom_contact", eq("是")),
    "加过企微": Tag("wecom_contact", eq("是")), "加企业微信": Tag("wecom_contact", eq("是")),
    "女性": Tag("gender", eq("F")), "女士": Tag("gender", eq("F")), "女生": Tag("gender", eq("F")),
    "女": Tag("gender", eq("F")), "男性": Tag("gender", eq("M")), "男士": Tag("gender", eq("M")),
    "男生": Tag("gender", eq("M")), "男": Tag("gender", eq("M")), "男人": Tag("gender", eq("M")),
    "女人": Tag("gender", eq("F")), "男顾客": Tag("gender", eq("M")), "女顾客": Tag("gender", eq("F")),
    "领券未核销": Tag("coupon_outstanding", eq("是")),
}  # fmt: skip
# Attribute names that take a value after them (偏好品类是女鞋, RFM为重要挽留客户, 渠道来源是store_0021).
ATTR_WORDS = {
    "生命周期": "lifecycle", "生命周期阶段": "lifecycle", "rfm": "rfm", "rfm分层": "rfm", "rfm分类": "rfm",
    "购买力": "purchase_power", "钱包深度": "wallet_depth", "购买类型": "price_orientation",
    "偏好品类": "preferred_category", "偏好类目": "preferred_category", "偏好": "preferred_category",
    "喜欢": "preferred_category", "浏览偏好": "browse_preference", "偏好渠道": "preferred_channel",
    "常去门店": "preferred_store", "常去": "preferred_store", "常逛": "preferred_store",
    "渠道来源": "source", "来源": "source", "来源渠道": "source", "来自": "source",
    "会员等级": "level", "等级": "level", "城市": "city", "所在城市": "city", "性别": "gender",
    "券核销率": "coupon_redemption_rate", "核销率": "coupon_redemption_rate", "优惠券核销率": "coupon_redemption_rate",
    "核心sku": "core_sku", "核心商品": "core_sku", "所属导购": "guides", "归属导购": "guides", "专属导购": "guides",
}  # fmt: skip
# buy verbs (bought / order count / amount)
BUY_WORDS = (
    "买过", "买", "买了", "购买", "购买过", "购买了", "有购买", "消费", "消费过", "消费了", "有消费", "下单", "下过单",
    "下单过", "下了单", "下单了", "成交", "成交过", "有订单", "下过", "买东西",
    "消费记录", "购买记录", "订单记录", "交易记录", "成交记录", "购物记录", "交易", "交易过", "购物", "购物过",
    "买单", "买单过", "付款", "付过款", "支付过",
)  # fmt: skip
MEASURE_WORDS = {
    "客单价": "aov", "平均客单价": "aov", "平均每单": "aov", "平均订单金额": "aov",
    "单笔": "max", "单笔最高": "max", "最高单笔": "max", "单笔消费": "max", "单笔金额": "max",
    "单笔订单": "max", "单笔订单金额": "max", "单笔消费金额": "max", "单笔最高消费": "max", "最大单笔": "max",
    "累计消费": "amount", "消费金额": "amount", "消费额": "amount", "总消费": "amount", "消费总额": "amount",
    "累计消费金额": "amount", "累计购买": "amount", "累计": "amount", "总共消费": "amount", "一共消费": "amount",
    "消费次数": "count", "购买次数": "count", "下单次数": "count", "订单数": "count", "订单量": "count",
    "单数": "count", "累计消费次数": "count",
    "下单金额": "amount", "购买金额": "amount", "实付金额": "amount", "订单金额": "amount", "支付金额": "amount",
    "消费总金额": "amount", "总金额": "amount", "订单总额": "amount", "实付": "amount", "花了": "amount",
    "花费": "amount", "花过": "amount", "一共花了": "amount", "累计花了": "amount", "成交金额": "amount",
    "下单数": "count", "订单次数": "count", "到店次数": "count", "来店次数": "count",
}  # fmt: skip
EVENT_WORDS = {
    "浏览过": "browse", "浏览": "browse", "浏览了": "browse", "看过": "browse",
    "加购": "add_cart", "加购过": "add_cart", "加购了": "add_cart", "加入购物车": "add_cart", "加过购物车": "add_cart",
    "点击过": "click", "点击": "click", "点过": "click",
    "领券": "coupon_get", "领过券": "coupon_get", "领了券": "coupon_get", "领取过优惠券": "coupon_get",
    "领过优惠券": "coupon_get", "领取优惠券": "coupon_get", "领取": "coupon_get", "领过": "coupon_get",
    "核销过": "coupon_consume", "用过券": "coupon_consume", "用券": "coupon_consume", "核销": "coupon_consume",
    "发过消息": "message", "咨询过": "message", "留言": "message", "扫码": "scan", "扫过码": "scan",
}  # fmt: skip
CAMPAIGN_VERBS = {
    "收到过": "received", "收到": "received", "收到了": "received", "触达过": "received", "被触达": "received",
    "参加过": "joined", "参与过": "joined", "参加": "joined", "参与": "joined", "参加了": "joined", "参与了": "joined",
    "核销过": "redeemed", "核销了": "redeemed", "核销": "redeemed", "用过": "redeemed",
}  # fmt: skip
CHANNEL_WORDS: dict[str, tuple[str, ...]] = {
    "线下": ("pos",), "门店": ("pos",), "实体店": ("pos",), "小程序": ("miniapp",), "电商": ("ecom",),
    "公众号商城": ("oa_mall",), "线上": ONLINE, "网上": ONLINE,
}  # fmt: skip
CHANNEL_NAMES = {"pos": "门店", "miniapp": "小程序", "ecom": "电商", "oa_mall": "公众号商城"}
# 复购 / 回购 / 回头客 (commands.md has no word for it; tags.md's F of RFM is "orders_365d ≥ 2"): a
# repeat buyer is someone with at least two paid orders in the window. Negated (半年内没回购的老客)
# it means what a marketer means by it: no paid order in that window.
REBUY_WORDS = (
    "复购", "复购过", "复购了", "回购", "回购过", "回购了", "回头客", "回头客户", "回头顾客", "复购客户",
    "复购用户", "复购顾客", "复购会员", "多次购买", "多次消费", "多次下单", "多次购买过", "多次消费过",
    "再次购买", "再次购买过", "二次购买", "二次购买过", "重复购买", "重复购买过",
)  # fmt: skip
# A store visit (来过 / 到店 / 进店 …): the data has no visit record, only orders, so a visit is a
# paid `pos` order (commands.md "线下 / 门店 (channel pos)"); 没来过 = no pos order in the window.
VISIT_WORDS = (
    "来过", "来店", "来过店", "到店", "到过店", "进店", "进过店", "光顾", "光顾过", "回店", "来门店", "到门店",
    "进门店", "来店里", "到店里", "逛过门店", "去过门店", "去过店里", "来过门店", "到过门店", "去过", "到过", "逛过",
)  # fmt: skip
# Words for "any goods" after a buy verb (买过东西): the order condition has no item.
ANYTHING_WORDS = ("东西", "商品", "货", "产品", "任何东西", "任何商品", "货品", "宝贝")
BRAND_WORDS = ("牌子", "品牌", "这个牌子", "这个品牌")
BUYER_WORDS = ("买家", "购买者", "购买人", "购买用户", "购买客户", "购买人群")
ONLY_WORDS = ("只", "仅", "只有", "仅仅", "只是")
# Tier words (高客单, 大额订单): with no window or place they are the tag of tags.md that says the same
# (购买力 by aov_365d, 钱包深度 by max_order_365d); with one, the same threshold on that window's
# orders. (measure, op, fen, tag key, tag value)
TIER_WORDS: dict[str, tuple[str, str, int, str, str]] = {
    **{w: ("aov", "ge", 50_000, "purchase_power", "高") for w in ("高客单", "高客单价", "客单价高", "客单高")},
    **{w: ("aov", "lt", 20_000, "purchase_power", "低") for w in ("低客单", "低客单价", "客单价低", "客单低")},
    **{
        w: ("max", "ge", 100_000, "wallet_depth", "深")
        for w in ("大额订单", "大单", "大额消费", "大额", "大额单", "大额购买", "大订单")
    },
}  # fmt: skip
NEW_WORDS = {
    "老会员": "old",
    "首次购买": "new",
    "首购": "new",
    "首单": "new",
    "第一次购买": "new",
    "首次下单": "new",
    "首次消费": "new",
    "新客": "new",
    "新客户": "new",
    "新顾客": "new",
    "老客": "old",
    "老客户": "old",
    "老顾客": "old",
}
# Well-known cities: one the retailer's data does not have is reported as an unknown city (深圳的会员
# for a retailer without anyone in 深圳), not as a word the parser cannot read.
KNOWN_CITIES = (
    "北京", "上海", "广州", "深圳", "杭州", "南京", "苏州", "成都", "重庆", "武汉", "西安", "天津", "长沙", "郑州",
    "青岛", "宁波", "厦门", "福州", "济南", "合肥", "昆明", "沈阳", "大连", "哈尔滨", "长春", "石家庄", "太原",
    "南昌", "南宁", "贵阳", "兰州", "海口", "三亚", "无锡", "常州", "温州", "佛山", "东莞", "珠海", "中山", "泉州",
    "嘉兴", "绍兴", "金华", "台州", "徐州", "扬州", "南通", "烟台", "潍坊", "呼和浩特", "乌鲁木齐", "拉萨", "银川",
    "西宁", "香港", "澳门", "台北", "惠州", "汕头", "湖州", "镇江", "洛阳", "唐山", "保定", "廊坊", "绵阳", "宜昌",
)  # fmt: skip
SAVED_LAST_WORDS = (
    "刚才那批人", "刚才那些人", "刚才的人", "刚才那批", "刚才的人群", "刚才那个人群", "上次那批人", "上一批人",
    "刚刚那批人", "刚刚的人群", "这批人", "刚才圈的人", "刚才圈选的人", "刚才圈的那批人", "刚才圈出的人",
)  # fmt: skip
SAVED_SUFFIX = ("这个人群", "这批人", "人群", "这个分组", "分组", "这群人")
OTHER_WORDS = {
    "的": "DE",
    "在": "AT",
    "门店": "STOREWORD",
    "导购": "GUIDEWORD",
    "店员": "GUIDEWORD",
    "活动": "ACTIVITY",
    "标签": "LABELWORD",
    "人群包": "NOISE",
}
DOMAIN_EXTRA = (
    "客单价", "领券未核销", "加购未购买", "核销率", "转化率", "销售额", "各渠道", "各门店", "画像",
    "打上", "去掉", "无门槛券", "生日", "过生日", "下个月", "上个月", "本月", "本周", "上周", "下周", "近一周",
    "近半年", "近一年", "近一季度", "双11", "双十一",
)  # fmt: skip


# ---------------------------------------------------------------------------------- patterns

_UNIT = r"(?P<unit>次|单|笔|块钱|元钱|块|元|w|W|万元|千元|人|位|个|天|%|折)?"
_UNIT2 = r"(?P<unit2>次|单|笔|块钱|元钱|块|元|万元|千元|人|位|个|天|%|折)?"
_NUM_RE = re.compile(rf"(?P<num>{NUMBER})\s*{_UNIT}")
_RANGE_RE = re.compile(
    rf"(?P<lo>{NUMBER})\s*{_UNIT}\s*(?:到|至|-|~|—|－)\s*(?P<hi>{NUMBER})\s*{_UNIT2}\s*(?:之间|以内|区间)?"
)
_LEVEL_RE = re.compile(r"[vV]\s*(?P<n>[0-9])(?:级)?")
_LEVEL_RANGE_RE = re.compile(r"[vV](?P<lo>[0-9])\s*(?:到|至|-|~)\s*[vV]?(?P<hi>[0-9])(?:之间)?")
# An id as retailers write them (S001, SH-01, w_lisa …): latin letters, digits, _ - . with a digit or
# an underscore somewhere, so plain words (VIP) are not taken for ids.
_ID = r"(?=[A-Za-z0-9_.\-]*[0-9_])[A-Za-z0-9][A-Za-z0-9_.\-]*(?<![.\-])"
_STORE_ID_RE = re.compile(rf"(?:(?:门店|店铺|分店)\s*(?P<a>{_ID})|(?P<b>{_ID})\s*号?(?:门店|店铺|分店|店))")
_GUIDE_ID_RE = re.compile(rf"(?:导购|店员)\s*(?P<id>{_ID})")
# Pattern lexemes that give way to a table word of the same length (w_lisa is a guide, not a source).
_WEAK = frozenset({"SOURCE", "UNKNOWN_STORE", "UNKNOWN_GUIDE"})
_SOURCE_RE = re.compile(r"[A-Za-z]+_[A-Za-z0-9_]+")
_CN_STORE_TAIL_RE = re.compile(r"(?:[一二三四五六七八九十\d]+号?|[东西南北中]|旗舰)(?:店|分店)(?![员长铺])")
_MONTH_WORD = r"(?:本月|这个月|当月|下个?月|下一个月|上个?月|\d{1,2}月|十[一二]?月|[一二三四五六七八九]月)"
_BIRTHDAY_RE = re.compile(
    rf"(?:生日(?:月)?(?:在|是|为)?(?P<a>{_MONTH_WORD})份?(?:的)?(?:生日)?|(?P<b>{_MONTH_WORD})份?(?:过)?生日)"
)
_CART_NB_RE = re.compile(
    r"加购(?:了|过)?(?:商品)?(?:但|却|而|后|之后)?(?:还)?(?:未|没有|没)(?:有)?(?:购买|买|下单|支付|付款|成交)(?:过)?"
)
_COUPON_OUT_RE = re.compile(
    r"(?:领(?:了|过|取了?|取过|到了?)?(?:优惠)?券(?:但|却|而|后|以后|之后|了)?(?:但|却|而)?"
    r"(?:还|一直|都|始终|从来|至今|到现在|到现在都|到现在还)?(?:未|没有|没|不)(?:有)?(?:核销|使用|用|用掉|去用)(?:过|掉)?"
    r"|有?(?:未核销|未使用|没用|没有用|没使用|没核销)(?:的|掉的|过的)?(?:优惠)?券|领券未核销|领券未使用"
    r"|(?:手上|手里)?有(?:优惠)?券(?:但|却)?(?:还|一直)?(?:没|没有|未)(?:用|使用|核销)(?:过|掉)?"
    r"|(?:优惠)?券(?:还|一直|都)?(?:没|没有|未)(?:有)?(?:用|使用|核销)(?:掉|过)?)"
)
# 新加的企微好友 / 新关注的粉丝: an add_contact / follow event in the window (the contact or the
# follower that follows is the tag, said as well).
_NEW_ADD_RE = re.compile(
    r"新(?:加|添加|增|增加)了?(?=的?(?:导购)?(?:企微|企业微信|微信|好友))(?:(?:企微|企业微信|微信)(?=的|$))?"
)
_NEW_FOLLOW_RE = re.compile(r"新(?:关注了?(?:公众号|服务号)?|增了?(?=的?(?:公众号)?粉丝))")
_FEST_CAMPAIGN_RE = re.compile(r"(?P<name>双11|双十一|618|六一八|双12|双十二)(?:大促)?活动")
_SPACE_RE = re.compile(r"\s+")
_FESTIVAL_NAMES = {"双十一": "双11", "六一八": "618", "双十二": "双12"}


def normalise(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation become plain), no spaces, no
    sentence punctuation. Quotes are kept (label names)."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[,，、。!！?？;；…·()（）\[\]【】《》{}|/\\]+", " ", text)
    text = re.sub(r"(?<!\d)[:：]|[:：](?!\d)", " ", text)
    text = re.sub(r"(?<=\d)\s+(?=\d)", "", text)
    return _SPACE_RE.sub("", text).strip()


def month_word(word: str, today: date) -> int | None:
    word = word.rstrip("份")
    relative = {"本月": 0, "这个月": 0, "当月": 0, "下月": 1, "下个月": 1, "下一个月": 1, "上月": -1, "上个月": -1}
    if word in relative:
        index = today.month - 1 + relative[word]
        return index % 12 + 1
    value = parse_number(word.rstrip("月"))
    return int(value) if value is not None and value == int(value) and 1 <= value <= 12 else None


# ---------------------------------------------------------------------------------- the lexicon


class Lexicon:
    """The word table and jieba tokenizer of one vocabulary."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.saved_names: Sequence[str] = ()  # set per vocabulary by `lexicon_for`
        self.saved_loose = False  # saved names read as such even without "这个人群"
        self.table: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self._add_static()
        self._add_vocab(vocab)
        self.store_names = {s.name: s.store_id for s in vocab.stores}
        self.store_ids = {s.store_id.lower(): s.store_id for s in vocab.stores}
        self.guide_ids = {g.guide_id.lower(): g.guide_id for g in vocab.guides}
        self.max_word = max((len(w) for w in self.table), default=1)
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()
        for word in sorted(set(self.table) | set(DOMAIN_EXTRA)):
            if len(word) > 1 and not word.isascii():
                self.tokenizer.add_word(word, 200_000, "nz")

    def _put(self, word: str, kind: str, value: Any = None) -> None:
        # Keys are normalised like the text they are looked up in ("Estee Lauder" → "esteelauder").
        key = normalise(word).lower()
        if key:
            self.table[key] = (kind, value)

    def _add_static(self) -> None:
        for word in NOISE_WORDS:
            self._put(word, "NOISE")
        for word in ANYONE_WORDS:
            self._put(word, "ANYONE")
        for word in ZHONG_WORDS:
            self._put(word, "ZHONG")
        for word in AND_WORDS:
            self._put(word, "AND")
        for word in OR_WORDS:
            self._put(word, "OR")
        for word in NOT_WORDS:
            self._put(word, "NOT")
        for word, op in CMP_WORDS.items():
            self._put(word, "CMP", op)
        for word, attr in ATTR_WORDS.items():
            self._put(word, "ATTR", attr)
        for word, tag in TAG_WORDS.items():
            self._put(word, "TAG", tag)
        for word in BUY_WORDS:
            self._put(word, "BUY", word)
        for word, measure in MEASURE_WORDS.items():
            self._put(word, "MEASURE", measure)
        for word, event in EVENT_WORDS.items():
            self._put(word, "EVENT", event)
        for word, action in CAMPAIGN_VERBS.items():
            if word not in self.table:
                self._put(word, "CTVERB", action)
            else:
                self._put(word, "EVENT_OR_CT", (self.table[word.lower()], action))
        for word, channels in CHANNEL_WORDS.items():
            self._put(word, "CHANNEL", channels)
            self._put(word + "渠道", "CHANNEL", channels)
        for word, kind in OTHER_WORDS.items():
            self._put(word, kind)
        for word, which in NEW_WORDS.items():
            self._put(word, "NEW", which)
        for word in SAVED_LAST_WORDS:
            self._put(word, "SAVED", "")
        for word in REBUY_WORDS:
            self._put(word, "REBUY", word)
        for word in VISIT_WORDS:
            self._put(word, "VISIT", word)
        for word in ANYTHING_WORDS:
            self._put(word, "ANYTHING")
        for word in BRAND_WORDS:
            self._put(word, "BRANDWORD")
        for word in BUYER_WORDS:
            self._put(word, "BUYER")
        for word in ONLY_WORDS:
            self._put(word, "ONLY")
        for lead, op in (("过", "gt"), ("破", "gt"), ("上", "ge")):
            for unit, amount in (("百", 100), ("千", 1000), ("万", 10_000), ("十万", 100_000)):
                self._put(lead + unit, "NUMCMP", (op, Decimal(amount)))
        for word, tier in TIER_WORDS.items():
            self._put(word, "TIER", tier)
        for word in ("加购未购买", "加购未买", "加购没买"):
            self._put(word, "CARTNB")
        self._put("领券未核销", "COUPONOUT")
        self._put("中等", "VALUE", "中")
        for word in ("高", "低", "深", "浅", "强", "弱"):
            self._put(word, "VALUE", {"强": "高", "弱": "低"}.get(word, word))
        self._put("券", "COUPONWORD")
        self._put("优惠券", "COUPONWORD")

    def _add_vocab(self, vocab: Vocabulary) -> None:
        for city in KNOWN_CITIES:
            self._put(city, "UNKNOWN_CITY", city)
        for city in sorted({*vocab.cities, *(s.city for s in vocab.stores)}):
            if city:
                self._put(city, "CITY", city)
                if city.endswith("市"):
                    self._put(city[:-1], "CITY", city)
        guides: dict[str, list[str]] = {}
        for guide in vocab.guides:
            guides.setdefault(guide.name, []).append(guide.guide_id)
            self._put(guide.guide_id, "GUIDE", (guide.guide_id,))
        for name, ids in guides.items():
            if name:
                self._put(name, "GUIDE", tuple(sorted(ids)))
        for label in vocab.labels:
            self._put(label, "LABEL", label)
        for name in vocab.categories:
            self._put(name, "ITEM", Item("category", name))
        for name in vocab.brands:
            self._put(name, "ITEM", Item("brand", name))
        for sku in vocab.skus:
            self._put(sku, "ITEM", Item("sku", sku))
        for store in vocab.stores:
            self._put(store.store_id, "STORE", store.store_id)
            if store.name:
                self._put(store.name, "STORE", store.store_id)
        for name in vocab.campaigns:
            self._put(name, "CAMPAIGN", name)
            if name.endswith("活动") and len(name) > 2:
                self._put(name[:-2], "CAMPAIGN", name)
        for _card, name in vocab.coupons:
            if name.lower() not in self.table:
                self._put(name, "COUPON", name)
        # Saved segment names are not words of the table (nor of the fingerprint: saving a
        # segment must not rebuild the dictionary), and "会员" saved as a segment must not turn
        # every later "会员" into a reference: see `_saved_at`.
        for source in vocab.sources:
            self._put(source, "SOURCE", source)

    # ------------------------------------------------------------------ lexing

    def tokens(self, text: str) -> list[tuple[str, int, int]]:
        with self._lock:
            return list(self.tokenizer.tokenize(text, HMM=False))

    def lex(self, text: str, today: date) -> list[Lexeme]:
        """`text` (already `normalise`d) → lexemes; unknown tokens become kind "UNKNOWN"."""
        saved_names = self.saved_names
        ends: dict[int, int] = {}
        boundaries: set[int] = {len(text)}
        for _word, start, end in self.tokens(text):
            ends[start] = end
            boundaries.add(end)
        token_end_at = [0] * (len(text) + 1)
        current = 0
        for i in range(len(text)):
            if i in ends:
                current = ends[i]
            token_end_at[i] = max(current, i + 1)
        out: list[Lexeme] = []
        pos = 0
        while pos < len(text):
            saved_here = self._saved_at(text, pos, saved_names, loose=self.saved_loose)
            if saved_here is not None:
                out.append(saved_here[0])
                pos = saved_here[1]
                continue
            tok_end = token_end_at[pos]
            token = text[pos:tok_end]
            pattern = self._pattern_at(text, pos, today)
            word = self._word_at(text, pos, tok_end, boundaries)
            if pattern is not None and (
                word is None or pattern[1] > word[1] or (pattern[1] == word[1] and pattern[0].kind not in _WEAK)
            ):
                out.append(pattern[0])
                pos = pattern[1]
            elif word is not None:
                out.append(word[0])
                pos = word[1]
            else:
                if out and out[-1].kind == "UNKNOWN" and not token.isascii() and not out[-1].text.isascii():
                    last = out.pop()
                    out.append(Lexeme("UNKNOWN", last.text + token))
                elif token.strip():
                    out.append(Lexeme("UNKNOWN", token))
                pos = tok_end
        return out

    def names_saved_in(self, text: str) -> bool:
        return any(name in text for name in self.saved_names)

    def with_loose_saved_names(self) -> Lexicon:
        view = copy.copy(self)
        view.saved_loose = True
        return view

    @staticmethod
    def _saved_at(text: str, pos: int, names: Sequence[str], *, loose: bool = False) -> tuple[Lexeme, int] | None:
        """A saved segment's name used as one: "上海忠诚会员这个人群" / "人群上海忠诚会员" (or,
        `loose`, anywhere: the words made no sense otherwise)."""
        for name in names:
            end = pos + len(name)
            if text.startswith(name, pos) and (
                loose or text[:pos].endswith("人群") or any(text.startswith(suffix, end) for suffix in SAVED_SUFFIX)
            ):
                return Lexeme("SAVED", name, name), end
        return None

    def _word_at(self, text: str, pos: int, tok_end: int, boundaries: set[int]) -> tuple[Lexeme, int] | None:
        token = text[pos:tok_end]
        found = self.table.get(token.lower())
        best: tuple[Lexeme, int] | None = (Lexeme(found[0], token, found[1]), tok_end) if found else None
        # A table word jieba cut into several whole tokens still counts, longest first.
        for length in range(min(self.max_word, len(text) - pos), len(token), -1):
            if pos + length not in boundaries:
                continue
            piece = text[pos : pos + length]
            entry = self.table.get(piece.lower())
            if entry is not None:
                return Lexeme(entry[0], piece, entry[1]), pos + length
        return best

    def _pattern_at(self, text: str, pos: int, today: date) -> tuple[Lexeme, int] | None:
        found: list[tuple[Lexeme, int]] = []

        def add(kind: str, match: re.Match[str] | None, value: Any = None) -> None:
            if match is not None and match.end() > pos:
                found.append((Lexeme(kind, match.group(0), value), match.end()))

        char = text[pos]
        m = _FEST_CAMPAIGN_RE.match(text, pos)
        if m:
            add("CAMPAIGN", m, _FESTIVAL_NAMES.get(m.group("name"), m.group("name")))
        m = _BIRTHDAY_RE.match(text, pos)
        if m:
            month = month_word(m.group("a") or m.group("b"), today)
            if month is not None:
                add("BIRTHDAY", m, month)
        if char in "加":
            add("CARTNB", _CART_NB_RE.match(text, pos))
        if char in "领有未券优手没":
            add("COUPONOUT", _COUPON_OUT_RE.match(text, pos))
        if char == "新":
            add("EVENT", _NEW_ADD_RE.match(text, pos), "add_contact")
            add("EVENT", _NEW_FOLLOW_RE.match(text, pos), "follow")
        m = WINDOW_RE.match(text, pos)
        if m:
            window = window_of(m, today)
            if window is not None:
                add("WINDOW", m, window)
        m = _RANGE_RE.match(text, pos)
        if m:
            lo, hi = parse_number(m.group("lo")), parse_number(m.group("hi"))
            if lo is not None and hi is not None:
                add("RANGE", m, (lo, hi, m.group("unit") or m.group("unit2") or ""))
        m = _NUM_RE.match(text, pos)
        if m:
            value = parse_number(m.group("num"))
            if value is not None:
                add("NUM", m, (value, m.group("unit") or ""))
        if char in "vV":
            m = _LEVEL_RANGE_RE.match(text, pos)
            if m:
                add("LEVELRANGE", m, (f"V{m.group('lo')}", f"V{m.group('hi')}"))
            m = _LEVEL_RE.match(text, pos)
            if m:
                add("LEVEL", m, f"V{m.group('n')}")
        m = _STORE_ID_RE.match(text, pos)
        if m:
            raw = m.group("a") or m.group("b")
            known = self.store_ids.get(raw.lower())
            add("STORE" if known else "UNKNOWN_STORE", m, known or raw)
        m = _GUIDE_ID_RE.match(text, pos)
        if m:
            known = self.guide_ids.get(m.group("id").lower())
            add("GUIDE" if known else "UNKNOWN_GUIDE", m, (known,) if known else m.group("id"))
        if char.isascii() and char.isalpha():
            m = _SOURCE_RE.match(text, pos)
            if m:
                add("SOURCE", m, m.group(0))
        if not char.isascii():
            for length in (2, 3, 4):
                if self.table.get(text[pos : pos + length], ("",))[0] == "CITY":
                    m = _CN_STORE_TAIL_RE.match(text, pos + length)
                    if m and text[pos : m.end()].lower() not in self.table:
                        found.append((Lexeme("UNKNOWN_STORE", text[pos : m.end()], text[pos : m.end()]), m.end()))
        if not found:
            return None
        # Longest wins; on a tie the first found (the order above is the priority).
        best = found[0]
        for candidate in found[1:]:
            if candidate[1] > best[1]:
                best = candidate
        return best


_CACHE: OrderedDict[str, Lexicon] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8
_LAST: tuple[Vocabulary, Lexicon] | None = None


def lexicon_for(vocab: Vocabulary) -> Lexicon:
    """The lexicon of `vocab`'s words, knowing its saved segment names (a shallow copy of the
    cached one: the names change after most segment commands, the dictionary rarely)."""
    base = _lexicon_for(vocab)
    names = sorted({normalise(n) for n in vocab.segments if normalise(n)}, key=len, reverse=True)
    if not names:
        return base
    view = copy.copy(base)
    view.saved_names = names
    return view


def _lexicon_for(vocab: Vocabulary) -> Lexicon:
    """The lexicon of `vocab`, built once per fingerprint (`version` when the loader set it, else
    `fingerprint()`): a build loads jieba's dictionary (~1 s), so it is never done per request."""
    last = _LAST
    if last is not None and last[0] is vocab:
        return last[1]  # the same object as last time: no need to digest every word again
    key = vocab.version or vocab.fingerprint()
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = Lexicon(vocab)
            _CACHE[key] = found
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
        _remember(vocab, found)
        return found


def _remember(vocab: Vocabulary, lexicon: Lexicon) -> None:
    global _LAST
    _LAST = (vocab, lexicon)


def as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
