"""The seeded data generator: deterministic, well-formed, messy in the ways real exports are."""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from profile_store.db import Database
from profile_store.generator import BAD_KINDS, GeneratedSet, generate
from profile_store.import_rules import FILE_COLUMNS
from profile_store.importer import import_dir
from profile_store.pii import PiiVault
from tests.conftest import TEST_SECRET
from tests.test_import import plain_phone, read_report


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.csv"))}


def rows(directory: Path, name: str) -> list[dict[str, str]]:
    with (directory / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSet:
    return generate(tmp_path_factory.mktemp("gen") / "data", customers=2_000, seed=11)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", customers=300, seed=5)
    generate(tmp_path / "b", customers=300, seed=5)
    generate(tmp_path / "c", customers=300, seed=6)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert len(digests(tmp_path / "a")) == 8
    assert digests(tmp_path / "a")["orders.csv"] != digests(tmp_path / "c")["orders.csv"]


def test_files_parse_in_the_contract_format(generated: GeneratedSet) -> None:
    for name, columns in FILE_COLUMNS.items():
        path = generated.directory / f"{name}.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            table = list(csv.reader(handle))
        assert tuple(table[0]) == columns, name
        assert all(len(r) == len(columns) for r in table[1:]), name
        assert len(table) - 1 == generated.rows[name]
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert len(frame) == generated.rows[name]


def test_sizes_match_what_benchmarks_assume(generated: GeneratedSet) -> None:
    per_customer = {name: n / generated.customers for name, n in generated.rows.items()}
    assert 4.0 <= per_customer["orders"] <= 6.0
    assert 8.0 <= per_customer["events"] <= 12.0
    assert 0.4 <= per_customer["members"] <= 0.9


def test_data_is_messy_like_a_real_export(generated: GeneratedSet) -> None:
    directory = generated.directory
    members, orders, events = rows(directory, "members"), rows(directory, "orders"), rows(directory, "events")
    typed = [r["phone"] for r in members + orders if r["phone"]]
    assert any(p.startswith("+86 ") for p in typed)
    assert any(p.startswith("0086") for p in typed)
    assert any(len(p) == 13 and p.startswith("86") for p in typed)
    assert any(p.count("-") == 2 for p in typed)
    assert any(len(p) == 11 and p.isdigit() for p in typed)

    # Shared identifiers: a store phone on many member cards; two cards of one customer.
    cards_by_phone: dict[str, set[str]] = defaultdict(set)
    for r in members:
        if (phone := plain_phone(r["phone"])) and r["member_id"]:
            cards_by_phone[phone].add(r["member_id"])
    assert any(len(cards) >= 3 for cards in cards_by_phone.values())
    assert any(len(cards) == 2 for cards in cards_by_phone.values())

    # OA followers whose unionid never came; WeCom contacts by guides.
    with_unionid = {r["openid"] for r in events if r["openid"] and r["unionid"]}
    openids = {r["openid"] for r in events if r["openid"]}
    assert openids - with_unionid and with_unionid
    types = {r["type"] for r in events}
    assert {"follow", "unfollow", "add_contact", "del_contact", "browse", "add_cart", "coupon_get",
            "coupon_consume", "coupon_delete", "message"} <= types
    assert all(r["guide_id"] for r in events if r["type"] == "add_contact")
    assert {r["status"] for r in orders} >= {"paid", "refunded"}
    assert {r["channel"] for r in orders} >= {"pos", "miniapp", "ecom", "oa_mall"}
    assert any(r["coupon_code"] for r in orders)

    # The bad rows: every kind at least once, each on the line it says.
    kinds = {(file, kind) for file, _, kind in generated.bad_rows}
    assert kinds >= {(f"{file}.csv", kind) for file, file_kinds in BAD_KINDS.items() for kind in file_kinds}
    assert generated.bad_phones


async def test_importing_a_generated_set_rejects_exactly_its_bad_rows(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    data = generate(tmp_path / "data", customers=300, seed=3)
    report = await import_dir(db, data.directory, PiiVault(TEST_SECRET), rejects_path=tmp_path / "rejects.csv")
    got = read_report(tmp_path / "rejects.csv")
    assert sorted((r["file"], int(r["line"])) for r in got if r["level"] == "rejected") == sorted(
        (file, line) for file, line, _ in data.bad_rows
    )
    assert sorted((r["file"], int(r["line"])) for r in got if r["level"] == "warning") == sorted(data.bad_phones)
    assert report.persons > 250
    by_file = {f.file: f for f in report.files}
    for name, count in data.rows.items():
        bad = sum(1 for file, _, _ in data.bad_rows if file == f"{name}.csv")
        assert by_file[f"{name}.csv"].read == count
        assert by_file[f"{name}.csv"].imported == count - bad
