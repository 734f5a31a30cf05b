"""The segment language: a small typed tree of who a command is about (commands.md).

The parser (`nlp.parse`) produces it; `profile_store.segments` compiles it to one SQL query and
also evaluates it against one person in memory (both must agree); `nlp.describe` renders it back
to plain Chinese. The tree is plain frozen data: comparable, hashable, JSON-serialisable
(`to_json` / `from_json`) so a segment can be saved under a name and reused later.

Conventions (why):
- Money is integer fen, as everywhere in the store, so thresholds compare exactly.
- Windows stay relative ("近90天" is `Window("days", 90)`) and are resolved against T only when
  the segment is evaluated (`Window.span`): a saved segment or a journey re-evaluated tomorrow
  means tomorrow's 90 days.
- Order conditions count only `paid` orders up to the end of T; events up to the end of T.
- `OrderMetric` counts and sums are 0 for a person with no order in the window (so
  "消费不到2次" includes them); `aov`/`max` are absent then, and any comparison with them is
  false ("客单价低于100" needs at least one order).
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, timedelta
from typing import Any, Literal, TypeAlias

Op = Literal["eq", "ne", "ge", "gt", "le", "lt", "between", "in"]
OPS: tuple[str, ...] = ("eq", "ne", "ge", "gt", "le", "lt", "between", "in")

# Tag keys of tags.md a `Tag` condition may name (profile columns).
TAG_KEYS = (
    "lifecycle",
    "rfm",
    "purchase_power",
    "wallet_depth",
    "price_orientation",
    "preferred_category",
    "browse_preference",
    "preferred_channel",
    "preferred_store",
    "core_sku",
    "coupon_outstanding",
    "coupon_redemption_rate",
    "is_member",
    "oa_follower",
    "wecom_contact",
    "guides",
    "source",
    "level",
    "city",
    "gender",
    "birthday_month",
)
# Tags whose stored value is a JSON list: `eq` means "the list contains the value".
LIST_TAG_KEYS = ("core_sku", "guides")
CHANNELS = ("pos", "miniapp", "ecom", "oa_mall")
ONLINE = ("miniapp", "ecom", "oa_mall")
EVENT_TYPES = (
    "follow",
    "unfollow",
    "scan",
    "add_contact",
    "del_contact",
    "browse",
    "add_cart",
    "click",
    "message",
    "coupon_get",
    "coupon_consume",
    "coupon_delete",
)
# Order conditions and event conditions without a window of their own (commands.md).
DEFAULT_DAYS = 365
# 新客 without a window (tags.md "新客 = first paid order ever within the window (default 30 days)").
NEW_CUSTOMER_DAYS = 30


# ---------------------------------------------------------------------------------- windows

WindowKind = Literal["days", "week", "month", "year", "festival", "month_of", "dates"]


@dataclass(frozen=True)
class Window:
    """A span of local dates, relative to T until `span` resolves it.

    - `days`: the `n` dates ending with T (近N天; 近一周 = 7, 近一个月 = 30, 近半年 = 180 …)
    - `week` / `month` / `year`: the calendar period `n` periods from T's (0 this, -1 last,
      1 next); the current period ends at T (本月 ends at T).
    - `festival`: `name` "618" (June 1–18) or "双11" (November 1–11) of `year`, or — `year`
      None — of the latest year in which the period has begun by T.
    - `month_of`: calendar month `month` of `year` (None: the latest such month begun by T).
    - `dates`: `start` .. `end` as given.
    """

    kind: WindowKind
    n: int = 0
    name: str = ""
    year: int | None = None
    month: int | None = None
    start: date | None = None
    end: date | None = None

    def span(self, today: date) -> tuple[date, date]:
        """(first, last) local date, both included; `last` never after T."""
        first, last = self._span(today)
        return first, min(last, today) if first <= today else last

    def _span(self, today: date) -> tuple[date, date]:
        if self.kind == "days":
            return today - timedelta(days=max(self.n, 1) - 1), today
        if self.kind == "week":
            monday = today - timedelta(days=today.weekday()) + timedelta(weeks=self.n)
            return monday, monday + timedelta(days=6)
        if self.kind == "month":
            index = today.year * 12 + today.month - 1 + self.n
            year, month = divmod(index, 12)
            return _month(year, month + 1)
        if self.kind == "year":
            year = today.year + self.n
            return date(year, 1, 1), date(year, 12, 31)
        if self.kind == "festival":
            month, last_day = FESTIVALS[self.name]
            year = (
                self.year
                if self.year is not None
                else (today.year if date(today.year, month, 1) <= today else today.year - 1)
            )
            return date(year, month, 1), date(year, month, last_day)
        if self.kind == "month_of":
            assert self.month is not None
            year = (
                self.year
                if self.year is not None
                else (today.year if date(today.year, self.month, 1) <= today else today.year - 1)
            )
            return _month(year, self.month)
        if self.kind == "dates":
            assert self.start is not None and self.end is not None
            return self.start, self.end
        raise ValueError(f"unknown window kind {self.kind!r}")


# name → (month, last day of the period)
FESTIVALS: dict[str, tuple[int, int]] = {"618": (6, 18), "双11": (11, 11), "双12": (12, 12)}


def _month(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def days(n: int) -> Window:
    return Window("days", n)


DEFAULT_WINDOW = Window("days", DEFAULT_DAYS)


# ---------------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Compare:
    """`op` against `value` (and `high` for `between`, both included; a tuple for `in`).
    Numbers are int (counts, fen, months) or float (rates); levels are "V0".."V5" strings and
    compare by their digit."""

    op: Op
    value: Any
    high: Any = None

    def test(self, actual: Any) -> bool:
        """The comparison on a present value (absent values never satisfy a comparison)."""
        if actual is None:
            return False
        op, value = self.op, self.value
        if op == "eq":
            return bool(actual == value)
        if op == "ne":
            return bool(actual != value)
        if op == "in":
            return actual in tuple(value)
        if op == "between":
            return bool(value <= actual <= self.high)
        if op == "ge":
            return bool(actual >= value)
        if op == "gt":
            return bool(actual > value)
        if op == "le":
            return bool(actual <= value)
        if op == "lt":
            return bool(actual < value)
        raise ValueError(f"unknown comparison {op!r}")


def eq(value: Any) -> Compare:
    return Compare("eq", value)


# ---------------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Everyone:
    """Anyone (顾客 / 客户 / 用户 / 人): every active person."""


@dataclass(frozen=True)
class Tag:
    """A tag of tags.md as of T (never windowed): `lifecycle` eq 忠诚, `level` ge V3,
    `birthday_month` eq 12, `coupon_redemption_rate` ge 0.5, `guides` eq G001 (list contains).
    `Compare("eq", None)`: the tag is absent; `Compare("ne", None)`: the tag is present."""

    key: str
    cmp: Compare


@dataclass(frozen=True)
class Label:
    """A manual label (自定义标签) put on the person by command."""

    name: str


@dataclass(frozen=True)
class StoreCity:
    """上海门店的: the person's 常去门店 (preferred_store) is a store whose city is `city`."""

    city: str


@dataclass(frozen=True)
class Item:
    """What an order line or an event is about: a category, a brand or a SKU."""

    kind: Literal["category", "brand", "sku"]
    value: str


@dataclass(frozen=True)
class Where:
    """Where an order was placed: any of `channels` (empty: any) and, when given, that store
    (a store implies channel pos)."""

    channels: tuple[str, ...] = ()
    store_id: str | None = None


ANYWHERE = Where()

Measure = Literal["count", "amount", "aov", "max"]


@dataclass(frozen=True)
class OrderMetric:
    """An aggregate of the person's paid orders in `window` placed at `where`, compared:
    `count` (orders; 消费2次以上), `amount` (Σ amount; 累计消费满5000元), `aov` (amount / count;
    客单价高于300元), `max` (largest single order; 单笔最高超过1000元). With `item`, only orders
    containing it count, and `amount` is Σ qty × unit_price of the matching lines."""

    measure: Measure
    cmp: Compare
    window: Window = DEFAULT_WINDOW
    where: Where = ANYWHERE
    item: Item | None = None


@dataclass(frozen=True)
class Bought:
    """Has a paid order in `window` at `where` (containing `item`, when given): 近半年买过童装,
    本月买过SKU0012, 近三个月买过 (any order)."""

    window: Window = DEFAULT_WINDOW
    item: Item | None = None
    where: Where = ANYWHERE


@dataclass(frozen=True)
class Did:
    """Has an event of `type` in `window` (about `item`, when given): 近7天浏览过连衣裙
    (browse, category 连衣裙), 领过券 (coupon_get)."""

    type: str
    window: Window = DEFAULT_WINDOW
    item: Item | None = None


@dataclass(frozen=True)
class CartNotBought:
    """加购未购买: an `add_cart` event in `window` (about `item`, when given) whose sku has no
    paid order containing it later than the event, within the window."""

    window: Window = DEFAULT_WINDOW
    item: Item | None = None


@dataclass(frozen=True)
class CouponHeld:
    """近30天领券未核销: holds a coupon gotten in `window` that is outstanding at T (not
    consumed, not deleted, not expired: get date + valid_days ≥ T)."""

    window: Window = DEFAULT_WINDOW


@dataclass(frozen=True)
class GuideHolds:
    """导购张三的好友: the staff member currently holds the person as a WeCom contact."""

    guide_id: str


@dataclass(frozen=True)
class CampaignTouch:
    """Campaign history by campaign name or id: `received` (any event of the campaign reached
    the person), `joined` (got its coupon), `redeemed` (consumed its coupon)."""

    campaign: str
    action: Literal["received", "joined", "redeemed"]


@dataclass(frozen=True)
class FirstOrder:
    """新客: the person's first paid order ever falls in `window`."""

    window: Window = field(default_factory=lambda: Window("days", NEW_CUSTOMER_DAYS))


@dataclass(frozen=True)
class Returning:
    """老客: a paid order before `window` and one within it."""

    window: Window = field(default_factory=lambda: Window("days", NEW_CUSTOMER_DAYS))


@dataclass(frozen=True)
class And:
    parts: tuple[Segment, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Segment, ...]


@dataclass(frozen=True)
class Not:
    part: Segment


@dataclass(frozen=True)
class Saved:
    """A segment saved earlier: by name (把上海忠诚会员这个人群…), or `name` "" for the asker's
    last segment (刚才那批人). Resolved by the command layer before compiling."""

    name: str = ""


Condition: TypeAlias = (
    Everyone
    | Tag
    | Label
    | StoreCity
    | OrderMetric
    | Bought
    | Did
    | CartNotBought
    | CouponHeld
    | GuideHolds
    | CampaignTouch
    | FirstOrder
    | Returning
    | Saved
)
Segment: TypeAlias = Condition | And | Or | Not

NODE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Everyone,
        Tag,
        Label,
        StoreCity,
        OrderMetric,
        Bought,
        Did,
        CartNotBought,
        CouponHeld,
        GuideHolds,
        CampaignTouch,
        FirstOrder,
        Returning,
        Saved,
        And,
        Or,
        Not,
        Window,
        Compare,
        Item,
        Where,
    )
}


def all_of(*parts: Segment) -> Segment:
    """And of `parts`, flattened; a single part stands alone; none is everyone."""
    flat: list[Segment] = []
    for part in parts:
        if isinstance(part, And):
            flat.extend(part.parts)
        elif not isinstance(part, Everyone):
            flat.append(part)
    if not flat:
        return Everyone()
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def any_of(*parts: Segment) -> Segment:
    flat: list[Segment] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Or) else (part,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def walk(segment: Segment) -> list[Segment]:
    """Every node of the tree, parents before children."""
    found: list[Segment] = [segment]
    if isinstance(segment, And | Or):
        for part in segment.parts:
            found.extend(walk(part))
    elif isinstance(segment, Not):
        found.extend(walk(segment.part))
    return found


# ---------------------------------------------------------------------------------- JSON


def to_json(segment: Segment) -> str:
    return json.dumps(_encode(segment), ensure_ascii=False, sort_keys=True)


def from_json(text: str) -> Segment:
    decoded = _decode(json.loads(text))
    return decoded  # type: ignore[no-any-return]


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {"_": type(value).__name__, **{f.name: _encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, date):
        return {"_date": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "_date" in value:
            return date.fromisoformat(value["_date"])
        cls = NODE_TYPES[value["_"]]
        return cls(**{k: _decode(v) for k, v in value.items() if k != "_"})
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value
