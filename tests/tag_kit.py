"""Small retailers written as CSV files and imported for real, to test tag rules at their edges."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.importer import import_dir
from profile_store.lookup import find_person
from profile_store.pii import PiiVault
from profile_store.tagging.refresh import compute_range, load_rules
from tests.conftest import TEST_SECRET

VAULT = PiiVault(TEST_SECRET)
T = date(2026, 11, 1)

HEADERS = {
    "stores": "store_id,name,city,region",
    "guides": "guide_id,name,store_id,role",
    "products": "sku,name,category,brand,list_price",
    "coupons": "card_id,name,kind,value,threshold,valid_days",
    "members": "member_id,phone,unionid,name,gender,birthday,city,level,register_time,register_channel,"
    "register_store_id",
    "orders": "order_id,channel,store_id,paid_at,amount,list_amount,coupon_code,status,member_id,phone,unionid,"
    "miniapp_openid",
    "order_items": "order_id,sku,qty,unit_price",
    "events": "event_id,type,occurred_at,channel,appid,openid,unionid,miniapp_openid,external_userid,member_id,"
    "phone,guide_id,store_id,qr_state,sku,category,card_id,coupon_code,campaign_id",
}


@dataclass
class Retailer:
    """Rows by file; `member`, `order`, `event` fill the columns not given with defaults."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in HEADERS})
    _n: int = 0

    def __post_init__(self) -> None:
        for i, category in enumerate(("连衣裙", "T恤", "外套", "女鞋", "男鞋")):
            self.rows["products"].append(
                {"sku": f"SKU{i}", "name": f"P{i}", "category": category, "brand": "云裳", "list_price": "100"}
            )
        self.rows["coupons"].append(
            {"card_id": "C30", "name": "30元券", "kind": "cash", "value": "30", "threshold": "0", "valid_days": "30"}
        )
        self.rows["stores"].append({"store_id": "S001", "name": "上海一店", "city": "上海", "region": "华东"})

    def _next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:05d}"

    def guide(self, guide_id: str, name: str, store_id: str = "S001", role: str = "guide") -> None:
        self.rows["guides"].append({"guide_id": guide_id, "name": name, "store_id": store_id, "role": role})

    def member(self, member_id: str, **values: Any) -> None:
        row = {"member_id": member_id, "register_time": "2020-01-01 10:00:00", "level": "V0", "name": "张三"}
        self.rows["members"].append({**row, **values})

    def order(
        self, member_id: str, paid_at: str, amount: str, *, items: list[tuple[str, int, str]] | None = None,
        **values: Any,
    ) -> str:
        order_id = values.pop("order_id", None) or self._next("O")
        row = {"order_id": order_id, "channel": "pos", "store_id": "S001", "paid_at": paid_at, "amount": amount,
               "list_amount": amount, "status": "paid", "member_id": member_id}
        self.rows["orders"].append({**row, **values})
        for sku, qty, unit_price in items or []:
            self.rows["order_items"].append({"order_id": order_id, "sku": sku, "qty": qty, "unit_price": unit_price})
        return order_id

    def event(self, member_id: str, type: str, occurred_at: str, **values: Any) -> str:
        event_id = values.pop("event_id", None) or self._next("E")
        row = {"event_id": event_id, "type": type, "occurred_at": occurred_at, "channel": "miniapp",
               "member_id": member_id}
        self.rows["events"].append({**row, **values})
        return event_id

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, header in HEADERS.items():
            columns = header.split(",")
            with (directory / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
                writer.writeheader()
                for row in self.rows[name]:
                    writer.writerow({c: row.get(c, "") for c in columns})
        return directory

    async def load(self, db: Database, directory: Path) -> None:
        await db.migrate()
        await import_dir(db, self.write(directory), VAULT)


async def person_of(db: Database, identity: str) -> str:
    async with db.transaction() as session:
        person = await find_person(session, IdentityGraph(VAULT), identity)
    assert person is not None, identity
    return person


async def profile(db: Database, identity: str, as_of: date = T) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, tags) of the person an identifier names, as of a date."""
    person = await person_of(db, identity)
    async with db.transaction() as session:
        computed = (await compute_range(session, [person], as_of, await load_rules(session)))[person]
    return computed.metrics, computed.tags
