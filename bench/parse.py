"""Parse + compile latency: ~60 varied commands, each parsed and (when it names people) compiled
to its PostgreSQL statement, 200 times after a warm-up (the lexicon of the vocabulary is built
once, as in the bot); p50 / p99 per command in ms. Goal: p99 < 20 ms. Baseline of the same run:
jieba alone cutting the same texts with the same dictionary.

    .venv/bin/python bench/parse.py [--rounds 200] [--json]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json

from sqlalchemy.dialects import postgresql

from nlp import segment as seg
from nlp.intent import CampaignCommand, LabelCommand, SegmentCommand
from nlp.lexicon import lexicon_for
from nlp.parse import parse_command
from nlp.vocabulary import GuideWord, StoreWord, Vocabulary
from profile_store.segments.sql import compile_segment

DATA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sample" / "data"
COMMANDS = (
    "圈选近90天消费2次以上且客单价高于300元的沉睡会员",
    "看看上海有多少高价值会员",
    "找出近7天浏览过连衣裙但没下单的公众号粉丝",
    "给上海门店的价格导向会员下周一上午10点发30元无门槛券",
    "统计上个月双11活动的核销率和转化率",
    "查一下13812345678",
    "把领券未核销的人打上“价格敏感”标签",
    "今年累计消费满5000元但近三个月没买过的女性会员",
    "RFM为重要挽留客户且偏好品类是女鞋的有多少",
    "对比一下各渠道上个月的销售额",
    "近半年买过木棉但近一个月没买过",
    "沉睡会员中杭州的",
    "沉睡或流失的会员",
    "沉睡会员或流失会员",
    "V3及以上会员中本月过生日的",
    "生日在下个月的女性会员",
    "近30天领券未核销的人",
    "近30天加购未购买的顾客",
    "单笔最高超过1000元的会员",
    "上个月没有购买的忠诚会员",
    "公众号粉丝但不是会员",
    "购买力高且钱包深度深的女性",
    "偏好渠道是小程序的会员",
    "偏好线上的会员",
    "近90天在线上消费2次以上的会员",
    "在门店S005消费过的会员",
    "在上海一店买过童装的人",
    "收到过双11活动的会员",
    "参加过618活动但没核销",
    "导购胡霞的好友",
    "导购王五的好友",
    "渠道来源是store_0021的",
    "企微好友中的男性",
    "买过童装或女鞋的会员",
    "客单价在200到500元之间的会员",
    "至少消费2次的会员",
    "累计消费两万五以上",
    "本月买过SKU0012的会员",
    "去年双11买过的会员",
    "近半年买过羽绒服的会员",
    "门店S099的会员",
    "北京五店的会员",
    "近90天的新客",
    "门店S001的会员",
    "常去门店是上海二店的",
    "刚才那批人中的女性",
    "上海忠诚会员这个人群中近30天没买过的",
    "小程序下单3次以上",
    "加购过连衣裙但没买的",
    "哈哈哈的会员",
    "各门店本月销售额",
    "会员生命周期分布",
    "RFM分布",
    "查会员M000123",
    "看一下上海一店的张三的画像",
    "给13812345678打上VIP标签",
    "去掉沉睡会员的价格敏感标签",
    "帮助",
    "确认",
    "圈选近半年的新客并保存为半年新客",
    "给企微好友明天上午10点推送“双11活动开始啦”",
    "近30天买过童装且客单价高于300元并且近7天浏览过女鞋且加购过男鞋的上海女性会员",
)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sample_vocabulary() -> Vocabulary:
    products = _rows("products.csv")
    return Vocabulary(
        stores=tuple(StoreWord(r["store_id"], r["name"], r["city"]) for r in _rows("stores.csv")),
        guides=tuple(GuideWord(r["guide_id"], r["name"], r["store_id"], r["role"]) for r in _rows("guides.csv")),
        categories=tuple(sorted({p["category"] for p in products})),
        brands=tuple(sorted({p["brand"] for p in products})),
        skus=tuple(p["sku"] for p in products),
        coupons=tuple((r["card_id"], r["name"]) for r in _rows("coupons.csv")),
        labels=("价格敏感", "VIP"),
        segments=("上海忠诚会员",),
    )


def parse_and_compile(text: str, vocab: Vocabulary, now: datetime) -> str:
    """What the bot does with a command before touching the database: parse it, and compile the
    segment it names (saved segments stand for themselves here) to the SQL text it will run."""
    command = parse_command(text, vocab, now)
    named = isinstance(command, SegmentCommand | LabelCommand | CampaignCommand)
    tree = getattr(command, "segment", None) if named else None
    if tree is None or any(isinstance(node, seg.Saved) for node in seg.walk(tree)):
        return ""
    statement = compile_segment(tree, today=now.date())
    return str(statement.compile(dialect=postgresql.dialect()))


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout (bench/run)")
    args = parser.parse_args()
    vocab = sample_vocabulary()
    now = datetime(2026, 11, 1, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    started = time.perf_counter()
    lexicon = lexicon_for(vocab)
    build_ms = (time.perf_counter() - started) * 1000
    compiled = sum(bool(parse_and_compile(text, vocab, now)) for text in COMMANDS)  # warm-up
    samples: list[float] = []
    baseline: list[float] = []
    for _ in range(args.rounds):
        for text in COMMANDS:  # alternate: the machine's noise hits both alike
            t0 = time.perf_counter()
            lexicon.tokens(text)
            baseline.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            parse_and_compile(text, vocab, now)
            samples.append((time.perf_counter() - t0) * 1000)
    p50, p99 = percentiles(samples)
    b50, b99 = percentiles(baseline)
    result = {
        "commands": len(COMMANDS), "compiled": compiled, "rounds": args.rounds, "lexicon_build_ms": round(build_ms),
        "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "max_ms": round(max(samples), 3),
        "jieba_cut_p50_ms": round(b50, 3), "jieba_cut_p99_ms": round(b99, 3), "ratio_p50": round(p50 / b50, 1),
        "goal": "p99 < 20 ms",
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"lexicon build (once per vocabulary): {build_ms:.0f} ms")
    print(f"{len(COMMANDS)} commands ({compiled} compiled to SQL) x {args.rounds} rounds = {len(samples)}")
    print(f"parse + compile: p50 {p50:.3f} ms  p99 {p99:.3f} ms  max {max(samples):.3f} ms  (goal p99 < 20 ms)")
    print(f"baseline, jieba cut alone: p50 {b50:.3f} ms  p99 {b99:.3f} ms  (ratio at p50: {p50 / b50:.1f}x)")


if __name__ == "__main__":
    main()
