"""Chinese commands → `Command` / `Segment` (commands.md): pure functions of text, vocabulary and
the moment of asking.

Grammar: the lexer (`nlp.lexicon`) turns the normalised text into lexemes (jieba keeps the
domain and retailer words whole; compound numbers, windows and ids are matched at token starts).
`_SegmentParser` reads the lexemes left to right with a little state — the window in force
(carried on until another is named), the order place (在门店S005 / 线上), a pending negation and
a pending comparison word — and emits one condition per phrase. Joins:

- side by side (价格导向会员) binds tightest, then 或 / 或者, then the "and" words, 的 and X中/X里:
  沉睡或流失的会员 = (沉睡 ∨ 流失) ∧ 会员; 沉睡会员或流失会员 = (沉睡 ∧ 会员) ∨ (流失 ∧ 会员).
- a negated order or event condition without an object takes the previous condition's object
  (近半年买过木棉但近一个月没买过; 浏览过连衣裙但没下单); a bare object after a join takes the
  previous verb (买过童装或女鞋).

Every lexeme must be placed: a word the grammar cannot use, a window nothing used, a dangling
negation or comparison makes the answer `NotUnderstood` with those words, never a guess.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from bot.texts import REPORT_SCOPE_NOT_UNDERSTOOD, REPORT_TWO_WINDOWS
from nlp.describe import describe
from nlp.examples import EXAMPLES
from nlp.intent import (
    CampaignCommand,
    CampaignControlCommand,
    CampaignVariant,
    Command,
    CouponOffer,
    HelpCommand,
    JourneyCommand,
    LabelCommand,
    NotUnderstood,
    PersonRef,
    PortraitCommand,
    ReplyCommand,
    ReportCommand,
    ReportDimension,
    ReportMeasure,
    SegmentCommand,
)
from nlp.lexicon import (
    CAMPAIGN_VERBS,
    CHANNEL_NAMES,
    CMP_WORDS,
    LIFECYCLE_VALUES,
    Lexeme,
    Lexicon,
    lexicon_for,
    normalise,
)
from nlp.numbers import NUMBER, parse_number, to_fen
from nlp.segment import (
    CHANNELS,
    DEFAULT_WINDOW,
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
    all_of,
    any_of,
    eq,
)
from nlp.vocabulary import Vocabulary
from nlp.when import SEND_TIME_RE, SendTimeError, find_send_time, local_now

_MONEY_UNITS = {"元": 1, "块": 1, "块钱": 1, "元钱": 1, "万元": 10_000, "千元": 1000, "w": 10_000, "W": 10_000}
_COUNT_UNITS = ("次", "单", "笔")
# "At any time" (老客 after 半年内没回购): a days window longer than any retailer's history, so it
# stays relative like every other window (describe reads it as 曾经).
EVER = Window("days", 36_500)
_PLACE_WORDS = ("CHANNEL", "STOREWORD")
_SKIP_IN_PHRASE = {"了", "过", "是", "为", "有", "在", "的话"}


class _SegmentParser:
    def __init__(self, lexemes: list[Lexeme], lexicon: Lexicon, today: date) -> None:
        self.lx = lexemes
        self.lexicon = lexicon
        self.today = today
        self.i = 0
        self.atoms: list[tuple[str, Segment]] = []
        self.sep = "and"
        self.neg: Lexeme | None = None
        self.window: Window | None = None
        self.window_lexeme: Lexeme | None = None
        self.window_used = True
        self.where: Where | None = None
        self.where_text = ""
        self.where_used = True
        self.cmp: Lexeme | None = None
        self.last: Segment | None = None
        self.only: Lexeme | None = None
        # More places named before one verb: 线上线下都买过 (each of them) / 在北京门店买过 (any).
        self.where_alts: tuple[Where, ...] = ()
        self.where_join = "or"
        self.anyone = False
        self.unplaced: list[str] = []
        self.unknown: list[tuple[str, str]] = []
        # Windows no condition took (近一个月的忠诚会员): nothing to a segment, a report's period.
        self.idle: list[Lexeme] = []
        self.result: tuple[Segment | None, list[str], list[tuple[str, str]]] = (None, [], [])

    # ------------------------------------------------------------------ helpers

    def peek(self, offset: int = 0) -> Lexeme | None:
        j = self.i + offset
        return self.lx[j] if j < len(self.lx) else None

    def next_meaningful(self, skip: set[str] | None = None) -> int:
        """Index of the next lexeme after i that is not a filler word of a phrase."""
        words = _SKIP_IN_PHRASE if skip is None else skip
        j = self.i + 1
        while j < len(self.lx) and self.lx[j].kind == "NOISE" and self.lx[j].text in words:
            j += 1
        return j

    def at(self, j: int) -> Lexeme | None:
        return self.lx[j] if j < len(self.lx) else None

    def take_window(self) -> Window:
        self.window_used = True
        return self.window if self.window is not None else DEFAULT_WINDOW

    def take_where(self) -> Where:
        if self.where is None:
            return Where()
        self.where_used = True
        return self.where

    def emit(self, condition: Segment) -> None:
        positive = condition
        if self.neg is None and self.sep == "and" and self.atoms and _exclusive(self.atoms[-1][1], condition):
            # 上海和北京的会员: one person has one city, so two values of a one-valued tag
            # joined by an "and" word mean either of them (an "and" would always be empty).
            self.sep = "or"
        if self.only is not None and isinstance(condition, Bought | OrderMetric | Did | CartNotBought):
            # 只买过木棉: "and nothing else" is no condition we have (只在线上买过 took it already).
            self.unplaced.append(self.only.text)
            self.only = None
        if self.neg is not None:
            condition = Not(condition)
            self.neg = None
        self.atoms.append((self.sep, condition))
        self.sep = "tight"
        self.last = positive

    def separate(self, kind: str) -> None:
        if self.neg is not None:
            self.unplaced.append(self.neg.text)
            self.neg = None
        if kind == "or" or self.sep != "or":
            self.sep = kind

    # ------------------------------------------------------------------ main loop

    def run(self) -> tuple[Segment | None, list[str], list[tuple[str, str]]]:
        while self.i < len(self.lx):
            lx = self.lx[self.i]
            kind = lx.kind
            if kind == "AND" or kind == "DE" or kind == "ZHONG":
                self.separate("and")
                self.i += 1
            elif kind == "OR":
                self.separate("or")
                self.i += 1
            elif kind == "NOT":
                self.neg = None if self.neg is not None else lx
                self.i += 1
            elif kind == "WINDOW":
                self.flush_window()
                self.window, self.window_lexeme, self.window_used = lx.value, lx, False
                self.i += 1
            elif kind == "NOISE" and lx.text == "来" and self.neg is not None:
                # 三个月没来的老客: 来 after a negation is a store visit, not a filler.
                condition = self.c_visit(lx)
                if condition is not None:
                    self.emit(condition)
            elif kind == "NOISE":
                self.i += 1
            elif kind == "ONLY":
                if self.only is not None:
                    self.unplaced.append(self.only.text)
                self.only = lx
                self.i += 1
            elif kind == "ANYONE":
                self.anyone = True
                self.i += 1
            elif kind == "CMP":
                if self.cmp is not None:
                    self.unplaced.append(self.cmp.text)
                self.cmp = lx
                self.i += 1
            elif kind == "AT":
                self.place(after_at=True)
            else:
                start = self.i
                condition = self.condition()
                if condition is not None:
                    self.emit(condition)
                elif self.i == start:
                    self.unplaced.append(lx.text)
                    self.i += 1
        self.flush_window()
        if self.where is not None and not self.where_used:
            self.unplaced.append(self.where_text)
        if self.neg is not None:
            self.unplaced.append(self.neg.text)
        if self.cmp is not None:
            self.unplaced.append(self.cmp.text)
        # an 只 no order condition followed (只看女性会员) is a filler
        return self.build(), self.unplaced, self.unknown

    def flush_window(self) -> None:
        # A window nothing used stood in front of tag words only (近一个月的忠诚会员): tags never take
        # a window (commands.md), so it changes nothing. It is not dropped when nothing at all
        # was understood: then the whole command is not understood.
        if not self.window_used and self.window_lexeme is not None:
            self.idle.append(self.window_lexeme)
        self.window_used = True

    def build(self) -> Segment | None:
        if not self.atoms:
            return Everyone() if self.anyone else None
        # 上海的女性会员或北京的男性会员: when both ends of an 或 are whole phrases joined by "and"
        # words or 的, the 或 splits the command; otherwise it joins the nearest conditions
        # (沉睡或流失的会员).
        runs: list[list[tuple[str, Segment]]] = [[]]
        for sep, atom in self.atoms:
            if sep == "or":
                runs.append([])
                sep = "and"
            runs[-1].append((sep, atom))
        if len(runs) > 1 and all(any(s == "and" for s, _ in run[1:]) for run in (runs[0], runs[-1])):
            return any_of(*(self.build_and(run) for run in runs))
        return self.build_and(self.atoms)

    def build_and(self, atoms: list[tuple[str, Segment]]) -> Segment:
        groups: list[list[list[Segment]]] = []
        for sep, atom in atoms:
            if sep == "and" or not groups:
                groups.append([[atom]])
            elif sep == "or":
                groups[-1].append([atom])
            else:
                groups[-1][-1].append(atom)
        parts: list[Segment] = []
        for group in groups:
            if len(group) > 1 and all(len(alt) == 1 for alt in group[:-1]) and len(group[-1]) > 1:
                # 沉睡或流失会员: values of one kind before a word that stands by the last one
                # (会员) are the alternatives; the word is said of all of them.
                head = group[-1][0]
                if all(_same_kind(alt[0], head) for alt in group[:-1]):
                    tail = group[-1][1:]
                    parts.append(any_of(*_dedupe([alt[0] for alt in group[:-1]] + [head])))
                    parts.extend(tail)
                    continue
            alternatives = [all_of(*_dedupe(alt)) for alt in group]
            parts.append(any_of(*_dedupe(alternatives)))
        flat = all_of(*parts)
        if isinstance(flat, And):
            flat = all_of(*_dedupe(list(flat.parts)))
        return flat

    # ------------------------------------------------------------------ conditions

    def condition(self) -> Segment | None:
        lx = self.lx[self.i]
        kind = lx.kind
        handler = getattr(self, f"c_{kind.lower()}", None)
        if handler is None:
            return None
        result: Segment | None = handler(lx)
        return result

    def c_tag(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        tag: Tag = lx.value
        if self.window is not None and not self.window_used and tag.cmp == eq("是"):
            # 上周加了企微的 / 本月关注公众号的: with a window of its own the verb is the event of
            # that window, not the standing relationship (a tag never takes a window).
            if tag.key == "wecom_contact" and lx.text.startswith("加"):
                return Did("add_contact", self.take_window())
            if tag.key == "oa_follower" and lx.text.startswith("关注"):
                return Did("follow", self.take_window())
        return tag

    def c_couponout(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        if self.window is not None:
            return CouponHeld(self.take_window())
        return Tag("coupon_outstanding", eq("是"))

    def c_cartnb(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        item = self.optional_item()
        return CartNotBought(self.take_window(), item)

    def c_birthday(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        return Tag("birthday_month", eq(lx.value))

    def c_level(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        return Tag("level", self.compare_word(lx.value))

    def c_levelrange(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        lo, hi = lx.value
        return Tag("level", Compare("between", lo, hi))

    def compare_word(self, value: Any) -> Compare:
        """A value with the comparison word before it (pending) or right after it."""
        op = "eq"
        if self.cmp is not None:
            op, self.cmp = self.cmp.value, None
        nxt = self.peek()
        if nxt is not None and nxt.kind == "CMP" and op == "eq":
            op = nxt.value
            self.i += 1
        return Compare(op, value)  # type: ignore[arg-type]

    def c_source(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        return Tag("source", eq(lx.value))

    def c_label(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "LABELWORD":
            self.i += 1
        return Label(lx.value)

    def c_labelword(self, lx: Lexeme) -> Segment | None:
        """标签是VIP / 有VIP标签 (a known label), or a label this retailer does not have."""
        j = self.next_meaningful(_SKIP_IN_PHRASE | {"是", "为"})
        target = self.at(j)
        if target is not None and target.kind == "LABEL":
            self.i = j
            return self.c_label(target)
        # 有高潜标签的: the words just before were not understood, and name the label.
        name = ""
        k = self.i - 1
        while k >= 0 and self.unplaced and self.unplaced[-1] == self.lx[k].text:
            name = self.unplaced.pop() + name
            k -= 1
        if not name and j > self.i + 1:
            # 标签是高潜的: the words after 是 / 为 up to the next join.
            k = j
            while k < len(self.lx) and self.lx[k].kind not in ("DE", "AND", "OR", "ZHONG", "TAG", "ANYONE"):
                name += self.lx[k].text
                k += 1
            if name:
                self.i = k
                self.unknown.append(("label", name))
                return Everyone()
        if name:
            self.unknown.append(("label", name))
            self.i += 1
            return Everyone()
        return None

    def c_saved(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        nxt = self.peek()
        while nxt is not None and (
            (nxt.kind == "SAVED" and nxt.value == "") or (nxt.kind == "NOISE" and "人群" in nxt.text)
        ):
            self.i += 1
            nxt = self.peek()
        return Saved(lx.value)

    def c_new(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        cls = FirstOrder if lx.value == "new" else Returning
        if cls is Returning and self.window is not None and self.window_used and self.no_order_in(self.window):
            # 半年内没回购的老客: "no order in the window" already said; 老客 (an order before
            # the window and one within it) would contradict it, so it means what the marketer
            # means: someone who has bought before, at any time.
            return all_of(Bought(EVER), *([Tag("is_member", eq("是"))] if lx.text.endswith("会员") else []))
        member = Tag("is_member", eq("是")) if lx.text.endswith("会员") else None
        if self.window is not None:
            return all_of(cls(self.take_window()), *([member] if member else []))
        return all_of(cls(), *([member] if member else []))

    def no_order_in(self, window: Window) -> bool:
        return any(
            isinstance(atom, Not) and isinstance(atom.part, Bought) and atom.part.window == window
            for _sep, atom in self.atoms
        )

    def c_city(self, lx: Lexeme) -> Segment | None:
        if self.city_stores(self.i):
            return self.place(after_at=False)
        nxt = self.peek(1)
        if nxt is not None and nxt.kind == "STOREWORD":
            self.i += 2
            return StoreCity(lx.value)
        self.i += 1
        return Tag("city", eq(lx.value))

    def c_unknown(self, lx: Lexeme) -> Segment | None:
        if len(lx.text) >= 3 and lx.text.endswith("店") and not lx.text.isascii():
            self.unknown.append(("store", lx.text))  # 南京东路店: a store name this retailer does not have
            self.i += 1
            return Everyone()
        return None

    def c_unknown_city(self, lx: Lexeme) -> Segment | None:
        self.unknown.append(("city", lx.value))
        self.i += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "STOREWORD":
            self.i += 1
        return Everyone()

    def c_unknown_store(self, lx: Lexeme) -> Segment | None:
        self.unknown.append(("store", lx.value))
        self.i += 1
        return Everyone()

    def c_unknown_guide(self, lx: Lexeme) -> Segment | None:
        self.unknown.append(("guide", lx.value))
        self.i += 1
        self.skip_guide_tail()
        return Everyone()

    def c_store(self, lx: Lexeme) -> Segment | None:
        if self.before_order(self.i + 1):
            return self.place(after_at=False)
        self.i += 1
        return Tag("preferred_store", eq(lx.value))

    def c_storeword(self, lx: Lexeme) -> Segment | None:
        j = self.i + 1
        while (x := self.at(j)) is not None and (
            x.kind in ("CHANNEL", "STOREWORD")
            or (x.kind in ("AND", "OR") and (y := self.at(j + 1)) is not None and y.kind in ("CHANNEL", "STOREWORD"))
        ):
            j += 1
        if self.before_order(j):
            return self.place(after_at=False)
        return None

    def c_channel(self, lx: Lexeme) -> Segment | None:
        return self.c_storeword(lx)

    def before_order(self, j: int) -> bool:
        while j < len(self.lx) and self.lx[j].kind == "NOISE" and self.lx[j].text in _SKIP_IN_PHRASE | {"都"}:
            j += 1
        target = self.at(j)
        return target is not None and (
            target.kind in ("BUY", "MEASURE", "NOT", "REBUY", "ONLY", "TIER", "BUYER", "VISIT")
            and not (target.kind == "NOT" and j + 1 >= len(self.lx))
        )

    def place(self, after_at: bool) -> Segment | None:
        """在门店S005 / 在上海一店 / 线上 / 门店 before an order condition: where it was placed."""
        start = self.i
        if after_at:
            self.i += 1
        lx = self.peek()
        if lx is None:
            self.unplaced.append(self.lx[start].text)
            return None
        alts: tuple[Where, ...] = ()
        join = "or"
        city_stores = self.city_stores(self.i)
        if lx.kind == "STORE":
            where = Where(store_id=lx.value)
        elif city_stores:
            # 在北京门店买过: a pos order at any store of that city.
            self.i += 1
            alts = tuple(Where(store_id=store) for store in city_stores)
            where = alts[0]
        elif lx.kind in ("CHANNEL", "STOREWORD"):
            where = Where(channels=_channels(lx))
            j = self.i + 1
            more: list[Where] = [where]
            while (x := self.at(j)) is not None:
                if x.kind in ("CHANNEL", "STOREWORD"):
                    more.append(Where(channels=_channels(x)))
                    j += 1
                elif x.kind in ("AND", "OR") and (y := self.at(j + 1)) is not None and y.kind in _PLACE_WORDS:
                    join = "or" if x.kind == "OR" else "and"
                    more.append(Where(channels=_channels(y)))
                    j += 2
                else:
                    break
            if len(more) > 1:
                if join == "and" or (self.at(j) is not None and self.lx[j].text == "都"):
                    join = "and"  # 线上线下都买过 / 线上和门店都买过
                alts = tuple(dict.fromkeys(more))
                self.i = j - 1
        elif lx.kind == "UNKNOWN_STORE":
            self.unknown.append(("store", lx.value))
            self.i += 1
            return None
        else:
            return None  # a plain 在 ("客单价在200到500之间"): filler
        self.i += 1
        if self.where is not None and not self.where_used:
            self.unplaced.append(self.where_text)
        self.where, self.where_used = where, False
        self.where_alts, self.where_join = alts, join
        self.where_text = "".join(x.text for x in self.lx[start : self.i])
        return None

    def city_stores(self, j: int) -> tuple[str, ...]:
        """北京门店 at j followed by an order verb: the ids of that city's stores."""
        lx, nxt = self.at(j), self.at(j + 1)
        if lx is None or lx.kind != "CITY" or nxt is None or nxt.kind != "STOREWORD" or not self.before_order(j + 2):
            return ()
        return tuple(s.store_id for s in self.lexicon.vocab.stores if s.city == lx.value)

    def c_guideword(self, lx: Lexeme) -> Segment | None:
        j = self.i + 1
        target = self.at(j)
        if target is None:
            return None
        if target.kind == "GUIDE":
            self.i = j + 1
            self.skip_guide_tail()
            return any_of(*(GuideHolds(g) for g in target.value))
        if target.kind in ("UNKNOWN", "UNKNOWN_GUIDE", "NUM", "TAG", "VALUE"):
            name = target.text
            self.i = j + 1
            while (nxt := self.peek()) is not None and nxt.kind not in ("DE", "AND", "OR", "ZHONG"):
                name += nxt.text
                self.i += 1
            self.unknown.append(("guide", name))
            self.skip_guide_tail()
            return Everyone()
        return None

    def c_guide(self, lx: Lexeme) -> Segment | None:
        if lx.text.startswith(("导购", "店员")):  # 导购GS0011 (matched with its id)
            self.i += 1
            self.skip_guide_tail()
            return any_of(*(GuideHolds(g) for g in lx.value))
        nxt, after = self.peek(1), self.peek(2)
        if (
            nxt is not None
            and nxt.kind == "DE"
            and after is not None
            and (after.kind == "ANYONE" or (after.kind == "TAG" and after.value.key == "wecom_contact"))
        ):
            self.i += 1
            self.skip_guide_tail()
            return any_of(*(GuideHolds(g) for g in lx.value))
        return None

    def skip_guide_tail(self) -> None:
        """导购张三的好友 / 的客户: the 好友 is the relationship already said."""
        nxt, after = self.peek(), self.peek(1)
        if nxt is not None and nxt.kind == "DE" and after is not None:
            if after.kind == "ANYONE" or (after.kind == "TAG" and after.value.key == "wecom_contact"):
                self.i += 2

    def c_item(self, lx: Lexeme) -> Segment | None:
        """A bare object after a join takes the previous verb: 买过童装或女鞋."""
        item: Item = lx.value
        j = self.i + 1
        while (x := self.at(j)) is not None and (x.kind in ("BRANDWORD", "DE", "ANYTHING")):
            if x.kind == "BRANDWORD" and item.kind != "brand":
                break
            j += 1
        buyer = self.at(j)
        if buyer is not None and buyer.kind == "BUYER":
            # 木棉品牌的买家 / 连衣裙买家: people who bought it.
            self.i = j + 1
            return Bought(self.take_window(), item, self.take_where())
        verb, verb2 = self.at(self.i + 1), self.at(self.i + 2)
        if verb is not None and verb.kind == "BRANDWORD" and item.kind == "brand":
            verb, verb2 = verb2, None  # 木棉牌子买过的
        if verb is not None and verb.kind == "BUY" and not (verb2 is not None and verb2.kind == "ITEM"):
            # 连衣裙买了两次以上 / 木棉牌子买过的: the object before its verb.
            self.i = self.lx.index(verb, self.i) + 1
            return self.buy_rest(verb, item)
        if self.sep == "tight" or self.last is None:
            return None
        last = self.last
        if isinstance(last, Bought | Did | CartNotBought):
            self.i += 1
            window = self.window if self.window is not None and not self.window_used else last.window
            self.window_used = True
            return replace(last, item=item, window=window)
        if isinstance(last, OrderMetric) and last.item is not None:
            self.i += 1
            return replace(last, item=item)
        if (
            isinstance(last, Tag)
            and last.key in ("preferred_category", "browse_preference")
            and item.kind == "category"
        ):
            self.i += 1
            return Tag(last.key, eq(item.value))
        return None

    def optional_item(self) -> Item | None:
        """An item next (品牌木棉 / 木棉牌子 / 木棉品牌 take the brand word with it)."""
        nxt, after = self.peek(), self.peek(1)
        if (
            nxt is not None
            and nxt.kind == "BRANDWORD"
            and after is not None
            and after.kind == "ITEM"
            and after.value.kind == "brand"
        ):
            self.i += 1
            nxt = after
        if nxt is not None and nxt.kind == "ITEM":
            self.i += 1
            self.skip_brand_word(nxt.value)
            return nxt.value  # type: ignore[no-any-return]
        return None

    def skip_brand_word(self, item: Item) -> None:
        nxt = self.peek()
        if item.kind == "brand" and nxt is not None and nxt.kind == "BRANDWORD":
            self.i += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "ANYTHING":  # 木棉的东西 / 云裳商品
            self.i += 1

    def skip_anything(self) -> None:
        """买过东西 / 买过商品: any goods, no item."""
        nxt = self.peek()
        if nxt is not None and nxt.kind == "ANYTHING":
            self.i += 1

    def unknown_item(self) -> bool:
        """买过羽绒服 where 羽绒服 is no category, brand or SKU of this retailer."""
        nxt = self.peek()
        if nxt is not None and nxt.kind == "UNKNOWN":
            self.i += 1
            self.window_used = True
            kind = "sku" if nxt.text.isascii() else "category"
            self.unknown.append((kind, nxt.text))
            return True
        return False

    def carried_item(self) -> Item | None:
        last = self.last
        if self.neg is not None and isinstance(last, Bought | Did | CartNotBought | OrderMetric):
            return last.item
        return None

    def c_buyer(self, lx: Lexeme) -> Segment | None:
        """买家 / 购买者 alone: people with a paid order in the window."""
        self.i += 1
        return Bought(self.take_window(), None, self.take_where())

    def c_tier(self, lx: Lexeme) -> Segment | None:
        """高客单 / 大额订单: the tag of tags.md, or with a window or place the same threshold on
        those orders."""
        self.i += 1
        measure, op, fen, key, value = lx.value
        if (self.window is not None and not self.window_used) or (self.where is not None and not self.where_used):
            return OrderMetric(measure, Compare(op, fen), self.take_window(), self.take_where())
        return Tag(key, eq(value))

    def c_rebuy(self, lx: Lexeme) -> Segment | None:
        """复购 / 回购 / 回头客: at least two paid orders in the window; negated, none."""
        self.i += 1
        self.skip_fillers()
        self.skip_anything()
        item = self.optional_item()
        metric = self.metric(default="count", item=item)
        if metric is not None:
            return metric
        if self.neg is not None and self.window is not None:
            # 半年内没回购: no order in the window named.
            return Bought(self.take_window(), item or self.carried_item(), self.take_where())
        # 复购客户 = ≥ 2 orders; 没有复购的新客 (no window): not ≥ 2 orders, i.e. bought once at most.
        return OrderMetric("count", Compare("ge", 2), self.take_window(), self.take_where(), item)

    def c_visit(self, lx: Lexeme) -> Segment | None:
        """来过 / 到店 / 进店: a store visit is a paid pos order (the data records no visit
        without one); 近30天没到店 = no pos order in those 30 days."""
        start = self.i
        self.i += 1
        if self.where is None or self.where_used:
            self.where, self.where_used, self.where_text = Where(channels=("pos",)), False, lx.text
        self.skip_fillers()
        nxt = self.peek()
        if nxt is not None and nxt.kind == "STORE":  # 来过上海一店
            self.where, self.where_text = Where(store_id=nxt.value), lx.text + nxt.text
            self.i += 1
            nxt = self.peek()
        elif nxt is not None and nxt.kind == "CITY" and (y := self.peek(1)) is not None and y.kind == "STOREWORD":
            # 来过北京门店
            stores = tuple(s.store_id for s in self.lexicon.vocab.stores if s.city == nxt.value)
            if stores:
                self.where_alts, self.where_join = tuple(Where(store_id=store) for store in stores), "or"
                self.where, self.where_text = self.where_alts[0], lx.text + nxt.text + self.lx[self.i + 1].text
                self.i += 2
                nxt = self.peek()
        elif nxt is not None and nxt.kind == "STOREWORD":  # 来过门店 / 到过店
            self.i += 1
            nxt = self.peek()
        if nxt is not None and nxt.kind == "NOT" and (y := self.peek(1)) is not None and y.kind in ("BUY", "MEASURE"):
            # 进店没买: a visit without an order leaves no trace in the data.
            self.unplaced.append(self.where_text)
            self.where, self.where_used, self.where_alts = None, True, ()
            return None
        if nxt is not None and nxt.kind in ("BUY", "MEASURE", "REBUY"):
            return None  # 到店消费过: the verb that follows takes the place
        if nxt is not None and nxt.kind == "NOISE" and nxt.text == "来" and self.i == start + 1:
            self.i += 1
        return self.buy_rest(lx)

    def c_buy(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        return self.buy_rest(lx)

    def c_num(self, lx: Lexeme) -> Segment | None:
        """两次以上购买的 / 3次以上来店: the count before the verb."""
        value, unit = lx.value
        if unit not in ("次", "单", "笔") or value != int(value):
            return None
        j = self.i + 1
        op = self.cmp.value if self.cmp is not None else "eq"
        if (x := self.at(j)) is not None and x.kind == "CMP":
            op = x.value
            j += 1
        while (x := self.at(j)) is not None and x.kind == "NOISE" and x.text in _SKIP_IN_PHRASE | {"都"}:
            j += 1
        verb = self.at(j)
        if verb is None or verb.kind not in ("BUY", "VISIT", "REBUY"):
            return None
        self.cmp = None
        self.i = j + 1
        where = Where(channels=("pos",)) if verb.kind == "VISIT" else self.take_where()
        self.skip_fillers()
        self.skip_anything()
        item = self.optional_item()
        return OrderMetric("count", Compare(op, int(value)), self.take_window(), where, item)  # type: ignore[arg-type]

    def buy_rest(self, lx: Lexeme, fronted: Item | None = None) -> Segment | None:
        self.skip_fillers()
        self.skip_anything()
        item = fronted or self.optional_item()
        if item is None and self.unknown_item():
            return Everyone()
        self.skip_fillers()
        metric = self.metric(default="amount" if lx.text.startswith(("消费", "累计")) else "count", item=item)
        if metric is not None:
            return metric
        if item is None:
            item = self.optional_item() or self.carried_item()
        if self.where_alts and self.where is not None and not self.where_used:
            alts, self.where_alts = self.where_alts, ()
            self.where_used = True
            window = self.take_window()
            parts = [Bought(window, item, where) for where in alts]
            # 线上线下都买过: each; 线上和线下都没买过: neither (the negation is put around the any).
            return all_of(*parts) if self.where_join == "and" and self.neg is None else any_of(*parts)
        if self.only is not None and self.neg is None and self.where is not None and not self.where_used:
            where = self.take_where()
            if where.store_id is None and where.channels:
                # 只在线上买过: orders there and none elsewhere in the window.
                self.only = None
                window = self.take_window()
                others = tuple(c for c in CHANNELS if c not in where.channels)
                return all_of(Bought(window, item, where), Not(Bought(window, item, Where(channels=others))))
            return Bought(self.take_window(), item, where)
        return Bought(self.take_window(), item, self.take_where())

    def c_measure(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        self.skip_fillers()
        metric = self.metric(default=lx.value, item=None, fixed=lx.value in ("aov", "max"))
        if metric is None:
            self.i -= 1
            return None
        return metric

    def skip_fillers(self) -> None:
        while True:
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("NOISE", "AT") or nxt.text not in _SKIP_IN_PHRASE:
                return
            self.i += 1

    def metric(self, default: str, item: Item | None, fixed: bool = False) -> Segment | None:
        """[CMP] NUM|RANGE [CMP] after a measure: 2次以上, 满5000元, 高于300元, 200到500元之间."""
        start = self.i
        op: str | None = None
        if self.cmp is not None:
            op = self.cmp.value
        nxt = self.peek()
        if nxt is not None and nxt.kind == "CMP":
            op = nxt.value
            self.i += 1
            nxt = self.peek()
        if nxt is not None and nxt.kind == "NUMCMP" and op is None:
            # 过千 / 破万 / 上千: a comparison and a round amount in one word.
            op = nxt.value[0]
            nxt = Lexeme("NUM", nxt.text, (nxt.value[1], "元"))
        if nxt is None or nxt.kind not in ("NUM", "RANGE"):
            self.i = start
            return None
        self.i += 1
        if nxt.kind == "NUM":
            values: list[Decimal] = [nxt.value[0]]
            unit = nxt.value[1]
        else:
            values = [nxt.value[0], nxt.value[1]]
            unit = nxt.value[2]
        after = self.peek()
        if after is not None and after.kind == "NOISE" and after.text == "的话":
            self.i += 1
            after = self.peek()
        if after is not None and after.kind == "CMP" and nxt.kind == "NUM":
            if op is not None and op != after.value:
                self.i = start
                return None
            op = after.value
            self.i += 1
        if unit not in ("", *_COUNT_UNITS, *_MONEY_UNITS):
            self.i = start
            return None
        measure = default
        if not fixed:
            if unit in _COUNT_UNITS:
                measure = "count"
            elif unit in _MONEY_UNITS:
                measure = "amount"
        elif unit in _COUNT_UNITS:
            self.i = start
            return None
        if measure == "count":
            if any(v != int(v) for v in values):
                self.i = start
                return None
            converted: list[int] = [int(v) for v in values]
        else:
            scale = _MONEY_UNITS.get(unit, 1)
            converted = [to_fen(v * scale) for v in values]
        self.cmp = None
        if self.where_alts and self.where is not None and not self.where_used:
            # 在北京门店消费满3000: one sum over several places is no condition we have.
            self.unplaced.append(self.where_text)
            self.where_alts, self.where, self.where_used = (), None, True
        if self.only is not None and (op or "eq") == "eq" and len(values) == 1:
            self.only = None  # 只买过一次: exactly that many
        if item is None:
            item = self.optional_item()
        compare = (
            Compare("between", converted[0], converted[1])
            if len(converted) == 2
            else Compare((op or "eq"), converted[0])  # type: ignore[arg-type]
        )
        return OrderMetric(measure, compare, self.take_window(), self.take_where(), item)  # type: ignore[arg-type]

    def c_event(self, lx: Lexeme) -> Segment | None:
        self.i += 1
        self.skip_fillers()
        if lx.value in ("browse", "add_cart", "click"):
            self.skip_anything()
        item = self.optional_item()
        if item is None and lx.value in ("browse", "add_cart", "click") and self.unknown_item():
            return Everyone()
        if item is None:
            item = self.carried_item()
        if lx.value == "add_cart" and self.cart_not_bought_follows():
            return CartNotBought(self.take_window(), item)  # 加购连衣裙未购买 (commands.md 加购未购买)
        return Did(lx.value, self.take_window(), item)

    def cart_not_bought_follows(self) -> bool:
        """加购连衣裙[但]未购买: the negated buy right after names no other object."""
        j = self.i
        while (x := self.at(j)) is not None and (x.kind == "AND" or (x.kind == "NOISE" and x.text in ("还", "了"))):
            j += 1
        neg, verb, after = self.at(j), self.at(j + 1), self.at(j + 2)
        if neg is None or neg.kind != "NOT" or verb is None or verb.kind != "BUY" or self.neg is not None:
            return False
        if after is not None and after.kind in ("ITEM", "UNKNOWN", "NUM", "CMP", "ANYTHING"):
            return False
        self.i = j + 2
        return True

    def c_event_or_ct(self, lx: Lexeme) -> Segment | None:
        (kind, value), action = lx.value
        target = self.at(self.next_meaningful())
        if (target is not None and target.kind == "CAMPAIGN") or (
            self.neg is not None and isinstance(self.last, CampaignTouch)
        ):
            return self.c_ctverb(Lexeme("CTVERB", lx.text, action))
        return self.c_event(Lexeme(kind, lx.text, value))

    def c_ctverb(self, lx: Lexeme) -> Segment | None:
        j = self.next_meaningful()
        target = self.at(j)
        if target is not None and target.kind == "CAMPAIGN":
            self.i = j + 1
            self.skip_campaign_tail()
            return CampaignTouch(target.value, lx.value)
        if target is not None and target.kind == "UNKNOWN":
            after = self.at(j + 1)
            if after is not None and after.kind == "ACTIVITY":
                self.unknown.append(("campaign", target.text))
                self.i = j + 2
                return Everyone()
        if self.neg is not None and isinstance(self.last, CampaignTouch):
            self.i += 1
            self.skip_campaign_tail()
            return CampaignTouch(self.last.campaign, lx.value)
        return None

    def skip_campaign_tail(self) -> None:
        while True:
            nxt = self.peek()
            if nxt is None:
                return
            if nxt.kind in ("ACTIVITY", "COUPONWORD") or (nxt.kind == "NOISE" and nxt.text in ("了", "过")):
                self.i += 1
            elif nxt.kind == "DE" and self.at(self.i + 1) is not None and self.lx[self.i + 1].kind == "COUPONWORD":
                self.i += 2
            else:
                return

    def c_attr(self, lx: Lexeme) -> Segment | None:
        key: str = lx.value
        j = self.next_meaningful(_SKIP_IN_PHRASE | {"是", "为"})
        target = self.at(j)
        if target is None:
            return None
        if target.kind == "CMP" and key in ("level", "coupon_redemption_rate"):
            # 会员等级低于V2 / 券核销率低于0.5: the comparison word sits between name and value.
            if self.cmp is not None:
                return None
            self.cmp = target
            j = self.next_meaningful_from(j)
            target = self.at(j)
            if target is None:
                return None
        if key == "coupon_redemption_rate" and target.kind in ("NUM", "RANGE"):
            return self.rate(j, target)
        if key == "core_sku" and target.kind == "ITEM" and target.value.kind == "sku":
            self.i = j + 1
            return Tag("core_sku", eq(target.value.value))
        if key == "guides" and target.kind == "GUIDE":
            self.i = j + 1
            return any_of(*(GuideHolds(g) for g in target.value))
        if key == "guides" and target.kind in ("UNKNOWN", "UNKNOWN_GUIDE"):
            self.unknown.append(("guide", target.text))
            self.i = j + 1
            return Everyone()
        value: Any = None
        compare: Compare | None = None
        if key in ("preferred_category", "browse_preference"):
            if target.kind == "ITEM" and target.value.kind == "category":
                value = target.value.value
            elif target.kind in ("CHANNEL", "STOREWORD") and lx.text in ("偏好", "喜欢"):
                key = "preferred_channel"
            elif target.kind == "UNKNOWN":
                self.unknown.append(("category", target.text))
                self.i = j + 1
                return Everyone()
        if key == "preferred_channel" and target.kind in ("CHANNEL", "STOREWORD"):
            names = tuple(CHANNEL_NAMES[c] for c in _channels(target))
            compare = eq(names[0]) if len(names) == 1 else Compare("in", names)
        elif key == "preferred_store":
            if target.kind == "STORE":
                value = target.value
            elif target.kind == "CITY" and self.at(j + 1) is not None and self.lx[j + 1].kind == "STOREWORD":
                self.i = j + 2
                return StoreCity(target.value)
            elif target.kind == "UNKNOWN_STORE":
                self.unknown.append(("store", target.value))
                self.i = j + 1
                return Everyone()
        elif key == "source":
            if target.kind == "SOURCE":
                value = target.value
            elif target.kind == "STORE":
                value = f"store_{target.value}"
            elif target.kind == "GUIDE" and len(target.value) == 1:
                value = f"guide_{target.value[0]}"
            elif target.kind == "UNKNOWN" and target.text.isascii():
                value = target.text
        elif key == "level" and target.kind in ("LEVEL", "LEVELRANGE"):
            self.i = j
            return self.c_level(target) if target.kind == "LEVEL" else self.c_levelrange(target)
        elif key == "city" and target.kind == "CITY":
            value = target.value
        elif key in ("purchase_power", "wallet_depth") and (
            target.kind == "VALUE" or (target.kind == "ZHONG" and target.text.startswith("中"))
        ):
            value = target.value if target.kind == "VALUE" else "中"
        elif target.kind == "TAG" and target.value.key == key:
            self.i = j + 1
            return target.value  # type: ignore[no-any-return]
        elif key == "lifecycle" and (target.text in LIFECYCLE_VALUES or target.text.rstrip("阶段") in LIFECYCLE_VALUES):
            value = target.text.removesuffix("阶段")
        if value is None and compare is None:
            return None
        self.i = j + 1
        return Tag(key, compare or eq(value))

    def next_meaningful_from(self, j: int) -> int:
        j += 1
        while j < len(self.lx) and self.lx[j].kind == "NOISE" and self.lx[j].text in _SKIP_IN_PHRASE:
            j += 1
        return j

    def rate(self, j: int, target: Lexeme) -> Segment | None:
        """券核销率低于0.5 / 低于50%: a 0..1 number."""
        self.i = j + 1

        def scaled(value: Decimal, unit: str) -> float:
            return float(value / 100) if unit == "%" else float(value)

        if target.kind == "RANGE":
            lo, hi, unit = target.value
            return Tag("coupon_redemption_rate", Compare("between", scaled(lo, unit), scaled(hi, unit)))
        value, unit = target.value
        if unit not in ("", "%"):
            self.i = j
            return None
        compare = self.compare_word(scaled(value, unit))
        return Tag("coupon_redemption_rate", compare)


def _exclusive(before: Segment, after: Segment) -> bool:
    if isinstance(before, Tag) and isinstance(after, Tag):
        return (
            before.key == after.key
            and before.key not in LIST_TAG_KEYS
            and before.cmp.op == after.cmp.op == "eq"
            and before.cmp.value != after.cmp.value
        )
    return isinstance(before, StoreCity) and isinstance(after, StoreCity) and before != after


def _same_kind(a: Segment, b: Segment) -> bool:
    if isinstance(a, Tag) and isinstance(b, Tag):
        return a.key == b.key
    return type(a) is type(b) and not isinstance(a, And | Or | Not)


def _channels(lx: Lexeme) -> tuple[str, ...]:
    return ("pos",) if lx.kind == "STOREWORD" else tuple(lx.value)


def _dedupe(parts: list[Segment]) -> list[Segment]:
    seen: list[Segment] = []
    for part in parts:
        if isinstance(part, Everyone) and len(parts) > 1:
            continue
        if part not in seen:
            seen.append(part)
    return seen


# ---------------------------------------------------------------------------------- public API


def parse_segment(text: str, vocab: Vocabulary, today: date) -> Segment | NotUnderstood:
    """Who `text` is about, as a `Segment`, or what could not be understood."""
    lexicon = lexicon_for(vocab)
    return _segment(normalise(text), lexicon, today, original=text)


def _read_segment(clean: str, lexicon: Lexicon, today: date) -> _SegmentParser:
    """The parser after reading `clean` (its result in `.result`)."""
    parser = _SegmentParser(lexicon.lex(clean, today), lexicon, today)
    parser.result = parser.run()
    segment, unplaced, unknown = parser.result
    if (unplaced or unknown or segment is None) and lexicon.names_saved_in(clean):
        # Words that only make sense as a saved segment's name ("春节老客中的女性"): read them so.
        loose = lexicon.with_loose_saved_names()
        parser = _SegmentParser(loose.lex(clean, today), loose, today)
        parser.result = parser.run()
    return parser


def _segment(clean: str, lexicon: Lexicon, today: date, original: str) -> Segment | NotUnderstood:
    segment, unplaced, unknown = _read_segment(clean, lexicon, today).result
    if unplaced or unknown:
        return NotUnderstood(
            unplaced=tuple(unplaced),
            unknown=tuple(unknown),
            suggestions=suggest(original),
            # `reason` is left for what `unplaced` / `unknown` cannot say (the chat answer shows
            # those two itself, so repeating them here would print them twice).
        )
    if segment is None:
        return NotUnderstood(suggestions=suggest(original), reason="没有看出要圈哪些人")
    return segment


def suggest(text: str, limit: int = 3) -> tuple[str, ...]:
    """The understood example commands nearest to `text` by characters."""
    clean = normalise(text)
    scored = sorted(
        ((difflib.SequenceMatcher(None, clean, example).ratio(), index) for index, example in enumerate(EXAMPLES)),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return tuple(EXAMPLES[index] for _score, index in scored[:limit])


# ---------------------------------------------------------------------------------- commands

_HELP = re.compile(
    r"^(?:帮助|help|怎么用|如何使用|使用说明|说明|菜单|你能做什么|能做什么|你会什么|功能|\?+|？+|/help|h)$", re.I
)
_YES = frozenset({"确认", "确定", "是", "是的", "好", "好的", "发吧", "发", "发送", "可以", "行", "没问题", "ok", "对",
                  "执行", "同意", "确认发送", "确认执行", "嗯", "好滴", "好嘞", "yes", "y", "发送吧",
                  "确认无误"})  # fmt: skip
_NO = frozenset({"取消", "算了", "不要了", "不要", "不用了", "不用", "否", "不", "先不发", "别发了", "不发了", "停",
                 "no", "n", "放弃", "撤销", "不了", "先不要", "先别发", "别发"})  # fmt: skip
_PHONE = re.compile(r"(?<!\d)(?:\+?86[-]?)?(1[3-9]\d[-]?\d{4}[-]?\d{4})(?!\d)")
_MEMBER = re.compile(r"(?<![A-Za-z0-9])([Mm]\d{3,})(?![A-Za-z0-9])")
_LOOKUP_LEAD = re.compile(r"^(?:请|帮我)?(?:查一下|查查|查询|查|看一下|看看)(?:会员|顾客|客户)?(.{2,14})$")
_PORTRAIT = re.compile(r"画像|(?:^|帮我)(?:查一下|查查|查询|查|看一下|看看)")
_LABEL_ADD = re.compile(
    r"打上|打个|打一个|贴上|加上|标记为|标记成|标记|标上|打(?=[“\"「『][^”\"」』]+[”\"」』]标签)|打(?=\S{1,12}标签)"
)
_LABEL_REMOVE = re.compile(r"去掉|去除|移除|删除|删掉|取消|撕掉|拿掉")
_LABEL_NAME = re.compile(
    r"(?:打上|打个|打一个|贴上|加上|标记为|标记成|标记|标上|打|去掉|去除|移除|删除|删掉|取消|的)([^的§]{1,12}?)的?标签"
)
_QUOTED = re.compile(r"[“\"「『']([^”\"」』']{1,30})[”\"」』']")
_SAVE_AS = re.compile(
    r"(?:并|然后|再)?(?:保存为|保存成|另存为|存为|命名为|取名为|叫做|名字叫|保存名为|保存叫)[“\"「『]?([^”\"」』]{1,30}?)[”\"」』]?$"
)
_CAMPAIGN_VERB = re.compile(
    r"(?:给|向|对)(?P<who>.+?)(?P<verb>群发|推送|发送|发放|发一张|发个|发一个|发条|发一条|发|提醒)(?P<what>.*)$"
)
_REPORT_WORDS = re.compile(
    r"统计|分析|复盘|对比|比较|报表|报告|分布|占比|各渠道|各门店|各城市|销售额|转化率|核销率|销量|业绩|营业额|趋势"
)
_COUNT_ONLY = re.compile(r"有多少|多少人|多少个|几个人|几位|人数|数量|有几个|数一下")


def parse_command(text: str, vocab: Vocabulary, now: datetime) -> Command:
    """What one chat message asks for (commands.md "Families")."""
    lexicon = lexicon_for(vocab)
    clean = normalise(text)
    bare = re.sub(r"[“”\"「」『』'。.!！]", "", clean)
    if _HELP.match(bare) or _HELP.match(text.strip()):
        return HelpCommand()
    if bare.lower() in _YES:
        return ReplyCommand(yes=True)
    if bare.lower() in _NO:
        return ReplyCommand(yes=False)
    journey = _journey_command(bare, clean, text)
    if journey is not None:
        return journey
    control = _campaign_control(bare, vocab)
    if control is not None:
        return control
    today = local_now(now).date()
    masked = _QUOTED.sub("§", clean)  # words inside quotes are content, never commands
    if ("标签" in masked or "§" in masked) and (_LABEL_ADD.search(masked) or _LABEL_REMOVE.search(masked)):
        if "标签" in masked or re.search(r"标记|打上|标成|标为", masked):
            return _label_command(clean, lexicon, today, text)
    if _CAMPAIGN_VERB.search(masked) and not _REPORT_WORDS.search(masked):
        return _campaign_command(clean, lexicon, now, text)
    if _REPORT_WORDS.search(clean) or (re.search(r"生命周期|rfm", clean, re.I) and not re.search(r"圈|找|筛", clean)):
        report = _report_command(clean, lexicon, today, text)
        if report is not None:
            return report
    person = _person(clean, lexicon)
    if person is not None and (_PORTRAIT.search(clean) or person.phone or person.member_id):
        return PortraitCommand(person)
    save_as = None
    match = _SAVE_AS.search(clean)
    if match:
        save_as = match.group(1)
        clean = clean[: match.start()]
    count_only = bool(_COUNT_ONLY.search(clean))
    segment = _segment(clean, lexicon, today, original=text)
    if isinstance(segment, NotUnderstood):
        # 查一下张三: a person's name after a look-up word (nothing a segment could use).
        lead = _LOOKUP_LEAD.match(clean)
        if lead and not segment.unknown:
            person = _person(lead.group(1) + "画像", lexicon)
            if person is not None:
                return PortraitCommand(person)
        return segment
    return SegmentCommand(segment, count_only=count_only, save_as=save_as)


# ---------------------------------------------------------------------------------- journeys

# journey key → the words that name it (first match wins: 券到期 before the welcome's 新人)
_JOURNEY_WORDS = (
    ("coupon", re.compile(r"券到期|到期|过期")),
    ("cart", re.compile(r"加购|购物车")),
    ("birthday", re.compile(r"生日")),
    ("dormant", re.compile(r"沉睡|唤醒")),
    ("welcome", re.compile(r"新粉|欢迎|新人|新关注|关注")),
)
_JOURNEY_LIST = re.compile(
    r"^(?:请|帮我)?(?:查看|看看|看一下|列出|显示)?(?:所有|全部|现在)?的?(?:旅程(?:列表|清单|有哪些|情况|状态)?|有哪些旅程)$"
)
_JOURNEY_SWITCH = re.compile(r"^(?:请|帮我)?(打开|开启|启用|开通|启动|关闭|关掉|停用|关上)(.+)$")
_JOURNEY_THING = re.compile(r"旅程|提醒|唤醒")
_JOURNEY_CONTENT = re.compile(
    r"^(?:请|帮我)?(?:设置|设定|修改|更新|把|将|改)(.+?)(?:的?第([一二三123])(?:步|条|个))?的?(?:内容|文案|话术)"
    r"(?:设置|设|改|修改|更新)?(?:为|成)(.+)$"
)
_JOURNEY_STEP = {"一": 0, "1": 0, "二": 1, "2": 1, "三": 2, "3": 2}
_CONTENT_QUOTED = re.compile(r"[“\"「『](.+)[”\"」』]", re.S)
_CONTENT_AFTER = re.compile(r"(?:内容|文案|话术)(?:设置|设|改|修改|更新)?(?:为|成)[:：]?\s*(.+)$", re.S)


def _journey_key(words: str) -> str | None:
    for key, pattern in _JOURNEY_WORDS:
        if pattern.search(words):
            return key
    return None


def _journey_command(bare: str, clean: str, text: str) -> JourneyCommand | None:
    """"打开新粉欢迎旅程" / "开启加购提醒" / "关闭生日旅程" / "设置新粉欢迎旅程的内容为“…”" /
    "旅程列表"; None when the words are not about a journey."""
    if _JOURNEY_LIST.match(bare):
        return JourneyCommand("list")
    match = _JOURNEY_CONTENT.match(clean)
    if match and _JOURNEY_THING.search(match.group(1)):
        key = _journey_key(match.group(1))
        # the content as written (normalise() drops its punctuation): quoted, or after 内容为
        original = text.strip()
        found = _CONTENT_QUOTED.search(original) or _CONTENT_AFTER.search(original)
        content = found.group(1).strip() if found else ""
        if key is not None and content:
            step = _JOURNEY_STEP.get(match.group(2) or "1", 0)
            return JourneyCommand("content", key, step=step, content=content)
    match = _JOURNEY_SWITCH.match(bare)
    if match and _JOURNEY_THING.search(match.group(2)):
        key = _journey_key(match.group(2))
        if key is not None:
            on = match.group(1) in ("打开", "开启", "启用", "开通", "启动")
            return JourneyCommand("on" if on else "off", key)
    return None


_CONTROL = re.compile(
    r"^(?:请|帮我)?(暂停|停一下|恢复|继续|重新开始|取消|停止|终止|撤销)(?:发送|推送)?(?:营销)?(?:活动)?(.+?)"
    r"(?:活动|营销|的发送|的推送|发送|推送)?(?:吧|一下)?$"
)
_CONTROL_ACTIONS = {
    "暂停": "pause", "停一下": "pause", "恢复": "resume", "继续": "resume", "重新开始": "resume",
    "取消": "cancel", "停止": "cancel", "终止": "cancel", "撤销": "cancel",
}


def _campaign_control(bare: str, vocab: Vocabulary) -> CampaignControlCommand | NotUnderstood | None:
    """"暂停双11大促" / "取消双11大促活动" / "恢复发送双11大促": only for a campaign we know by name
    (a bare "取消" answers a preview; "取消" before other words is not a campaign's)."""
    match = _CONTROL.match(bare)
    if match is None:
        return None
    name = match.group(2).strip("“”\"「」 ")
    action = _CONTROL_ACTIONS[match.group(1)]
    known = {normalise(c): c for c in vocab.campaigns}  # the text was normalised ("·" dropped)
    for candidate in (name, name + "活动", name.removesuffix("活动")):
        if candidate and normalise(candidate) in known:
            return CampaignControlCommand(action, known[normalise(candidate)])  # type: ignore[arg-type]
    if action in ("pause", "resume") and name:  # only campaigns are paused: say which one is unknown
        return NotUnderstood(unknown=(("campaign", name),), suggestions=suggest(bare))
    return None


def _person(clean: str, lexicon: Lexicon) -> PersonRef | None:
    phone = _PHONE.search(clean)
    if phone:
        return PersonRef(phone=phone.group(1).replace("-", ""))
    member = _MEMBER.search(clean)
    if member:
        return PersonRef(member_id=member.group(1).upper())
    if "画像" not in clean:
        return None
    rest = re.sub(r"画像|查一下|查查|查询|看一下|看看|查|帮我|的|一下|请", " ", clean)
    store_id = None
    for name in sorted(lexicon.store_names, key=len, reverse=True):
        if name and name in rest:
            store_id = lexicon.store_names[name]
            rest = rest.replace(name, " ")
            break
    if store_id is None:
        found = re.search(r"(?:门店)?([A-Za-z]+\d+)(?:门店|店)?", rest)
        if found and found.group(1).lower() in lexicon.store_ids:
            store_id = lexicon.store_ids[found.group(1).lower()]
            rest = rest.replace(found.group(0), " ")
    names = [w for w in rest.split() if re.fullmatch(r"[\u4e00-\u9fff·]{2,5}", w)]
    if len(names) != 1:
        return None
    return PersonRef(name=names[0], store_id=store_id)


def _label_command(clean: str, lexicon: Lexicon, today: date, original: str) -> Command:
    remove = bool(_LABEL_REMOVE.search(clean)) and not re.search(r"打上|贴上|加上|标记", clean)
    quoted = _QUOTED.search(clean)
    label = None
    body = clean
    if quoted:
        label = quoted.group(1)
        body = body[: quoted.start()] + "§" + body[quoted.end() :]
    else:
        for name in sorted(lexicon.vocab.labels, key=len, reverse=True):
            match = re.search(re.escape(name) + r"(?=的?标签)", body)
            if match:
                label = name
                body = body[: match.start()] + "§" + body[match.end() :]
                break
        if label is None:
            match = _LABEL_NAME.search(body)
            if match:
                label = match.group(1).strip('“”"「」')
                body = body[: match.start(1)] + "§" + body[match.end(1) :]
    if not label:
        return NotUnderstood(unplaced=(clean,), suggestions=suggest(original), reason="没有看出是哪个标签")
    # The target: everything but the verb, the label and the grammar words.
    target = re.sub(
        r"^(?:请|帮我|麻烦)?(?:把|给|将|为|对)?|(?:打上|打个|打一个|贴上|加上|标记为|标记成|标记|标上|打|去掉|去除|移除|"
        r"删除|删掉|取消|撕掉|拿掉)|(?:都|统一|全部)|的?标签|§|[“”\"「」]",
        "",
        body,
    )
    target = re.sub(r"(?:的|为|成)$", "", target).strip()
    person = _person(target, lexicon)
    if person is not None and (person.phone or person.member_id):
        return LabelCommand(label=label, add=not remove, person=person)
    if not target:
        return NotUnderstood(unplaced=(), suggestions=suggest(original), reason="没有看出要给谁打标签")
    segment = _segment(target, lexicon, today, original=original)
    if isinstance(segment, NotUnderstood):
        return segment
    return LabelCommand(label=label, add=not remove, segment=segment)


_CONTENT_LEAD = re.compile(r"^(?:一张|一条|一个|个|张|条|消息|内容|说|通知|提醒)+[:：]?")
_COUPON_CASH = re.compile(rf"(?P<v>{NUMBER})(?:元|块)(?:钱)?的?(?P<free>无门槛)?(?:现金|代金|优惠)?券")
_COUPON_FULL = re.compile(rf"满(?P<t>{NUMBER})(?:元|块)?减(?P<v>{NUMBER})(?:元|块)?(?:的)?(?:优惠)?券?")
_COUPON_DISCOUNT = re.compile(rf"(?P<v>{NUMBER}|\d+(?:\.\d+)?)折(?:优惠)?券")


def _send_time(text: str, now: datetime) -> tuple[datetime, tuple[int, int]] | None:
    """The send time of a campaign: a phrase with a clock time wins over a bare day word (今天买过的
    会员明天10点发… sends tomorrow at 10); otherwise the last day word."""
    candidates: list[tuple[bool, int, int]] = []
    for match in SEND_TIME_RE.finditer(text):
        g = match.groupdict()
        if g["h"] is None and g["day"] is None and g["hours"] is None:
            continue
        candidates.append((g["h"] is not None or g["hours"] is not None, match.start(), match.end()))
    if not candidates:
        return None
    clocked = [c for c in candidates if c[0]]
    _has_clock, start, end = clocked[0] if clocked else candidates[-1]
    found = find_send_time(text[start:end], now)
    return (found[0], (start, end)) if found else None


def _campaign_command(clean: str, lexicon: Lexicon, now: datetime, original: str) -> Command:
    split = _variant_clauses(original, lexicon, local_now(now).date())
    if split is not None:
        return _variant_campaign(split[0], split[1], lexicon, now, original)
    return _single_campaign(clean, lexicon, now, original)


def _offer_of(what: str, lexicon: Lexicon) -> tuple[CouponOffer | None, str]:
    """The coupon `what` names (a known card by name, 30元无门槛券, 满200减30, 8折券) and the
    words left around it."""
    for card_id, name in lexicon.vocab.coupons:
        if name and normalise(name) in what:
            return CouponOffer(card_id=card_id), what.replace(normalise(name), "")
    full = _COUPON_FULL.search(what)
    if full:
        off, threshold = parse_number(full.group("v")), parse_number(full.group("t"))
        if off is not None and threshold is not None:
            return CouponOffer(kind="cash", value=float(to_fen(off)), threshold_fen=to_fen(threshold)), what.replace(
                full.group(0), "")
        return None, what
    cash = _COUPON_CASH.search(what)
    if cash:
        off = parse_number(cash.group("v"))
        if off is not None:
            return CouponOffer(kind="cash", value=float(to_fen(off)), threshold_fen=0), what.replace(cash.group(0), "")
        return None, what
    discount = _COUPON_DISCOUNT.search(what)
    if discount:
        rate = parse_number(discount.group("v"))
        if rate is not None and 0 < rate < 10:
            return CouponOffer(kind="discount", value=float((10 - rate) * 10)), what.replace(discount.group(0), "")
    return None, what


def _single_campaign(
    clean: str, lexicon: Lexicon, now: datetime, original: str, *, may_be_empty: bool = False
) -> CampaignCommand | NotUnderstood:
    """One message for everyone; with `may_be_empty` (the head of a command with variants) it
    may say nothing of its own."""
    quoted = _QUOTED.search(clean)
    masked = clean[: quoted.start()] + "§" + clean[quoted.end() :] if quoted else clean
    send_at = None
    try:
        found = _send_time(masked, now)
    except SendTimeError as exc:
        return NotUnderstood(unplaced=(), suggestions=suggest(original), reason=f"发送时间不对：{exc}")
    if found is not None:
        send_at, (start, end) = found
        masked = masked[:start] + masked[end:]
    match = _CAMPAIGN_VERB.search(masked)
    if match is None:
        return NotUnderstood(unplaced=(), suggestions=suggest(original), reason="没有看出要给谁发什么")
    who, what = match.group("who"), match.group("what")
    channel: Any = "any"
    for words, value in ((r"企微|企业微信|私聊|一对一", "wecom"), (r"公众号|服务号|模板消息", "oa")):
        if re.search(words, masked[: match.start()] + who + what):  # "通过企微给…" too
            channel = value
            who = re.sub(r"(?:通过|用|在)?(?:" + words + r")(?:上|里)?", "", who)
            what = re.sub(r"(?:通过|用|在)?(?:" + words + r")(?:上|里)?", "", what)
    who = re.sub(r"(?:都|统一|分别|一起)$", "", who)
    coupon, content = _offer_of(what, lexicon)
    if quoted and "§" in what:
        content = quoted.group(1)
    else:
        content = _CONTENT_LEAD.sub("", content.replace("§", ""))
        # The message as typed (punctuation kept): after 消息： / 内容： in the original text.
        typed = re.search(r"(?:消息|内容|通知|说)\s*[:：]\s*(.+)$", unicodedata.normalize("NFKC", original).strip())
        if typed and content:
            content = typed.group(1).strip()
    content = content.strip(" ：:，,")
    if coupon is None and not content and not may_be_empty:
        return NotUnderstood(unplaced=(), suggestions=suggest(original), reason="没有看出要发什么")
    segment = _segment(who, lexicon, local_now(now).date(), original=original)
    if isinstance(segment, NotUnderstood):
        return segment
    return CampaignCommand(segment=segment, channel=channel, content=content, coupon=coupon, send_at=send_at)


# ---------------------------------------------------------------------------------- variants (千人千面)

# Clauses of a command: split at sentence punctuation and at a colon that is not inside a clock
# time (10:00), never inside quotes (a quoted message is one piece of content).
_CLAUSE_BREAK = re.compile(r"[，,；;。\n]|(?<!\d)[:：]|[:：](?!\d)")
_QUOTE_OPEN, _QUOTE_CLOSE = "“\"「『", "”\"」』"
# "价格导向的发30元无门槛券" / "给忠诚客户送会员专享礼": whom, then what they get.
_VARIANT = re.compile(
    r"^(?:而|再|并)?(?:给|对|向)?(?P<who>[^§]+?)(?:都|就|则|统一|再|也|还|另)?(?:发送|推送|发放|发|送)(?P<what>.*)$"
)
# everyone no version before holds: 其他人 / 其余的 / 剩下的客户 …
_DEFAULT_WHO = re.compile(
    r"^(?:其他|其余|其它|剩下|剩余|余下|另外)的?(?:人|人群|客户|顾客|会员|用户|粉丝|好友)?们?的?$"
)


def _clauses(text: str) -> list[str]:
    """`text` cut at clause breaks outside quotes."""
    breaks = {m.start() for m in _CLAUSE_BREAK.finditer(text)}
    parts: list[str] = []
    start, depth = 0, 0
    for i, ch in enumerate(text):
        if ch in _QUOTE_OPEN and (ch != '"' or depth == 0):
            depth += 1
        elif ch in _QUOTE_CLOSE and depth:
            depth -= 1
        elif depth == 0 and i in breaks:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _variant_clause(clause: str, lexicon: Lexicon, today: date) -> tuple[str, str] | None:
    """(who, what) when `clause` gives one kind of customer their message: the condition is 其他人
    (everyone left), ends with 的 ("价格导向的发…", whatever follows is meant as a condition), or
    reads as a segment ("忠诚客户发…"); None otherwise (then it is more words of the message)."""
    match = _VARIANT.match(clause)
    if match is None:
        return None
    who, what = match.group("who").strip(), match.group("what").strip()
    if _DEFAULT_WHO.match(who) or who.endswith("的"):
        return who, what
    parsed = _segment(normalise(who), lexicon, today, original=who)
    return (who, what) if not isinstance(parsed, NotUnderstood) else None


def _variant_clauses(original: str, lexicon: Lexicon, today: date) -> tuple[str, list[tuple[str, str]]] | None:
    """("给上海门店的会员下周一上午10点发消息", [("价格导向的", "发30元无门槛券"), …]) for a command
    that gives kinds of customer their own message after its head; None when it gives none. A
    clause that is not a version of its own continues the message of the version before it."""
    clauses = [c for c in _clauses(original.strip()) if c]
    first = next((i for i, c in enumerate(clauses) if i > 0 and _variant_clause(c, lexicon, today)), None)
    if first is None:
        return None
    head = "，".join(clauses[:first])
    if not _CAMPAIGN_VERB.search(normalise(head)):
        return None
    variants: list[tuple[str, str]] = []
    for clause in clauses[first:]:
        found = _variant_clause(clause, lexicon, today)
        if found is not None:
            variants.append(found)
        else:
            who, what = variants[-1]
            variants[-1] = (who, f"{what}，{clause}")
    return head, variants


def _variant_offer(what: str, lexicon: Lexicon) -> tuple[CouponOffer | None, str]:
    """The coupon and words of one version: a message with quoted words is words only (quotes
    dropped); otherwise the words stay as typed unless a coupon was taken out of them."""
    if _QUOTED.search(what):
        return None, re.sub(r"[“”\"「」『』]", "", what).strip(" ：:，,")
    coupon, rest = _offer_of(unicodedata.normalize("NFKC", what), lexicon)
    return coupon, _CONTENT_LEAD.sub("", (what if coupon is None else rest).strip()).strip(" ：:，,")


def _variant_campaign(
    head: str, clauses: list[tuple[str, str]], lexicon: Lexicon, now: datetime, original: str
) -> Command:
    """The campaign of a head ("给上海门店的会员下周一上午10点发消息") and its versions; the head's
    own message, if it has one, is for everyone no version names (as "其他人" would be)."""
    base = _single_campaign(normalise(head), lexicon, now, head, may_be_empty=True)
    if isinstance(base, NotUnderstood):
        return base
    today = local_now(now).date()
    named: list[CampaignVariant] = []
    default: CampaignVariant | None = None
    if base.content or base.coupon is not None:
        default = CampaignVariant(who="", when=None, content=base.content, coupon=base.coupon)
    for who, what in clauses:
        coupon, content = _variant_offer(what, lexicon)
        if coupon is None and not content:
            return NotUnderstood(suggestions=suggest(original), variant=who, variant_issue="no_content")
        if _DEFAULT_WHO.match(who):
            if default is not None:
                return NotUnderstood(suggestions=suggest(original), variant=who, variant_issue="default_twice")
            default = CampaignVariant(who=who, when=None, content=content, coupon=coupon)
            continue
        when = _segment(normalise(who), lexicon, today, original=who)
        if isinstance(when, NotUnderstood):
            return replace(when, suggestions=suggest(original), variant=who, variant_issue="unknown")
        named.append(CampaignVariant(who=who, when=when, content=content, coupon=coupon))
    segment = base.segment
    if default is not None and not default.who and any(_disjoint(base.segment, v.when) for v in named if v.when):
        # "给价格导向的会员发30元券，品质导向的会员发新品推荐": the versions stand side by side (no
        # 品质导向 person is among the 价格导向 ones), so the head is a version of its own and each
        # version keeps the head's other conditions (上海的价格导向会员… → 上海的品质导向会员).
        own = CampaignVariant(describe(base.segment, lexicon.vocab, today), base.segment, default.content,
                              default.coupon)
        named = [own, *(replace(v, when=_beside(base.segment, v.when)) for v in named if v.when is not None)]
        segment, default = any_of(*(v.when for v in named if v.when is not None)), None
    # 其他人 is everyone the others leave, wherever it was said: it comes last.
    variants = (*named, default) if default is not None else tuple(named)
    return replace(base, segment=segment, content="", coupon=None, variants=variants)


def _conditions(segment: Segment) -> tuple[Segment, ...]:
    return segment.parts if isinstance(segment, And) else (segment,)


def _disjoint(a: Segment, b: Segment) -> bool:
    """No one can be in both: a one-valued tag (or store city) with two values side by side."""
    return any(_exclusive(x, y) for x in _conditions(a) for y in _conditions(b))


def _beside(head: Segment, when: Segment) -> Segment:
    """`when` with the head's conditions it does not replace."""
    mine = _conditions(when)
    kept = [c for c in _conditions(head) if not any(_exclusive(c, m) or _same_kind(c, m) for m in mine)]
    return all_of(*_dedupe([*kept, *mine]))


_MEASURES: tuple[tuple[str, ReportMeasure], ...] = (
    (r"销售额|销售金额|销售|营业额|业绩|gmv|成交额|销量", "sales"),
    (r"订单数|订单量|单量|订单", "orders"),
    (r"(?:购买|消费|下单|成交)?(?:人数|客户数|顾客数|会员数|买家数)|客流", "customers"),
    (r"转化率|转化", "conversion"),
    # 领券未核销 / 没核销过 are segment words (a condition), not the report's 核销
    (r"(?:优惠)?券?核销率|核销数|核销量|(?<![未没不有])核销(?![过了的])", "redemption"),
    (r"客单价", "aov"),
)
_DIMENSIONS: tuple[tuple[str, ReportDimension], ...] = (
    (r"(?:各个?|分|按|每个)渠道|渠道(?:分布|对比|排名)", "channel"),
    (r"(?:各个?|分|按|每个|每家)门店|门店(?:分布|对比|排名)", "store"),
    (r"(?:各个?|分|按|每个)城市|城市(?:分布|对比|排名)", "city"),
    # 生命周期为沉睡 / RFM为重要挽留客户 are segment conditions; 会员生命周期 is the dimension's name
    (r"(?:各|分|按)?(?:会员|客户|顾客)?生命周期(?:阶段)?(?:分布)?(?!的?(?:是|为|等于|阶段))", "lifecycle"),
    (r"(?:各|分|按)?(?:会员|客户|顾客)?rfm(?:分层|分类|分组|分布)?(?!的?(?:是|为|等于))", "rfm"),
    (r"(?:各个?|分|按|每个)品类|品类(?:分布|对比|排名)", "category"),
)
# Words that only say "a report, please" (the measures and dimensions aside).
_REPORT_FILLER = re.compile(
    r"统计|分析|复盘|对比|比较|报表|报告|分布|占比|排名|排行|趋势|情况|数据|汇总|明细|效果|表现|是多少|为多少|怎么样|如何"
    r"|各自|分别"
)
# What joins two report words (销售额和订单数 / 各渠道的销售额): nothing of a segment's.
_REPORT_JOIN = re.compile(r"^(?:和|与|及|以及|跟|还有|的|一下)*$")
_FESTIVAL_CAMPAIGN = re.compile(r"(双11|双十一|618|六一八|双12|双十二)(?:大促)?活动")
_VALUE_CMP = tuple(sorted(CMP_WORDS, key=len, reverse=True))


def _takes_value(rest: str) -> bool:
    """`rest` (the words after a report word) starts with a value: 订单数超过3, 客单价高于300元,
    核销率是50% — then the word is a segment's condition, not what the report measures."""
    rest = re.sub(r"^的?(?:是|为)?", "", rest)
    if rest.startswith(("多少", "一共", "一下", "一览")):
        return False
    return bool(re.match(r"[\d零〇一二两三四五六七八九十百千万.]", rest)) or rest.startswith(_VALUE_CMP)


def _in_a_word(clean: str, start: int, end: int, lexicon: Lexicon) -> bool:
    """clean[start:end] is part of a longer word of the segment grammar (订单 in 订单金额, 核销率 in
    券核销率)."""
    lowered = clean.lower()
    for first in range(max(0, end - lexicon.max_word), start + 1):
        for last in range(max(end, first + 1), min(len(clean), first + lexicon.max_word) + 1):
            if last - first > end - start and lowered[first:last] in lexicon.table:
                return True
    return False


def _after_campaign_verb(clean: str, start: int) -> bool:
    """收到过双11活动的 / 参加过会员日活动的: a segment condition, not the campaign reported on."""
    return clean[:start].endswith(tuple(CAMPAIGN_VERBS))


def _report_command(clean: str, lexicon: Lexicon, today: date, original: str) -> Command | None:
    """复盘: what is measured (_MEASURES), by what (_DIMENSIONS), of which campaign, and the words
    left: whom (a segment, as a segment command reads it) and when (the window no condition of the
    segment takes: 价格导向会员上个月的销售额). None when nothing says what to measure."""
    spans: list[tuple[int, int, str]] = []  # (start, end, what stays in place of the words)

    def take(start: int, end: int, keep: str = "") -> bool:
        if any(start < e and s < end for s, e, _ in spans):
            return False
        spans.append((start, end, keep))
        return True

    campaign = None
    for match in _FESTIVAL_CAMPAIGN.finditer(clean):
        if not _after_campaign_verb(clean, match.start()) and take(match.start(), match.end()):
            campaign = {"双十一": "双11", "六一八": "618", "双十二": "双12"}.get(match.group(1), match.group(1))
            break
    for name in sorted(lexicon.vocab.campaigns, key=len, reverse=True):
        key = normalise(name)
        found = re.search(re.escape(key) + r"(?:大促)?(?:活动)?", clean) if key else None
        if found and not _after_campaign_verb(clean, found.start()):  # `clean` is normalised ("·" dropped)
            spans[:] = [sp for sp in spans if not (sp[0] < found.end() and found.start() < sp[1])]
            take(found.start(), found.end())
            campaign = name
            break
    by: ReportDimension | None = None
    for pattern, dimension in _DIMENSIONS:
        for match in re.finditer(pattern, clean, re.I):
            if take(match.start(), match.end()):
                by = by or dimension
                break
        if by is not None:
            break
    found_measures: list[ReportMeasure] = []
    for pattern, measure in _MEASURES:
        for match in re.finditer(pattern, clean, re.I):
            start, end = match.span()
            if _takes_value(clean[end:]) or _in_a_word(clean, start, end, lexicon):
                continue
            # 上海的会员数: the persons counted are 会员 (a condition of the segment)
            if take(start, end, "会员" if match.group(0).endswith("会员数") else ""):
                found_measures.append(measure)
    measures = tuple(dict.fromkeys(found_measures))
    if not measures and by in ("lifecycle", "rfm"):
        measures = ("customers",)
    if not measures and by is None and campaign is None:
        return None
    for match in _REPORT_FILLER.finditer(clean):
        if not _in_a_word(clean, match.start(), match.end(), lexicon):
            take(match.start(), match.end())
    spans.sort()
    # the words between two report words (销售额和订单数) go with them
    spans += [(end, start, "") for (_, end, _), (start, _, _) in pairwise(spans)
              if _REPORT_JOIN.match(clean[end:start])]
    spans.sort()
    rest, at = [], 0
    for start, end, keep in spans:
        rest.append(clean[at:start] + keep)
        at = max(at, end)
    rest.append(clean[at:])
    among = _report_segment("".join(rest), lexicon, today, original)
    if isinstance(among, NotUnderstood):
        return among
    segment, window = among
    return ReportCommand(measures=measures or ("sales",), by=by, window=window, campaign=campaign, segment=segment)


def _report_segment(
    words: str, lexicon: Lexicon, today: date, original: str
) -> tuple[Segment | None, Window | None] | NotUnderstood:
    """(whom, when) of the words of a report that are not report words: the segment they name
    (None: everyone) and the window none of its conditions takes (None: the default)."""
    parser = _read_segment(words, lexicon, today)
    segment, unplaced, unknown = parser.result
    if unplaced or unknown:
        return NotUnderstood(
            unplaced=tuple(unplaced), unknown=tuple(unknown), suggestions=suggest(original),
            reason=REPORT_SCOPE_NOT_UNDERSTOOD,
        )
    windows = list(dict.fromkeys(lx.value for lx in parser.idle))
    if len(windows) > 1:
        return NotUnderstood(
            unplaced=tuple(lx.text for lx in parser.idle), suggestions=suggest(original), reason=REPORT_TWO_WINDOWS
        )
    if isinstance(segment, Everyone):
        segment = None
    return segment, (windows[0] if windows else None)
