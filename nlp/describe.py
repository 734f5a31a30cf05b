"""A segment (nlp.segment) read back in plain Chinese, for previews and confirmations:
"近90天消费次数≥2次，且近90天客单价>300元，且生命周期为沉睡，且是会员".

Every phrase comes from `bot.texts` (SEGMENT_READINGS, SEGMENT_EVENT_ACTIONS, TAG_NAMES,
CHANNEL_NAMES); money is fen in the tree and 元 here; store and guide ids are shown with their
names when the vocabulary knows them; with `today`, relative windows also show their dates.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from bot import texts
from bot.texts import CHANNEL_NAMES, SEGMENT_EVENT_ACTIONS, SEGMENT_READINGS, TAG_NAMES
from nlp.intent import ReportCommand
from nlp.segment import (
    LIST_TAG_KEYS,
    And,
    Bought,
    CampaignTouch,
    CartNotBought,
    Compare,
    CouponHeld,
    Did,
    Everyone,
    FirstOrder,
    GuideHolds,
    Item,
    Label,
    Not,
    Or,
    OrderMetric,
    Returning,
    Saved,
    Segment,
    StoreCity,
    Tag,
    Where,
    Window,
)
from nlp.vocabulary import Vocabulary

R = SEGMENT_READINGS
YES_TAGS = ("is_member", "oa_follower", "wecom_contact")
MONEY_MEASURES = ("amount", "aov", "max")
EVER_DAYS = 36_500
_INVERSE: dict[str, Any] = {"ge": "lt", "gt": "le", "le": "gt", "lt": "ge"}  # nlp.parse.EVER: "at any time"


def describe(segment: Segment, vocab: Vocabulary | None = None, today: date | None = None) -> str:
    """The segment in plain Chinese (`today`: show the dates of relative windows)."""
    return _Reader(vocab or Vocabulary(), today).read(segment)


def describe_report(command: ReportCommand, vocab: Vocabulary | None = None, today: date | None = None) -> str:
    """A report command in plain Chinese: what is measured, over which window (last 30 days when
    none), by what, and among whom ("上个月（2026-10-01至2026-10-31）的销售额，只统计：价格导向…")."""
    reader = _Reader(vocab or Vocabulary(), today)
    by = texts.REPORT_DIMENSIONS.get(command.by, command.by) if command.by is not None else ""
    measures = texts.REPORT_MEASURE_SEPARATOR.join(texts.REPORT_MEASURES.get(m, m) for m in command.measures)
    window = reader.window(command.window or Window("days", 30))
    if command.campaign is not None:
        text = texts.REPORT_READING_CAMPAIGN.format(window=window, campaign=_campaign(command.campaign),
                                                    measures=measures)
    elif all(m in ("conversion", "redemption") for m in command.measures):
        text = texts.REPORT_READING_ALL_CAMPAIGNS.format(window=window, measures=measures)
    elif command.by in ("lifecycle", "rfm") and command.measures == ("customers",):
        # a distribution of a tag: as of T, never windowed
        text = (
            texts.REPORT_READING_DISTRIBUTION.format(by=by, date=today.isoformat())
            if today is not None
            else texts.REPORT_TITLE_DISTRIBUTION.format(by=by)
        )
    else:
        text = texts.REPORT_READING.format(
            window=window, by=texts.REPORT_READING_BY.format(by=by) if by else "", measures=measures
        )
    if command.segment is not None:
        text += texts.REPORT_READING_AMONG.format(segment=reader.read(command.segment))
    return text


def yuan(fen: Any) -> str:
    """30000 → "300", 30050 → "300.5" (fen to 元, no trailing zeros)."""
    return format((Decimal(str(fen)) / 100).normalize(), "f")


def _campaign(name: str) -> str:
    """会员日活动 → 会员日 (the reading says 活动 itself: never 会员日活动活动)."""
    return name[:-2] if name.endswith("活动") and len(name) > 2 else name


class _Reader:
    def __init__(self, vocab: Vocabulary, today: date | None) -> None:
        self.vocab = vocab
        self.today = today

    # ---- logic

    def read(self, node: Segment, nested: bool = False) -> str:
        if isinstance(node, And | Or):
            parts = [self.read(part, nested=True) for part in node.parts]
            if not parts:
                return R["everyone"] if isinstance(node, And) else R["nobody"]
            text = (R["and"] if isinstance(node, And) else R["or"]).join(parts)
            return R["group"].format(text=text) if nested and len(parts) > 1 else text
        if isinstance(node, Not):
            negated = self.negated(node.part)
            if negated is not None:
                return negated
            return R["not"].format(text=self.read(node.part))
        return self.condition(node)

    def condition(self, node: Segment) -> str:
        if isinstance(node, Everyone):
            return R["everyone"]
        if isinstance(node, Saved):
            return R["saved"].format(name=node.name) if node.name else R["saved_last"]
        if isinstance(node, Tag):
            return self.tag(node)
        if isinstance(node, Label):
            return R["label"].format(name=node.name)
        if isinstance(node, StoreCity):
            return R["store_city"].format(city=node.city)
        if isinstance(node, GuideHolds):
            return R["guide_holds"].format(guide=self.guide(node.guide_id))
        if isinstance(node, OrderMetric):
            return self.metric(node)
        if isinstance(node, Bought):
            lead = self.window(node.window) + self.where(node.where)
            return lead + (R["bought"].format(item=self.item(node.item)) if node.item else R["bought_any"])
        if isinstance(node, Did):
            return self.window(node.window) + self.did(node.type, node.item, negated=False)
        if isinstance(node, CartNotBought):
            lead = self.window(node.window)
            if node.item is None:
                return lead + R["cart_not_bought"]
            return lead + R["cart_not_bought_item"].format(item=self.item(node.item))
        if isinstance(node, CouponHeld):
            return self.window(node.window) + R["coupon_held"]
        if isinstance(node, CampaignTouch):
            return R[f"campaign_{node.action}"].format(campaign=_campaign(node.campaign))
        if isinstance(node, FirstOrder):
            return R["first_order"].format(window=self.window(node.window))
        if isinstance(node, Returning):
            return R["returning"].format(window=self.window(node.window))
        raise TypeError(f"not a segment node: {node!r}")

    def negated(self, node: Segment) -> str | None:
        """A natural reading of Not(node) where there is one (没有买过…, 不是…)."""
        if isinstance(node, Not):
            return self.read(node.part)
        if isinstance(node, Label):
            return R["not_label"].format(name=node.name)
        if isinstance(node, StoreCity):
            return R["not_store_city"].format(city=node.city)
        if isinstance(node, GuideHolds):
            return R["not_guide_holds"].format(guide=self.guide(node.guide_id))
        if isinstance(node, Bought):
            lead = self.window(node.window) + self.where(node.where)
            return lead + (R["not_bought"].format(item=self.item(node.item)) if node.item else R["not_bought_any"])
        if isinstance(node, Did):
            return self.window(node.window) + self.did(node.type, node.item, negated=True)
        if isinstance(node, CampaignTouch):
            return R[f"not_campaign_{node.action}"].format(campaign=_campaign(node.campaign))
        if isinstance(node, OrderMetric) and node.measure in ("count", "amount") and node.cmp.op in _INVERSE:
            # counts and sums are 0 without orders, so "not ≥ 2" is exactly "< 2"
            return self.metric(replace(node, cmp=replace(node.cmp, op=_INVERSE[node.cmp.op])))
        if isinstance(node, Tag) and node.cmp.op in ("eq", "in") and node.cmp.value is not None:
            return self.tag(node, negated=True)
        return None

    # ---- tags

    def tag(self, node: Tag, negated: bool = False) -> str:
        key, cmp = node.key, node.cmp
        name = TAG_NAMES.get(key, key)
        if cmp.value is None and cmp.op in ("eq", "ne"):
            return R["tag_absent" if cmp.op == "eq" else "tag_present"].format(tag=name)
        if cmp.op == "eq":
            value = cmp.value
            if key in YES_TAGS:
                return R["not_yes_tag" if negated else "yes_tag"].format(tag=name)
            if key == "coupon_outstanding":
                return R["not_coupon_outstanding" if negated else "coupon_outstanding"]
            if key == "city":
                return R["not_city" if negated else "city"].format(value=value)
            if key == "gender" and not negated and f"gender_{value}" in R:
                return R["gender_is"].format(value=R[f"gender_{value}"])
            if key == "birthday_month" and not negated:
                return R["birthday_month"].format(value=value)
            if key in LIST_TAG_KEYS:
                return R["tag_not_contains" if negated else "tag_contains"].format(
                    tag=name, value=self.tag_value(key, value)
                )
            return R["tag_is_not" if negated else "tag_is"].format(tag=name, value=self.tag_value(key, value))
        if cmp.op == "ne" and key in LIST_TAG_KEYS:
            return R["tag_not_contains"].format(tag=name, value=self.tag_value(key, cmp.value))
        if cmp.op == "ne":
            return R["tag_is_not"].format(tag=name, value=self.tag_value(key, cmp.value))
        if cmp.op == "in":
            values = self.alternatives([self.tag_value(key, v) for v in cmp.value])
            return R["tag_not_in" if negated else "tag_in"].format(tag=name, values=values)
        if key == "level" and cmp.op in ("ge", "le"):
            return R[f"level_{cmp.op}"].format(value=cmp.value)
        return R["tag_cmp"].format(tag=name, cmp=self.compare(cmp, lambda v: self.tag_value(key, v)))

    def tag_value(self, key: str, value: Any) -> str:
        if key == "preferred_store":
            return self.store(str(value))
        if key == "guides":
            return self.guide(str(value))
        if key == "preferred_channel":
            return CHANNEL_NAMES.get(str(value), str(value))
        if key == "coupon_redemption_rate":
            return R["percent"].format(value=format((Decimal(str(value)) * 100).normalize(), "f"))
        if key == "birthday_month":
            return R["month"].format(value=value)
        if key == "gender" and f"gender_{value}" in R:
            return R[f"gender_{value}"]
        return str(value)

    # ---- comparisons, units, names

    def compare(self, cmp: Compare, unit: Any) -> str:
        if cmp.op == "between":
            return R["cmp_between"].format(value=unit(cmp.value), high=unit(cmp.high))
        if cmp.op == "in":
            return R["cmp_in"].format(values=self.alternatives([unit(v) for v in cmp.value]))
        return R[f"cmp_{cmp.op}"].format(value=unit(cmp.value))

    def alternatives(self, values: list[str]) -> str:
        if len(values) <= 1:
            return "".join(values)
        return R["list_sep"].join(values[:-1]) + R["list_last"] + values[-1]

    def store(self, store_id: str) -> str:
        for store in self.vocab.stores:
            if store.store_id == store_id and store.name:
                return R["named"].format(name=store.name, id=store_id)
        return store_id

    def guide(self, guide_id: str) -> str:
        for guide in self.vocab.guides:
            if guide.guide_id == guide_id and guide.name:
                return R["named"].format(name=guide.name, id=guide_id)
        return guide_id

    def item(self, item: Item | None) -> str:
        if item is None:
            return ""
        return R[item.kind].format(value=item.value)

    def where(self, where: Where) -> str:
        if where.store_id is not None:
            return R["at_store"].format(store=self.store(where.store_id))
        if where.channels:
            names = [CHANNEL_NAMES.get(c, c) for c in where.channels]
            return R["at_channels"].format(channels=self.alternatives(names))
        return ""

    # ---- orders and events

    def metric(self, node: OrderMetric) -> str:
        def unit(value: Any) -> str:
            if node.measure in MONEY_MEASURES:
                return R["yuan"].format(value=yuan(value))
            return R["times"].format(value=value)

        cmp = self.compare(node.cmp, unit)
        lead = self.window(node.window) + self.where(node.where)
        if node.item is None:
            return lead + R[node.measure].format(cmp=cmp)
        return lead + R[f"item_{node.measure}"].format(item=self.item(node.item), cmp=cmp)

    def did(self, type_: str, item: Item | None, negated: bool) -> str:
        action = SEGMENT_EVENT_ACTIONS.get(type_, type_)
        key = ("not_" if negated else "") + ("did_item" if item else "did")
        return R[key].format(action=action, item=self.item(item))

    def window(self, window: Window) -> str:
        text = self.window_name(window)
        if self.today is not None and window.kind != "dates" and not (window.kind == "days" and window.n >= EVER_DAYS):
            first, last = window.span(self.today)
            text += R["span"].format(first=first.isoformat(), last=last.isoformat())
        return text

    @staticmethod
    def window_name(window: Window) -> str:
        kind, n = window.kind, window.n
        if kind == "days" and n >= EVER_DAYS:
            return R["ever"]
        if kind == "days":
            return R["days"].format(n=max(n, 1))
        if kind in ("week", "month", "year"):
            if f"{kind}_{n}" in R:
                return R[f"{kind}_{n}"]
            return R[f"{kind}_n" if n < 0 else f"{kind}_later"].format(n=abs(n))
        if kind == "festival":
            if window.year is not None:
                return R["festival_of"].format(year=window.year, name=window.name)
            return R["festival"].format(name=window.name)
        if kind == "month_of":
            if window.year is not None:
                return R["month_of_year"].format(year=window.year, month=window.month)
            return R["month_of"].format(month=window.month)
        if kind == "dates":
            assert window.start is not None and window.end is not None
            return R["dates"].format(start=window.start.isoformat(), end=window.end.isoformat())
        return kind
