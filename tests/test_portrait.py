"""The portrait: built from the tags, masked, short enough for a WeCom card, with talking points."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.portrait_text import render, talking_points
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.importer import import_dir
from profile_store.portrait import portrait
from profile_store.tagging.refresh import refresh_all
from tests.conftest import SAMPLE_DIR
from tests.tag_kit import VAULT, Retailer, T, person_of


def _expected(pick: Any) -> dict[str, Any]:
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        return next(p for p in map(json.loads, handle) if pick(p))


async def test_portrait_of_a_loyal_member(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    want = _expected(
        lambda p: (
            p["tags"].get("lifecycle") == "忠诚"
            and "phone" in p["identities"]
            and p["tags"].get("coupon_outstanding") == "是"
        )
    )
    member = want["identities"].get("member_id", [None])[0]
    identity = f"member_id:{member}" if member else f"phone:{want['identities']['phone'][0]}"
    person = await person_of(db, identity)
    async with db.transaction() as session:
        found = await portrait(session, IdentityGraph(VAULT), person, T)
    assert found is not None
    assert found.tags == want["tags"]
    card = render(found)
    phone = want["identities"]["phone"][0]
    assert phone not in card and f"{phone[:3]}****{phone[-4:]}" in card  # masked, never in clear
    assert "生命周期：忠诚" in card and want["tags"]["rfm"] in card
    last = T - timedelta(days=want["metrics"]["recency_days"])
    assert f"最近购买：{last.isoformat()}" in card
    assert "未用券：" in card
    tips = talking_points(found)
    assert 2 <= len(tips) <= 3 and card.endswith(tips[-1])
    assert len(card) <= 600, len(card)


async def test_portrait_names_stores_products_and_guides_from_their_tables(db: Database, sample_dir: Path) -> None:
    """Every sample person with a preferred store, core SKUs or guides: the portrait's names are
    exactly the non-blank names the three tables hold for those ids, looked up one by one here."""
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        wanted = [p for p in map(json.loads, handle) if p["tags"].get("core_sku") or p["tags"].get("guides")]
    assert len(wanted) >= 5
    graph, checked = IdentityGraph(VAULT), 0
    async with db.read() as session:

        async def name_of(table: str, key: str, value: str) -> str | None:
            row = (await session.execute(text(f"SELECT name FROM {table} WHERE {key} = :v"), {"v": value})).first()
            return row[0] if row and row[0] else None

        async def oracle(table: str, key: str, ids: list[str]) -> dict[str, str]:
            named = {i: await name_of(table, key, i) for i in ids}
            return {i: n for i, n in named.items() if n}

        for want in wanted[:40]:
            kind, values = next(iter(sorted(want["identities"].items())))
            person = await person_of(db, f"{kind}:{values[0]}")
            found = await portrait(session, graph, person, T)
            assert found is not None
            store = found.tags.get("preferred_store")
            assert found.store_names == await oracle("store", "store_id", [store] if store else [])
            assert found.sku_names == await oracle("product", "sku", found.tags.get("core_sku", []))
            assert found.guide_names == await oracle("guide", "guide_id", found.tags.get("guides", []))
            checked += bool(found.sku_names) + bool(found.guide_names) + bool(found.store_names)
    assert checked >= 10  # names were really found, not only empty dicts compared


async def test_portrait_says_when_the_lifecycle_changed(db: Database, tmp_path: Path) -> None:
    shop = Retailer()
    shop.member("M1", name="欧阳娜娜", phone="13812345678", birthday="1990-11-20", level="V1")
    shop.order("M1", "2026-06-01 10:00:00", "100", items=[("SKU0", 1, "100")])
    shop.event("M1", "browse", "2026-10-30 10:00:00", sku="SKU3")
    await shop.load(db, tmp_path)
    await refresh_all(db, T)
    later = T + timedelta(days=400)
    await refresh_all(db, later)  # the June order is now out of the window
    person = await person_of(db, "member_id:M1")
    async with db.transaction() as session:
        found = await portrait(session, IdentityGraph(VAULT), person, later)
    assert found is not None
    card = render(found)
    assert found.name == "欧***" and "138****5678" in card and "13812345678" not in card
    assert f"生命周期：沉睡（{later.isoformat()} 由 购买 变为 沉睡）" in card
    assert "最近购买：2026-06-01" in card
    assert re.search(r"1\. .+\n2\. ", card)
    async with db.transaction() as session:
        now = await portrait(session, IdentityGraph(VAULT), person, T)
    assert now is not None and "本月是 TA 的生日" in render(now)  # birthday month 11 = T's month
    assert "P3" in render(now)  # recent browsing names the product
