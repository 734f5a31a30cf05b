"""Commands the parser understands, one per kind of phrasing: shown by `help` and offered as the
nearest suggestions when a command is not understood (`nlp.parse.suggest`). Every line here must
parse (tests/test_nlp_parse.py checks it against the sample vocabulary)."""

from __future__ import annotations

EXAMPLES: tuple[str, ...] = (
    "圈选近90天消费2次以上且客单价高于300元的沉睡会员",
    "看看上海有多少高价值会员",
    "找出近7天浏览过连衣裙但没下单的公众号粉丝",
    "今年累计消费满5000元但近三个月没买过的女性会员",
    "RFM为重要挽留客户且偏好品类是女鞋的有多少",
    "近半年买过童装的会员",
    "上海门店的价格导向会员",
    "V3及以上会员中本月过生日的",
    "沉睡会员中杭州的",
    "领券未核销的会员",
    "近30天领券未核销的人",
    "近30天加购未购买的顾客",
    "单笔最高超过1000元的会员",
    "上个月没有购买的忠诚会员",
    "公众号粉丝但不是会员",
    "购买力高且钱包深度深的女性",
    "偏好渠道是小程序的会员",
    "近90天在线上消费2次以上的会员",
    "收到过双11活动但没核销的会员",
    "圈选近半年的新客并保存为半年新客",
    "给上海门店的价格导向会员下周一上午10点发30元无门槛券",
    "统计上个月双11活动的核销率和转化率",
    "对比一下各渠道上个月的销售额",
    "各门店本月销售额",
    "会员生命周期分布",
    "RFM分布",
    "查一下13812345678",
    "查会员M000123",
    "把领券未核销的人打上“价格敏感”标签",
    "去掉沉睡会员的价格敏感标签",
    "帮助",
)
