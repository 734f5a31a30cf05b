"""A small retailer for the portrait page tests: one customer with orders around today, the staff
of two stores, and the spending by category worked out here from the CSV rows themselves."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.tag_kit import Retailer

PHONE = "13812345678"
NAME = "欧阳娜娜"
OTHER = "其他"


def today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def _at(day: date, clock: str = "15:00:00") -> str:
    return f"{day.isoformat()} {clock}"


def page_shop(on: date) -> Retailer:
    """Member M1 (G001's contact), orders in and out of the one-year window, a refund, an item of
    an unknown product, an unused coupon; staff of S001 and S002."""
    shop = Retailer()
    shop.rows["stores"].append({"store_id": "S002", "name": "上海二店", "city": "上海", "region": "华东"})
    shop.guide("G001", "王小明", "S001")
    shop.guide("G002", "李四", "S001")
    shop.guide("G003", "赵五", "S002")
    shop.guide("M001", "钱经理", "S001", role="manager")
    shop.guide("K001", "孙市场", "", role="marketer")
    shop.member("M1", name=NAME, phone=PHONE, level="V2", register_store_id="S001")
    shop.order("M1", _at(on - timedelta(days=30)), "450", list_amount="497",
               items=[("SKU0", 2, "199"), ("SKU1", 1, "99")])
    shop.order("M1", _at(on - timedelta(days=100)), "617.5", channel="miniapp", store_id="",
               items=[("SKU2", 1, "599"), ("SKU_GONE", 1, "18.5")])
    shop.order("M1", _at(on - timedelta(days=200)), "120.3", items=[("SKU0", 1, "120.3")])
    shop.order("M1", _at(on - timedelta(days=400)), "299", items=[("SKU0", 1, "299")])  # out of the window
    shop.order("M1", _at(on - timedelta(days=10)), "999", status="refunded", items=[("SKU3", 1, "999")])
    shop.event("M1", "add_contact", _at(on - timedelta(days=200)), channel="wecom", guide_id="G001",
               external_userid="wmPAGE0001")
    shop.event("M1", "coupon_get", _at(on - timedelta(days=5)), channel="oa", card_id="C30",
               coupon_code="C30-0001")
    return shop


def expected_spend(shop: Retailer, on: date) -> dict[str, int]:
    """Fen by category over paid orders of the last 365 days (T-364 .. T), from the CSV rows."""
    first = on - timedelta(days=364)
    categories = {p["sku"]: p["category"] for p in shop.rows["products"]}
    paid = {
        o["order_id"]
        for o in shop.rows["orders"]
        if o["status"] == "paid" and first <= date.fromisoformat(o["paid_at"][:10]) <= on
    }
    spend: dict[str, int] = {}
    for item in shop.rows["order_items"]:
        if item["order_id"] in paid:
            category = categories.get(item["sku"]) or OTHER
            fen = int(Decimal(item["unit_price"]) * 100) * int(item["qty"])
            spend[category] = spend.get(category, 0) + fen
    return spend
