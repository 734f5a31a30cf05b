"""`export profiles`: the sample's persons, by their identities, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.db import Database
from profile_store.export import Extras, export_profiles
from profile_store.importer import ResolveMode, import_dir
from profile_store.pii import PiiVault
from tests.conftest import SAMPLE_DIR, TEST_SECRET
from tests.test_import import plain_phone

VAULT = PiiVault(TEST_SECRET)
AS_OF = date(2026, 11, 1)


def identity_set(identities: Mapping[str, list[Any]]) -> frozenset[tuple[str, Any]]:
    return frozenset(
        (kind, tuple(value) if isinstance(value, list) else value)
        for kind, values in identities.items()
        for value in values
    )


def expected_persons() -> set[frozenset[tuple[str, Any]]]:
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        return {identity_set(json.loads(line)["identities"]) for line in handle}


async def exported(db: Database, **kwargs: Any) -> str:
    out = io.StringIO()
    await export_profiles(db, out, VAULT, as_of=AS_OF, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("resolve", ["file", "chunk"])
async def test_persons_are_the_sample_persons(db: Database, sample_dir: Path, resolve: ResolveMode) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT, resolve=resolve, chunk_rows=300 if resolve == "chunk" else 20_000)
    text = await exported(db, include_pii=True)
    lines = [json.loads(line) for line in text.splitlines()]
    persons = [identity_set(line["identities"]) for line in lines]
    assert len(persons) == len(set(persons))  # nobody twice
    assert set(persons) == expected_persons()
    for line in lines:
        assert set(line) == {"person_id", "identities", "metrics", "tags", "labels"}
        assert line["metrics"] == {} and line["tags"] == {} and line["labels"] == []
        for kind, values in line["identities"].items():
            assert values and values == sorted(values), kind  # no empty kinds; sorted lists
    assert [line["person_id"] for line in lines] == sorted(line["person_id"] for line in lines)
    # Paging changes nothing: small pages stream the same lines.
    assert await exported(db, include_pii=True, page_size=7) == text


async def test_without_pii_no_phone_is_shown(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    phones: set[str] = set()
    for name in ("members.csv", "orders.csv", "events.csv"):
        with (sample_dir / name).open(encoding="utf-8", newline="") as handle:
            phones |= {p for row in csv.DictReader(handle) if (p := plain_phone(row["phone"]))}
    assert phones
    for fmt in ("jsonl", "csv"):
        text = await exported(db, fmt=fmt)
        assert not [p for p in phones if p in text], fmt
    shown = [
        phone
        for line in (await exported(db)).splitlines()
        for phone in json.loads(line)["identities"].get("phone", [])
    ]
    assert shown and all(re.fullmatch(r"1\d\d\*\*\*\*\d{4}", p) for p in shown)
    # The masked phones are the clear ones, masked.
    clear = [
        phone
        for line in (await exported(db, include_pii=True)).splitlines()
        for phone in json.loads(line)["identities"].get("phone", [])
    ]
    assert sorted(shown) == sorted(f"{p[:3]}****{p[-4:]}" for p in clear)
    assert set(clear) <= phones


async def test_csv_has_one_row_per_person(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    rows = list(csv.DictReader(io.StringIO(await exported(db, fmt="csv", include_pii=True))))
    persons = set()
    for row in rows:
        idents: dict[str, list[Any]] = {}
        for kind in ("member_id", "phone", "unionid", "openid", "miniapp_openid", "external_userid"):
            if row[kind]:
                values = row[kind].split("|")
                idents[kind] = [v.split("/", 1) for v in values] if kind == "openid" else values
        persons.add(identity_set(idents))
    assert persons == expected_persons()
    assert {"lifecycle", "orders_365d", "labels"} <= set(rows[0])


async def test_an_enricher_fills_metrics_tags_and_labels(db: Database, sample_dir: Path) -> None:
    """The hook the tags module plugs into: it gets each page's person_ids, T and the PII flag."""
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    calls: list[tuple[int, date, bool]] = []

    async def enrich(
        session: AsyncSession, person_ids: Sequence[str], as_of: date, include_pii: bool
    ) -> Mapping[str, Extras]:
        calls.append((len(person_ids), as_of, include_pii))
        return {pid: Extras({"orders_total": i}, {"guides": ["G1", "G2"]}, ["vip"]) for i, pid in enumerate(person_ids)}

    text = await exported(db, enrich=enrich, page_size=100)
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(line["labels"] == ["vip"] and line["tags"] == {"guides": ["G1", "G2"]} for line in lines)
    assert sum(n for n, _, _ in calls) == len(lines) and all(n <= 100 for n, _, _ in calls)
    assert {(t, pii) for _, t, pii in calls} == {(AS_OF, False)}
    rows = list(csv.DictReader(io.StringIO(await exported(db, fmt="csv", enrich=enrich))))
    assert rows[0]["guides"] == "G1|G2" and rows[0]["labels"] == "vip"


async def test_empty_store_exports_nothing(db: Database) -> None:
    await db.migrate()
    assert await exported(db) == ""
    assert (await exported(db, fmt="csv")).startswith("person_id,member_id,phone,")
