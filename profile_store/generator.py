"""A seeded generator of realistic, messy retailer data in the CSV formats of data.md §2.

From a hundred customers (tests, demos) to millions (benchmarks): rows are streamed to the files
customer by customer, so memory stays bounded whatever the size. The same seed gives the same
bytes. What makes it messy, like a real export (and like tests/fixtures/sample):

- phones typed in several formats (`+86 176 9748 2123`, `176-9748-2123`, `8617697482123`,
  `008617697482123`, plain); now and then a landline or a short number (an invalid phone);
- a customer with two member cards sharing one phone;
- store mobiles typed in by cashiers for members who did not give theirs (shared identifiers:
  each store phone ends up on many member cards);
- official-account followers whose unionid never came (their OA events carry the openid only);
- WeCom contacts added by guides through store or guide QR codes, some deleted again;
- refunds, coupons gotten / consumed / deleted, browsing and carts in the mini-program;
- a few rows that must be rejected (empty key, a time or number that does not parse, an unknown
  status / channel / type), listed in the returned `GeneratedSet` with their line numbers.

On average a customer has ~5 orders and ~10 events (what the benchmarks assume).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TextIO

from profile_store.import_rules import FILE_COLUMNS

DEFAULT_END_DATE = date(2026, 11, 1)
HISTORY_DAYS = 3 * 365 + 180

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
          "超", "秀英", "霞", "平", "欣怡", "子涵", "浩然", "雨桐")
_CITIES = (("上海", "华东"), ("北京", "其他"), ("杭州", "华东"), ("成都", "其他"), ("广州", "其他"),
           ("南京", "华东"), ("深圳", "其他"), ("武汉", "其他"))
_CATEGORIES = ("连衣裙", "T恤", "衬衫", "牛仔裤", "外套", "针织衫", "女鞋", "男鞋", "童装", "配饰")
_BRANDS = ("云裳", "木棉", "青禾", "北极光")
_PRICES_YUAN = (59, 99, 129, 199, 299, 399, 599, 899, 1299, 1999)
_COUPONS = (  # card_id, name, kind, value, threshold, valid_days
    ("C30", "30元无门槛券", "cash", "30", "0", "30"),
    ("C50", "满300减50", "cash", "50", "300", "30"),
    ("D20", "8折券", "discount", "20", "0", "14"),
    ("GIFT", "生日礼", "gift", "0", "0", "60"),
)
_PHONE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156",
                   "170", "173", "175", "176", "177", "180", "181", "183", "185", "186", "187", "189", "199")
_APP_MAIN, _APP_REGION = "wx_brand", "wx_region"

# Bad rows the import must reject: file → (kind, rate per row). Each kind also appears at least once.
BAD_KINDS: dict[str, tuple[str, ...]] = {
    "members": ("empty_key",),
    "orders": ("empty_key", "bad_time", "bad_number", "bad_status", "bad_channel"),
    "order_items": ("bad_number",),
    "events": ("empty_key", "bad_time", "bad_type"),
}
_BAD_RATE = 1 / 2500


@dataclass
class GeneratedSet:
    """What `generate` wrote: row counts and the lines that must be rejected or warned about."""

    directory: Path
    customers: int
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: list[tuple[str, int, str]] = field(default_factory=list)  # (file name, line, kind)
    bad_phones: list[tuple[str, int]] = field(default_factory=list)  # (file name, line): row kept


class _Writer:
    """One CSV file, counting lines (the header is line 1)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = f"{name}.csv"
        self.handle: TextIO = (directory / self.name).open("w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.handle, lineterminator="\n")
        self.csv.writerow(FILE_COLUMNS[name])
        self.line = 1

    def write(self, row: list[str]) -> int:
        self.csv.writerow(row)
        self.line += 1
        return self.line

    def close(self) -> None:
        self.handle.close()


@dataclass
class _Customer:
    index: int
    phone: str | None
    member_ids: list[str]
    unionid: str | None
    oa: tuple[str, str] | None  # (appid, openid)
    oa_has_unionid: bool  # did the unionid ever arrive on OA events?
    miniapp_openid: str | None
    external_userid: str | None
    guide: str | None
    store: int  # home store number
    first_seen: datetime
    name: str
    cashier_phone: bool  # the cashier typed the store's phone on the member card


class _Generator:
    def __init__(self, directory: Path, customers: int, seed: int, end_date: date) -> None:
        self.dir = directory
        self.n = customers
        self.seed = seed
        self.rng = random.Random(seed)
        self.end = datetime.combine(end_date, time(22, 0))
        self.start = self.end - timedelta(days=HISTORY_DAYS)
        self.stores = max(12, min(500, customers // 3000))
        self.report = GeneratedSet(directory, customers, seed)
        self.order_no = 0
        self.event_no = 0
        self.member_no = 0
        self.code_no = 0
        # One customer in the middle carries one bad row of every kind, so any size has them all.
        self.forced = max(1, customers // 2)

    # ------------------------------------------------------------------ values

    def _phone(self, index: int) -> str:
        """A mobile unique to this customer index (an affine map mod 10^8 is a bijection)."""
        prefix = _PHONE_PREFIXES[index % len(_PHONE_PREFIXES)]
        body = (index * 7_919 + self.seed * 104_729 + 12_345_678) % 100_000_000
        return f"{prefix}{body:08d}"

    def _store_phone(self, store: int) -> str:
        return f"1990000{store:04d}"

    def _typed(self, phone: str) -> str:
        """How a phone was typed in: plain mostly, else one of the usual formats."""
        r = self.rng.random()
        if r < 0.70:
            return phone
        if r < 0.82:
            return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
        if r < 0.90:
            return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
        if r < 0.96:
            return f"86{phone}"
        return f"0086{phone}"

    def _invalid_phone(self) -> str:
        return self.rng.choice(("0571-8888" + f"{self.rng.randrange(10_000):04d}", "12345", "138123"))

    def _when(self, after: datetime) -> datetime:
        """A moment after `after`, during opening hours (09:00-22:00), not after the end."""
        days = max(0, (self.end.date() - after.date()).days)
        day = after.date() + timedelta(days=self.rng.randrange(days + 1))
        moment = datetime.combine(day, time(9)) + timedelta(seconds=self.rng.randrange(13 * 3600))
        if moment <= after:
            moment = after + timedelta(seconds=self.rng.randrange(1, 3600))
        if moment > self.end:  # spread, so two facts never collide on the last second
            moment = self.end - timedelta(seconds=self.rng.randrange(1, 6 * 3600))
        return moment

    @staticmethod
    def _stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def _yuan(fen: int) -> str:
        return f"{fen // 100}.{fen % 100:02d}"

    def _code(self, card: str) -> str:
        self.code_no += 1
        return f"{card}-{(self.code_no * 7_919 + self.seed) % 1_000_000_000:09d}"

    def _bad(self, file: str) -> str | None:
        """Which bad kind (if any) the next row of `file` gets."""
        if self.rng.random() < _BAD_RATE:
            return self.rng.choice(BAD_KINDS[file])
        return None

    # ------------------------------------------------------------------ reference files

    def reference(self) -> None:
        stores = _Writer(self.dir, "stores")
        guides = _Writer(self.dir, "guides")
        for s in range(1, self.stores + 1):
            city, region = _CITIES[(s - 1) % len(_CITIES)]
            stores.write([f"S{s:03d}", f"{city}{s}号店", city, region])
            guides.write([self._guide_id(s, 0), self._name(), f"S{s:03d}", "manager"])
            for k in (1, 2):
                guides.write([self._guide_id(s, k), self._name(), f"S{s:03d}", "guide"])
        guides.write(["MK001", self._name(), "", "marketer"])
        guides.write(["AD001", self._name(), "", "admin"])
        self.report.rows["stores"] = stores.line - 1
        self.report.rows["guides"] = guides.line - 1
        stores.close()
        guides.close()
        products = _Writer(self.dir, "products")
        self.products: list[tuple[str, str, int]] = []
        for i in range(60):
            category = _CATEGORIES[i % len(_CATEGORIES)]
            brand = _BRANDS[(i // 15) % len(_BRANDS)]
            price = self.rng.choice(_PRICES_YUAN)
            sku = f"SKU{i:04d}"
            products.write([sku, f"{brand}{category}{i}", category, brand, str(price)])
            self.products.append((sku, category, price * 100))
        self.report.rows["products"] = products.line - 1
        products.close()
        coupons = _Writer(self.dir, "coupons")
        for coupon in _COUPONS:
            coupons.write(list(coupon))
        self.report.rows["coupons"] = coupons.line - 1
        coupons.close()

    @staticmethod
    def _guide_id(store: int, k: int) -> str:
        return f"GS{store:03d}{k}"

    def _name(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    # ------------------------------------------------------------------ customers

    def customer(self, index: int) -> _Customer:
        rng = self.rng
        forced = index == self.forced  # the one who has a bit of everything
        has_phone = rng.random() < 0.85 or forced
        is_member = rng.random() < 0.62 or forced
        cards = 0
        if is_member:
            cards = 2 if has_phone and rng.random() < 0.02 else 1
        member_ids = []
        for _ in range(cards):
            self.member_no += 1
            member_ids.append(f"M{self.member_no:07d}")
        unionid = f"oU{index:09d}{rng.randrange(1000):03d}" if rng.random() < 0.55 else None
        oa = None
        if rng.random() < 0.55:
            appid = _APP_MAIN if rng.random() < 0.92 else _APP_REGION
            oa = (appid, f"oA{index:09d}x{rng.randrange(100_000):05d}")
        miniapp = f"oM{index:09d}z{rng.randrange(100_000):05d}" if rng.random() < 0.45 else None
        store = rng.randrange(1, self.stores + 1)
        wecom = f"wm{index:09d}{rng.randrange(10**7):07d}" if rng.random() < 0.3 else None
        return _Customer(
            index=index,
            phone=self._phone(index) if has_phone else None,
            member_ids=member_ids,
            unionid=unionid,
            oa=oa,
            oa_has_unionid=bool(unionid and oa and rng.random() < 0.6),
            miniapp_openid=miniapp,
            external_userid=wecom,
            guide=self._guide_id(store, rng.randrange(3)) if wecom else None,
            store=store,
            first_seen=self._when(self.start),
            name=self._name(),
            cashier_phone=is_member and not has_phone and rng.random() < 0.6,
        )

    def members(self, c: _Customer, out: _Writer) -> None:
        forced = c.index == self.forced
        for member_id in c.member_ids:
            if c.phone:
                phone = self._typed(c.phone)
            elif c.cashier_phone:
                phone = self._typed(self._store_phone(c.store))
            else:
                phone = ""
            invalid = self.rng.random() < 0.004 or (forced and member_id == c.member_ids[0])
            if invalid:
                phone = self._invalid_phone()
            registered = c.first_seen + timedelta(minutes=self.rng.randrange(0, 60 * 24 * 30))
            registered = min(registered, self.end)
            birthday = date(self.rng.randrange(1960, 2006), self.rng.randrange(1, 13), self.rng.randrange(1, 29))
            unionid = c.unionid if c.unionid and self.rng.random() < 0.5 else ""
            line = out.write([
                member_id, phone, unionid, c.name, self.rng.choice(("F", "F", "M", "")),
                birthday.isoformat(), _CITIES[(c.store - 1) % len(_CITIES)][0],
                f"V{min(5, int(self.rng.expovariate(0.8)))}",
                self._stamp(registered), self.rng.choice(("pos", "miniapp", "oa")), f"S{c.store:03d}",
            ])
            if invalid:
                self.report.bad_phones.append((out.name, line))
        if forced or (c.phone and self.rng.random() < _BAD_RATE):
            # A card filled in without its number: nothing to key it by.
            phone = self._typed(c.phone or self._phone(c.index))
            line = out.write(["", phone, "", "无卡号", "", "", "", "", "", "", ""])
            self.report.bad_rows.append((out.name, line, "empty_key"))

    def orders(self, c: _Customer, orders: _Writer, items: _Writer) -> None:
        count = int(self.rng.expovariate(1 / 5.0) + 0.5)
        forced = c.index == self.forced
        kinds = list(BAD_KINDS["orders"]) if forced else []
        for k in range(count + len(kinds)):
            bad = kinds[k - count] if k >= count else self._bad("orders")
            self.order_no += 1
            order_id = f"O{self.order_no:09d}"
            channel = self.rng.choices(("pos", "miniapp", "ecom", "oa_mall"), (50, 25, 18, 7))[0]
            member_id = phone = unionid = miniapp = store = ""
            if channel == "pos":
                store = f"S{c.store if self.rng.random() < 0.8 else self.rng.randrange(1, self.stores + 1):03d}"
                if c.member_ids and self.rng.random() < 0.85:
                    member_id = self.rng.choice(c.member_ids)
                if c.phone and self.rng.random() < 0.3:
                    phone = self._typed(c.phone)
                elif member_id and self.rng.random() < 0.03:
                    phone = self._typed(self._store_phone(c.store))  # the cashier's shortcut
            elif channel == "miniapp":
                unionid = c.unionid or ""
                miniapp = c.miniapp_openid or ""
                if not (unionid or miniapp) and c.phone:
                    phone = self._typed(c.phone)
            elif channel == "ecom":
                phone = self._typed(c.phone) if c.phone else ""
                if not phone:
                    miniapp = c.miniapp_openid or ""
            else:
                unionid = c.unionid or ""
                if not unionid and c.phone:
                    phone = self._typed(c.phone)
            invalid_phone = phone != "" and self.rng.random() < 0.003
            if invalid_phone:
                phone = self._invalid_phone()
            paid_at = self._when(c.first_seen)
            lines: list[list[str]] = []
            list_total = paid_total = 0
            for _ in range(self.rng.choice((1, 1, 2, 2, 3))):
                sku, _, list_fen = self.rng.choice(self.products)
                qty = 2 if self.rng.random() < 0.2 else 1
                unit_fen = list_fen * self.rng.choice((100, 100, 90, 80, 70)) // 100
                list_total += qty * list_fen
                paid_total += qty * unit_fen
                unit = str(unit_fen // 100) if unit_fen % 100 == 0 and self.rng.random() < 0.5 else (
                    f"{unit_fen // 100}.{(unit_fen % 100) // 10}" if unit_fen % 10 == 0 else self._yuan(unit_fen)
                )
                lines.append([order_id, sku, str(qty), unit])
            coupon = ""
            if self.rng.random() < 0.2:
                card = self.rng.choice(("C30", "C50", "D20"))
                coupon = self._code(card)
                off = 3000 if card == "C30" else 5000 if card == "C50" else paid_total // 5
                paid_total = max(0, paid_total - off)
            status = "refunded" if self.rng.random() < 0.05 else "paid"
            row = [order_id, channel, store, self._stamp(paid_at), self._yuan(paid_total), self._yuan(list_total),
                   coupon, status, member_id, phone, unionid, miniapp]
            if bad == "empty_key":
                row[0] = ""
            elif bad == "bad_time":
                row[3] = "2026-13-45 25:61:00"
            elif bad == "bad_number":
                row[4] = "N/A"
            elif bad == "bad_status":
                row[7] = "???"
            elif bad == "bad_channel":
                row[1] = "wechat_pay"
            line = orders.write(row)
            if bad:
                self.report.bad_rows.append((orders.name, line, bad))
                continue  # a rejected order brings no items
            if invalid_phone:
                self.report.bad_phones.append((orders.name, line))
            for k_item, item in enumerate(lines):
                item_bad = (forced and k == 0 and k_item == 0) or self.rng.random() < _BAD_RATE
                if item_bad:
                    item[2] = "two"
                item_line = items.write(item)
                if item_bad:
                    self.report.bad_rows.append((items.name, item_line, "bad_number"))

    def events(self, c: _Customer, out: _Writer) -> None:
        rng = self.rng
        online = bool(c.oa or c.miniapp_openid or c.external_userid or c.unionid)
        forced = c.index == self.forced
        rows: list[tuple[datetime, list[str]]] = []

        def event(kind: str, when: datetime, channel: str, **values: str) -> None:
            row = {col: "" for col in FILE_COLUMNS["events"]}
            row.update(values, type=kind, occurred_at=self._stamp(when), channel=channel)
            rows.append((when, [row[col] for col in FILE_COLUMNS["events"]]))

        def oa_ids() -> dict[str, str]:
            assert c.oa is not None
            ids = {"appid": c.oa[0], "openid": c.oa[1]}
            if c.oa_has_unionid and c.unionid and rng.random() < 0.7:
                ids["unionid"] = c.unionid
            return ids

        if online:
            budget = int(rng.expovariate(1 / 8.0) + 0.5)
            moment = c.first_seen
            if c.oa:
                moment = self._when(c.first_seen)
                state = rng.choice((f"store_S{c.store:03d}", "poster_1111", "", ""))
                event("follow", moment, "oa", qr_state=state, **oa_ids())
                if rng.random() < 0.12:
                    event("unfollow", self._when(moment), "oa", appid=c.oa[0], openid=c.oa[1])
            if c.external_userid and c.guide:
                added = self._when(c.first_seen)
                state = rng.choice((f"store_S{c.store:03d}", f"guide_{c.guide}"))
                ids = {"external_userid": c.external_userid, "guide_id": c.guide}
                if c.unionid and rng.random() < 0.5:
                    ids["unionid"] = c.unionid
                event("add_contact", added, "wecom", store_id=f"S{c.store:03d}", qr_state=state, **ids)
                if rng.random() < 0.08:
                    event("del_contact", self._when(added), "wecom", external_userid=c.external_userid,
                          guide_id=c.guide)
            choices: list[str] = []
            if c.miniapp_openid:
                choices += ["browse"] * 6 + ["add_cart"] * 2 + ["click"] * 2
            if c.oa:
                choices += ["message", "scan", "coupon"] + ["coupon"] * 2
            elif c.unionid:
                choices += ["coupon"] * 2
            if c.external_userid:
                choices += ["wecom_message"]
            for _ in range(budget if choices else 0):
                kind = rng.choice(choices)
                when = self._when(c.first_seen)
                if kind in ("browse", "add_cart", "click"):
                    sku, category, _ = rng.choice(self.products)
                    ids = {"miniapp_openid": c.miniapp_openid or ""}
                    if c.unionid and rng.random() < 0.8:
                        ids["unionid"] = c.unionid
                    event(kind, when, "miniapp", sku=sku, category=category, **ids)
                elif kind == "message":
                    event("message", when, "oa", **oa_ids())
                elif kind == "scan":
                    event("scan", when, "oa", qr_state=f"store_S{rng.randrange(1, self.stores + 1):03d}", **oa_ids())
                elif kind == "wecom_message":
                    event("message", when, "wecom", external_userid=c.external_userid or "", guide_id=c.guide or "")
                else:
                    card = rng.choice(("C30", "C50", "D20", "GIFT"))
                    code = self._code(card)
                    ids = oa_ids() if c.oa and not (c.unionid and rng.random() < 0.5) else {"unionid": c.unionid or ""}
                    event("coupon_get", when, "oa", card_id=card, coupon_code=code, **ids)
                    r = rng.random()
                    if r < 0.35:
                        event("coupon_consume", self._when(when), "pos", card_id=card, coupon_code=code, **ids)
                    elif r < 0.45:
                        event("coupon_delete", self._when(when), "oa", card_id=card, coupon_code=code, **ids)
        bad_kinds = list(BAD_KINDS["events"]) if forced else []
        if not forced and rows and rng.random() < _BAD_RATE * len(rows):
            bad_kinds.append(rng.choice(BAD_KINDS["events"]))
        rows.sort(key=lambda r: r[0])
        for _, row in rows:
            self.event_no += 1
            row[0] = f"E{self.event_no:010d}"
            out.write(row)
        for kind in bad_kinds:
            self.event_no += 1
            bad = {col: "" for col in FILE_COLUMNS["events"]}
            bad.update(event_id=f"E{self.event_no:010d}", type="browse",
                       occurred_at=self._stamp(self._when(c.first_seen)), channel="miniapp",
                       miniapp_openid=c.miniapp_openid or f"oMbad{c.index:09d}")
            if kind == "empty_key":
                bad["event_id"] = ""
            elif kind == "bad_time":
                bad["occurred_at"] = "yesterday"
            else:
                bad["type"] = "teleport"
            line = out.write([bad[col] for col in FILE_COLUMNS["events"]])
            self.report.bad_rows.append((out.name, line, kind))

    def run(self) -> GeneratedSet:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.reference()
        writers = {name: _Writer(self.dir, name) for name in ("members", "orders", "order_items", "events")}
        try:
            for index in range(1, self.n + 1):
                c = self.customer(index)
                self.members(c, writers["members"])
                self.orders(c, writers["orders"], writers["order_items"])
                self.events(c, writers["events"])
        finally:
            for name, writer in writers.items():
                self.report.rows[name] = writer.line - 1
                writer.close()
        return self.report


def generate(
    directory: Path | str,
    customers: int = 1_000,
    seed: int = 1,
    end_date: date = DEFAULT_END_DATE,
) -> GeneratedSet:
    """Write stores, products, guides, coupons, members, orders, order_items and events CSVs."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    return _Generator(Path(directory), customers, seed, end_date).run()

