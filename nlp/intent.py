"""What a whole chat command asks for (commands.md "Families"): the parser's result.

Plain frozen data; the command layer (handlers/commands.py) acts on it. Every command that
changes something is answered with a preview first and runs only on confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

from nlp.segment import Segment, Window


@dataclass(frozen=True)
class SegmentCommand:
    """圈人: count + a few masked samples, saved under a name (`save_as`, or a name made from
    the reading). `count_only`: the question was "有多少" (no samples asked for)."""

    segment: Segment
    count_only: bool = False
    save_as: str | None = None


@dataclass(frozen=True)
class CouponOffer:
    """A coupon to send: a known card (`card_id`), or one described by kind, value, threshold
    (30元无门槛券 = cash 3000 fen threshold 0; 满200减30 = cash 3000 threshold 20000; 8折券 =
    discount value 20 (percent off))."""

    card_id: str | None = None
    kind: Literal["cash", "discount", "gift"] = "cash"
    value: float = 0.0  # fen for cash, percent off for discount
    threshold_fen: int = 0


@dataclass(frozen=True)
class CampaignVariant:
    """One version of a campaign's message (千人千面): "价格导向的发30元无门槛券" is for the persons
    `when` holds (价格导向); `when` None ("其他人发新品推荐") holds everyone no version before it
    holds. `who` is the condition as written."""

    who: str
    when: Segment | None
    content: str = ""
    coupon: CouponOffer | None = None


@dataclass(frozen=True)
class CampaignCommand:
    """营销: who, through which channel, what, when. With `variants` (千人千面), what each kind of
    customer gets, in order, the first that holds a person winning (persons none holds are not
    sent anything); `content` and `coupon` are then empty."""

    segment: Segment
    channel: Literal["wecom", "oa", "sms", "any"] = "any"  # sms: `qianmian campaign create --channel sms`
    content: str = ""
    coupon: CouponOffer | None = None
    send_at: datetime | None = None  # aware, Asia/Shanghai; None: now (after confirmation)
    name: str = ""
    variants: tuple[CampaignVariant, ...] = ()


@dataclass(frozen=True)
class CampaignControlCommand:
    """暂停 / 恢复 / 取消 a campaign we run ("暂停双11大促", "取消双11大促活动"): previewed, then confirmed."""

    action: Literal["pause", "resume", "cancel"]
    campaign: str


@dataclass(frozen=True)
class JourneyCommand:
    """旅程 (automated journeys, campaigns.journeys): "打开新粉欢迎旅程" (on), "关闭生日旅程" (off),
    "设置新粉欢迎旅程第2步的内容为“…”" (content; `step` 0-based), "旅程列表" (list). `journey` is
    the journey's key: welcome | cart | coupon | birthday | dormant ("" for the list)."""

    action: Literal["on", "off", "content", "list"]
    journey: str = ""
    step: int = 0
    content: str = ""


ReportMeasure = Literal["sales", "orders", "customers", "conversion", "redemption", "aov"]
ReportDimension = Literal["channel", "store", "city", "lifecycle", "rfm", "category"]


@dataclass(frozen=True)
class ReportCommand:
    """复盘: `measures` over `window` (None: last 30 days), broken down `by` a dimension (None:
    totals), of one campaign when `campaign` names it, among `segment` when given."""

    measures: tuple[ReportMeasure, ...] = ("sales",)
    by: ReportDimension | None = None
    window: Window | None = None
    campaign: str | None = None
    segment: Segment | None = None


@dataclass(frozen=True)
class PersonRef:
    """One person, as a person names them: a phone, a member id, or a name (+ store)."""

    phone: str | None = None  # as typed; normalised by the store
    member_id: str | None = None
    name: str | None = None
    store_id: str | None = None


@dataclass(frozen=True)
class PortraitCommand:
    """画像: one person's portrait."""

    person: PersonRef


@dataclass(frozen=True)
class LabelCommand:
    """打标签 / 去掉标签: put (`add`) or remove manual `label` on a segment or one person."""

    label: str
    add: bool = True
    segment: Segment | None = None
    person: PersonRef | None = None


@dataclass(frozen=True)
class HelpCommand:
    pass


@dataclass(frozen=True)
class ReplyCommand:
    """An answer to a pending preview: 确认 / 是 / 好的 (yes) or 取消 / 算了 (no)."""

    yes: bool


# unknown: the condition is not a segment we can read · no_content: nothing to send them ·
# default_twice: "其他人" given twice (or besides the content of the command itself)
VariantIssue = Literal["unknown", "no_content", "default_twice"]


@dataclass(frozen=True)
class NotUnderstood:
    """The parser could not place everything: `unplaced` words it could not use, `unknown`
    names that look like stores, guides, tags … that do not exist ((kind, name) pairs, kind in
    store | guide | tag | category | brand | sku | coupon | campaign | label | city), and the
    nearest commands it does understand."""

    unplaced: tuple[str, ...] = ()
    unknown: tuple[tuple[str, str], ...] = ()
    suggestions: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""
    # A campaign's version that cannot be used: its condition as written and why (VariantIssue).
    variant: str = ""
    variant_issue: VariantIssue | None = None


Command: TypeAlias = (
    SegmentCommand
    | CampaignCommand
    | CampaignControlCommand
    | JourneyCommand
    | ReportCommand
    | PortraitCommand
    | LabelCommand
    | HelpCommand
    | ReplyCommand
    | NotUnderstood
)
