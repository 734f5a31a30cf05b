"""Time words (commands.md "Numbers, comparisons and windows"): windows of local dates for
conditions and reports (`Window`), and moments for sending (aware datetimes in Asia/Shanghai).

Windows stay relative (近90天 → `Window("days", 90)`, 上个月 → `Window("month", -1)`) so a saved
segment means tomorrow's 90 days tomorrow. Phrasings that name absolute dates (去年双11,
2025年10月, 昨天) are resolved against `today` when they are read.

A send time is resolved against `now`; a time already past is an error (`SendTimeError`), never
moved to a later day.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from nlp.numbers import NUMBER, parse_number
from nlp.segment import Window

SHANGHAI = ZoneInfo("Asia/Shanghai")

_NEAR = r"(?:最近|近|过去|前)"
_N = rf"(?:{NUMBER}|半)"
# One alternation, longest phrasings first; `window_at` tells which matched by group name.
WINDOW = (
    r"(?:"
    rf"(?P<near>{_NEAR}的?\s*(?P<n>{_N})\s*(?P<unit>天|日|周|个星期|星期|个礼拜|礼拜|个月|月|个季度|季度|年)(?P<half>半)?(?:以内|之内|内|里)?)"
    # 半年内 / 三个月内 / 90天没消费 / 一年来: a bare duration is a window when 内 / 来 follow it, or
    # a negation (三个月没来过): then nothing else can be meant.
    rf"|(?P<bare>(?<![\d.])(?P<n3>{_N})\s*(?P<unit3>天|日|周|个星期|个礼拜|个月|个季度|季度|年)(?P<half3>半)?"
    r"(?:以内|之内|内|里|以来|来(?![过店])|(?=(?:都|一直|再|也|还)?(?:没|未|不曾)))(?!\d))"
    r"|(?P<near1>(?:最近|近|过去)的?\s*(?:一)?(?P<unit1>周|星期|个月|月|季度|年))(?!\d)"
    r"|(?P<fest>(?P<fyear>\d{4}年|今年|去年|前年)?的?(?P<fname>618|六一八|双11|双十一|双12|双十二))"
    r"|(?P<ym>(?P<year>\d{4}年|今年|去年|前年)的?(?P<month>\d{1,2}|十[一二]?|[一二三四五六七八九])月份?)"
    r"|(?P<mo>(?<![\d近前])(?P<month2>\d{1,2}|十[一二]?|[一二三四五六七八九])月份?(?!份?[生过]))"
    r"|(?P<yr>\d{4}年(?!\d))"
    r"|(?P<rel>上上周|上上个?星期|上周|上个?星期|上一周|本周|这周|这个?星期|本星期"
    r"|上上个?月|上个?月|上一个月|本月|这个月|当月"
    r"|今年|本年|去年|前年|今天|今日|昨天|昨日|前天)"
    r")"
)
WINDOW_RE = re.compile(WINDOW)

_UNIT_DAYS = {
    "天": 1,
    "日": 1,
    "周": 7,
    "个星期": 7,
    "星期": 7,
    "个礼拜": 7,
    "礼拜": 7,
    "个月": 30,
    "月": 30,
    "个季度": 90,
    "季度": 90,
    "年": 365,
}
_REL: dict[str, tuple[str, int]] = {
    "上上周": ("week", -2),
    "上上星期": ("week", -2),
    "上上个星期": ("week", -2),
    "上周": ("week", -1),
    "上星期": ("week", -1),
    "上个星期": ("week", -1),
    "上一周": ("week", -1),
    "本周": ("week", 0),
    "这周": ("week", 0),
    "这星期": ("week", 0),
    "这个星期": ("week", 0),
    "本星期": ("week", 0),
    "上上月": ("month", -2),
    "上上个月": ("month", -2),
    "上月": ("month", -1),
    "上个月": ("month", -1),
    "上一个月": ("month", -1),
    "本月": ("month", 0),
    "这个月": ("month", 0),
    "当月": ("month", 0),
    "今年": ("year", 0),
    "本年": ("year", 0),
    "去年": ("year", -1),
    "前年": ("year", -2),
}
_FESTIVAL = {"618": "618", "六一八": "618", "双11": "双11", "双十一": "双11", "双12": "双12", "双十二": "双12"}


def _year_of(word: str | None, today: date) -> int | None:
    if not word:
        return None
    if word[0].isdigit():
        return int(word[:4])
    return today.year + {"今年": 0, "去年": -1, "前年": -2}[word]


def _month_number(word: str) -> int | None:
    value = parse_number(word)
    if value is None or value != int(value) or not 1 <= int(value) <= 12:
        return None
    return int(value)


def window_at(text: str, pos: int, today: date) -> tuple[Window, int] | None:
    """The window phrase starting exactly at `pos` of `text`, and where it ends."""
    match = WINDOW_RE.match(text, pos)
    if not match:
        return None
    window = window_of(match, today)
    return (window, match.end()) if window is not None else None


def parse_window(text: str, today: date) -> Window | None:
    """The window a whole phrase names (近90天, 上个月, 去年双11, 2026年10月 …), or None."""
    match = WINDOW_RE.fullmatch(text.strip())
    return window_of(match, today) if match else None


def window_of(match: re.Match[str], today: date) -> Window | None:
    g = match.groupdict()
    if g["near"]:
        parsed = Decimal("0.5") if g["n"] == "半" else parse_number(g["n"])
        if parsed is None or parsed <= 0:
            return None
        n: Decimal = parsed
        if g["half"]:
            n += Decimal("0.5")  # 近一年半
        length = n * _UNIT_DAYS[g["unit"]]
        if g["unit"] == "年" and n == Decimal("0.5"):
            length = Decimal(180)  # 近半年 = 180 (commands.md), not 182.5
        if length != int(length):
            return None
        return Window("days", int(length))
    if g["bare"]:
        parsed = Decimal("0.5") if g["n3"] == "半" else parse_number(g["n3"])
        if parsed is None or parsed <= 0:
            return None
        if g["half3"]:
            parsed += Decimal("0.5")
        length = parsed * _UNIT_DAYS[g["unit3"]]
        if g["unit3"] == "年" and parsed == Decimal("0.5"):
            length = Decimal(180)
        if length != int(length):
            return None
        return Window("days", int(length))
    if g["near1"]:
        return Window("days", _UNIT_DAYS[g["unit1"]] if g["unit1"] != "月" else 30)
    if g["fest"]:
        return Window("festival", name=_FESTIVAL[g["fname"]], year=_year_of(g["fyear"], today))
    if g["ym"]:
        month = _month_number(g["month"])
        return None if month is None else Window("month_of", year=_year_of(g["year"], today), month=month)
    if g["mo"]:
        month = _month_number(g["month2"])
        return None if month is None else Window("month_of", month=month)
    if g["yr"]:
        year = int(g["yr"][:4])
        return Window("dates", start=date(year, 1, 1), end=date(year, 12, 31))
    word = g["rel"]
    if word in _REL:
        kind, offset = _REL[word]
        return Window(kind, offset)  # type: ignore[arg-type]
    if word in ("今天", "今日"):
        return Window("days", 1)
    back = 1 if word in ("昨天", "昨日") else 2
    day = today - timedelta(days=back)
    return Window("dates", start=day, end=day)


# ---------------------------------------------------------------------------------- send times


class SendTimeError(ValueError):
    """A send time that cannot be used: already past, or not a real time."""


_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_DAY = (
    r"(?P<day>今天|今日|今早|今晚|明天|明日|明早|明晚|后天|大后天"
    r"|(?P<wk>本周|这周|下周|下个?星期|下个?礼拜|上周|上个?星期|这个?星期|本星期|星期|礼拜|周)(?P<wd>[一二三四五六日天1-7末])"
    r"|(?P<after>\d+|[一二两三四五六七八九十]+)天(?:以?后|之后)"
    r"|(?<![\d.])(?:(?P<y>\d{4})[年/-])?(?P<m>\d{1,2})[月/-](?P<d>\d{1,2})(?![\d.])[日号]?"
    r"|(?<![\d.近去内])(?P<d2>\d{1,2})[号日](?![\d内]))"
)
_PERIOD = r"(?P<period>上午|早上|早晨|清早|早|中午|下午|午后|傍晚|晚上|晚间|夜里|夜间|晚|凌晨)"
_CLOCK = (
    r"(?:(?P<h>\d{1,2}|[一二两三四五六七八九十]+)\s*(?:点|时|:|：)\s*"
    r"(?P<mi>半|一刻|三刻|\d{1,2}|[一二三四五六七八九十]+)?\s*(?:分)?(?:钟)?)"
)
SEND_TIME = (
    rf"(?:(?:{_DAY})?\s*的?\s*{_PERIOD}?\s*{_CLOCK}?"
    r"|(?P<hours>\d+|[一二两三四五六七八九十半]+)个?(?P<hunit>小时|钟头|分钟)(?:以?后|之后))"
)
SEND_TIME_RE = re.compile(SEND_TIME)


def find_send_time(text: str, now: datetime) -> tuple[datetime, tuple[int, int]] | None:
    """The first send time in `text` (and its span), resolved against `now` (aware). Raises
    `SendTimeError` for a time already past or impossible."""
    for match in SEND_TIME_RE.finditer(text):
        if not match.group(0).strip():
            continue
        g = match.groupdict()
        if g["h"] is None and g["day"] is None and g["hours"] is None:
            continue
        return _resolve(g, now), match.span()
    return None


def parse_send_time(text: str, now: datetime) -> datetime | None:
    """A send time phrase (明天上午10点, 下周一10:00, 今晚8点, 3天后) → aware datetime."""
    found = find_send_time(text, now)
    return found[0] if found else None


def local_now(now: datetime) -> datetime:
    """`now` in Asia/Shanghai; a naive `now` is taken as Shanghai wall-clock time."""
    return now.replace(tzinfo=SHANGHAI) if now.tzinfo is None else now.astimezone(SHANGHAI)


def _resolve(g: dict[str, str | None], now: datetime) -> datetime:
    local = local_now(now)
    today = local.date()
    day = today
    period = g["period"]
    word = g["day"] or ""
    if g["hours"]:
        amount = Decimal("0.5") if g["hours"] == "半" else parse_number(g["hours"] or "")
        if amount is None:
            raise SendTimeError("看不懂这个时间")
        minutes = amount * (60 if g["hunit"] in ("小时", "钟头") else 1)
        return (local + timedelta(minutes=float(minutes))).replace(second=0, microsecond=0)
    if word:
        if word in ("今天", "今日", "今早", "今晚"):
            day = today
        elif word in ("明天", "明日", "明早", "明晚"):
            day = today + timedelta(days=1)
        elif word == "后天":
            day = today + timedelta(days=2)
        elif word == "大后天":
            day = today + timedelta(days=3)
        elif g["wk"]:
            wd = g["wd"] or ""
            weekday = int(wd) - 1 if wd.isdigit() else _WEEKDAYS[wd]
            shift = 1 if g["wk"].startswith("下") else (-1 if g["wk"].startswith("上") else 0)
            monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
            day = monday + timedelta(days=weekday)
        elif g["after"]:
            count = parse_number(g["after"])
            if count is None:
                raise SendTimeError("看不懂这个时间")
            day = today + timedelta(days=int(count))
        elif g["m"]:
            try:
                day = date(int(g["y"]) if g["y"] else today.year, int(g["m"]), int(g["d"] or 0))
            except ValueError as exc:
                raise SendTimeError("没有这一天") from exc
        elif g["d2"]:
            try:
                day = date(today.year, today.month, int(g["d2"]))
            except ValueError as exc:
                raise SendTimeError("没有这一天") from exc
        if word in ("今早", "明早"):
            period = period or "早上"
        if word in ("今晚", "明晚"):
            period = period or "晚上"
    if g["h"] is None:
        moment = datetime.combine(day, local.time().replace(second=0, microsecond=0), SHANGHAI)
    else:
        hour_value = parse_number(g["h"])
        if hour_value is None:
            raise SendTimeError("看不懂这个时间")
        hour = int(hour_value)
        minute = 0
        mi = g["mi"]
        if mi:
            minute = {"半": 30, "一刻": 15, "三刻": 45}.get(mi) or int(parse_number(mi) or 0)
        if period in ("下午", "午后", "傍晚", "晚上", "晚间", "夜里", "夜间", "晚") and hour < 12:
            hour += 12
        elif period == "中午" and hour < 11:
            hour += 12
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            raise SendTimeError("没有这个时刻")
        moment = datetime.combine(day, time(hour, minute), SHANGHAI)
    if moment <= local:
        raise SendTimeError(f"{moment:%Y-%m-%d %H:%M} 已经过去了")
    return moment
