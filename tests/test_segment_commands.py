"""Acceptance: Chinese segment commands (spec/commands.md) give the people they mean, on the sample.

Each command of tests/segment_oracle/cases.py is parsed (`nlp.parse.parse_segment`) and run
(`profile_store.segments.sql.members`) on the sample retailer, imported and refreshed as of
T = 2026-11-01 once per back-end; its people are compared, by identities, with the set an
independent oracle (tests/segment_oracle, plain Python over the CSV files and
expected_profiles.jsonl) computes for what the command means. The CLI line
`qianmian segment … --format jsonl --include-pii` must give exactly the people of
expected_segments.json, and the oracle itself is checked against the spec authors' files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from profile_store.db import Database
from profile_store.pii import PiiVault
from tests.conftest import SAMPLE_DIR, TEST_SECRET, _pg_admin, _pg_url
from tests.segment_oracle import T, identity_key, load_sample
from tests.segment_oracle.cases import CASES, Case
from tests.segment_oracle.model import IdentityKey
from tests.segment_oracle.windows import D365, Window

VAULT = PiiVault(TEST_SECRET)
EXPECTED_SEGMENTS: list[dict[str, Any]] = json.loads((SAMPLE_DIR / "expected_segments.json").read_text("utf-8"))


def people_of(pairs_per_person: list[list[Any]]) -> set[IdentityKey]:
    """expected_segments.json's people: each a list of [kind, value] pairs (openid value a pair)."""
    return {
        frozenset((kind, tuple(value) if isinstance(value, list) else value) for kind, value in person)
        for person in pairs_per_person
    }


def shown(person: IdentityKey) -> str:
    return " ".join(f"{k}={'/'.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(person, key=str))


def difference(expected: set[IdentityKey], actual: set[IdentityKey], limit: int = 12) -> str:
    missing, extra = sorted(map(shown, expected - actual)), sorted(map(shown, actual - expected))
    lines = [f"expected {len(expected)}, got {len(actual)}; missing {len(missing)}, extra {len(extra)}"]
    lines += [f"  missing: {m}" for m in missing[:limit]] + (["  …"] if len(missing) > limit else [])
    lines += [f"  extra:   {e}" for e in extra[:limit]] + (["  …"] if len(extra) > limit else [])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- the oracle itself


def test_oracle_reproduces_the_expected_metrics() -> None:
    """Attribution of rows to persons is right: every person's order metrics and the coupon tag
    computed by the oracle equal the spec authors' (a check of the oracle, not of the product)."""
    sample = load_sample()
    ever = Window(T.replace(year=2000), T)
    wrong: list[str] = []
    for p in sample.persons:
        year, total = p.orders(D365), p.orders(ever)
        got: dict[str, Any] = {
            "orders_365d": year.count,
            "amount_365d": year.amount,
            "orders_total": total.count,
            "amount_total": total.amount,
            "aov_365d": year.aov,  # unrounded: the file rounds to 0.01
            "max_order_365d": year.max,
            "recency_days": (T - max(o.day for o in total.orders)).days if total else None,
        }
        for key, value in got.items():
            want = p.metrics.get(key)
            if (want is None) != (value is None) or (want is not None and abs(float(value) - want) > 0.01):
                wrong.append(f"{p.ref} {key}: oracle {value}, expected {want}")
        if p.coupon_held() != (p.tag("coupon_outstanding") == "是"):
            wrong.append(f"{p.ref} coupon_outstanding: oracle {p.coupon_held()}")
    assert not wrong, "\n".join(wrong[:20])
    assert len(sample.persons) == 672


def test_oracle_agrees_with_expected_segments() -> None:
    """Every command of expected_segments.json is a case, and the oracle gives its people."""
    sample = load_sample()
    by_command = {case.command: case for case in CASES}
    for entry in EXPECTED_SEGMENTS:
        assert entry["command"] in by_command, f"no case for {entry['command']}"
        expected = people_of(entry["people"])
        assert len(expected) == entry["count"]
        got = sample.who(by_command[entry["command"]].who)
        assert got == expected, f"{entry['command']}\n{difference(expected, got)}"


def test_the_set_is_large_and_not_trivial() -> None:
    sample = load_sample()
    assert len(CASES) >= 150 and len({c.command for c in CASES}) == len(CASES)
    sizes = [len(sample.who(c.who)) for c in CASES]
    assert sum(1 for n in sizes if n == 0) <= 5  # a few empty answers, not many
    assert sum(1 for n in sizes if 0 < n < len(sample.persons)) >= 140


# Every word commands.md pins (and/or/not, comparisons, numerals, windows, places, noise words)
# is used by at least one command of the set.
SPEC_WORDS = (
    "且 并且 而且 和 同时 但 但是 而 或 或者 不 非 没 没有 未 从未 中 里 当中 "
    "以上 及以上 不少于 不低于 至少 起 满 超过 高于 大于 多于 以下 及以下 不超过 不高于 至多 最多 "
    "低于 少于 小于 不到 不足 正好 等于 到 之间 至 - "
    "两 二 十二 1.5万 三千 3k 300块 三百元 一千五 两万五 "
    "近90天 最近 过去 近一周 近一个月 近三个月 近一季度 近半年 近一年 "
    "本周 上周 本月 上个月 今年 去年 618 双11 去年双11 "
    "上海的 上海门店的 门店S001的 S002门店的 上海一店的 在门店S005 线下 门店 小程序 电商 公众号商城 线上 "
    "导购 好友 公众号粉丝但不是会员 加购未购买 近30天领券未核销 领券未核销 新客 老客 "
    "圈选 筛选 找出 看看 有多少 哪些 "
    "沉睡会员 高价值 价格导向 偏好品类是女鞋 RFM为重要挽留客户 购买力高 钱包深度深 "
    "常去门店 渠道来源 会员 粉丝 企微好友 "
    "城市 性别 女性 V3及以上 本月过生日 生日在下个月 忠诚 流失 注册阶段 兴趣阶段 认知阶段 购买阶段 品质导向 "
    "顾客 客户 用户 人 客单价 单笔最高 累计消费 浏览过 没下单 买过 SKU 木棉"
).split()


def test_the_set_uses_every_word_of_the_spec() -> None:
    unused = [word for word in SPEC_WORDS if not any(word in case.command for case in CASES)]
    assert not unused


# ---------------------------------------------------------------------------------- the product


@dataclass
class Store:
    """The sample imported and refreshed as of T on one back-end."""

    url: str
    identities: dict[str, IdentityKey]  # person_id → the person's identities
    vocabulary: Any


async def _build(url: str, data: Path) -> Store:
    from profile_store.export import iter_profiles
    from profile_store.importer import import_dir
    from profile_store.tagging.refresh import refresh_all
    from profile_store.vocabulary import load_vocabulary

    db = Database(url)
    try:
        await db.migrate()
        await import_dir(db, data, VAULT, rejects_path=data.parent / "rejects.csv")
        await refresh_all(db, T)
        identities = {
            profile.person_id: identity_key(profile.identities)
            async for profile in iter_profiles(db, VAULT, as_of=T, include_pii=True)
        }
        async with db.transaction() as session:
            vocabulary = await load_vocabulary(session)
    finally:
        await db.dispose()
    return Store(url, identities, vocabulary)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_template: str | None
) -> Iterator[Store]:
    """Built once per back-end for the whole module (importing the sample takes seconds)."""
    base = tmp_path_factory.mktemp(f"segments_{request.param}")
    data = base / "data"
    shutil.copytree(SAMPLE_DIR / "data", data)
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'qianmian.db'}"
    else:
        if pg_template is None:
            pytest.skip("QIANMIAN_TEST_PG not set")
        name = f"qm_seg_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
        url = _pg_url(name)
    try:
        built = asyncio.run(_build(url, data))
        assert {frozenset(k) for k in built.identities.values()} == {p.key for p in load_sample().persons}
        yield built
    finally:
        if name:
            asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _is_segment(parsed: Any) -> bool:
    from nlp.segment import NODE_TYPES

    return type(parsed).__name__ in NODE_TYPES


def _tree(parsed: Any) -> str:
    from nlp.segment import to_json

    return to_json(parsed) if _is_segment(parsed) else repr(parsed)


async def _members(store: Store, parsed: Any) -> list[str]:
    from profile_store.segments.asof import profile_relation
    from profile_store.segments.sql import members

    db = Database(store.url)
    try:
        async with db.transaction() as session:
            relation = await profile_relation(session, T)
            return await members(session, parsed, T, profile=relation)
    finally:
        await db.dispose()


# ids are case numbers: pytest escapes Chinese ids; every failure message names the command.
@pytest.mark.parametrize("case", CASES, ids=[f"c{i:03d}" for i in range(len(CASES))])
async def test_segment_command(store: Store, case: Case) -> None:
    from nlp.parse import parse_segment

    expected = load_sample().who(case.who)
    parsed = parse_segment(case.command, store.vocabulary, T)
    reading = f"\ncommand: {case.command}" + (f"\nreading: {case.why}" if case.why else "")
    assert _is_segment(parsed), f"{reading}\nnot understood: {parsed!r}"
    person_ids = await _members(store, parsed)
    assert len(person_ids) == len(set(person_ids)), f"{reading}\nsomeone listed twice"
    unknown = [pid for pid in person_ids if pid not in store.identities]
    assert not unknown, f"{reading}\nperson_ids that are no active person: {unknown[:5]}"
    actual = {store.identities[pid] for pid in person_ids}
    assert actual == expected, f"{reading}\nparsed: {_tree(parsed)}\n{difference(expected, actual)}"


@pytest.mark.parametrize("entry", EXPECTED_SEGMENTS, ids=[f"e{i}" for i in range(len(EXPECTED_SEGMENTS))])
def test_cli_segment_gives_the_expected_segments(store: Store, entry: dict[str, Any]) -> None:
    """The acceptance line: `qianmian segment "<command>" --as-of 2026-11-01 --format jsonl
    --include-pii` prints exactly the people of expected_segments.json, one profile line each."""
    from bot.cli import app

    env = {"DATABASE_URL": store.url, "QIANMIAN_SECRET_KEY": TEST_SECRET, "COLUMNS": "250"}
    args = ["segment", entry["command"], "--as-of", entry["as_of"], "--format", "jsonl", "--include-pii"]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 0, f"{entry['command']}: exit {done.exit_code}\n{done.output}\n{done.exception!r}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    actual = [identity_key(line["identities"]) for line in lines]
    assert len(actual) == len(set(actual)), "someone printed twice"
    expected = people_of(entry["people"])
    assert set(actual) == expected, f"{entry['command']}\n{difference(expected, set(actual))}"
    assert len(lines) == entry["count"]
