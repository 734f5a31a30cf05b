"""Numbers as people type them (commands.md "Numerals"): 2, 两, 二, 十二, 1.5万, 三千, 3k, 300块,
三百元, 一千五 (= 1,500), 两万五 (= 25,000), 0.5 → exact `Decimal`.

A small exact converter rather than a dependency: the rules are few (万 = 10,000, 千 = 1,000, a
digit right after 千 / 万 / 百 / 十 is the next place down), and float arithmetic never enters.
Pure functions; `NUMBER` is the regular expression the lexer uses to find a number span.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "k": 1000, "K": 1000, "万": 10_000, "w": 10_000, "W": 10_000, "亿": 10**8}
_SMALL_UNITS = {"十", "百", "千", "k", "K"}

_ARABIC = r"\d+(?:\.\d+)?"
_CN_DIGIT = "零〇一二两三四五六七八九"
# A number span: Arabic digits or Chinese numerals, mixed with place words (1.5万, 1万5, 一千五, 3k).
# A latin k/w counts only right after a digit and not before another latin letter (3k, not "3kg").
NUMBER = (
    rf"(?:{_ARABIC}|[{_CN_DIGIT}十百千万亿])"
    rf"(?:{_ARABIC}|[{_CN_DIGIT}十百千万亿]|(?<=\d)[kKwW](?![A-Za-z]))*"
)
NUMBER_RE = re.compile(NUMBER)
# Money words after an amount (300块, 三百元, 50块钱); fen are what the store keeps.
CURRENCY = r"(?:块钱|元钱|块|元|rmb|RMB|人民币)"
_AMOUNT_RE = re.compile(rf"^\s*(?:¥|￥)?\s*({NUMBER})\s*{CURRENCY}?\s*$")


def parse_number(text: str) -> Decimal | None:
    """The value of a whole number span (`NUMBER`), or None when it is not one."""
    text = text.strip()
    if not text:
        return None
    tokens = re.findall(rf"{_ARABIC}|[{_CN_DIGIT}]|[十百千万亿kKwW]|.", text)
    if any(len(t) == 1 and t not in _DIGITS and t not in _UNITS and not t.isdigit() for t in tokens):
        return None
    if all(t in _DIGITS for t in tokens) and len(tokens) > 1:
        # 二零二六: digits read one by one (years, codes).
        return Decimal("".join(str(_DIGITS[t]) for t in tokens))
    total = Decimal(0)  # completed 万 / 亿 sections
    section = Decimal(0)  # below 万
    digit: Decimal | None = None
    last_unit: int | None = None  # the place word just before `digit`, for 一千五 / 两万五
    for token in tokens:
        if token in _DIGITS:
            if token in "零〇":
                last_unit = None  # 一千零五: the 五 is units, not hundreds
                continue
            if digit is not None:
                return None  # 三五 (two digits side by side) is not a number we read
            digit = Decimal(_DIGITS[token])
        elif token in _UNITS:
            unit = _UNITS[token]
            if token in _SMALL_UNITS:
                section += (digit if digit is not None else Decimal(1)) * unit
            else:
                section += digit if digit is not None else Decimal(0)
                if section == 0:
                    section = Decimal(1)
                total = (total + section) * unit if unit > 10_000 else total + section * unit
                section = Decimal(0)
            digit, last_unit = None, unit
        else:
            try:
                value = Decimal(token)
            except InvalidOperation:
                return None
            if digit is not None:
                return None
            digit, last_unit = value, (last_unit if "." not in token and len(token) == 1 else None)
    if digit is not None:
        if last_unit is not None and last_unit >= 10 and digit == digit.to_integral_value() and digit < 10:
            section += digit * (last_unit // 10)
        else:
            section += digit
    return _tidy(total + section)


def parse_amount(text: str) -> Decimal | None:
    """A money amount in yuan: 300块, 三百元, ¥1.5万, 5000."""
    match = _AMOUNT_RE.match(text)
    return parse_number(match.group(1)) if match else None


def to_fen(yuan: Decimal) -> int:
    """Yuan → integer fen, rounded half up to the fen."""
    return int((yuan * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def _tidy(value: Decimal) -> Decimal:
    # 1.5万 is 15000, not 15000.0: integers come back without an exponent or a fraction.
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.normalize()
