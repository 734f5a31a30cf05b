"""The windows of commands.md, written out by hand for T = 2026-11-01 (a Sunday).

Deliberately not computed from T by a general rule: each is the answer a person reading the spec
would give for this one date, so a shared mistake in date arithmetic cannot hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

T = date(2026, 11, 1)


@dataclass(frozen=True)
class Window:
    """Local dates first .. last, both included."""

    first: date
    last: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last


def days(n: int) -> Window:
    """近N天 / 最近N天 / 过去N天: the N local dates ending with T."""
    return Window(T - timedelta(days=n - 1), T)


D7 = Window(date(2026, 10, 26), T)  # 近7天 / 近一周
D30 = Window(date(2026, 10, 3), T)  # 近30天 / 近一个月
D90 = Window(date(2026, 8, 4), T)  # 近90天 / 近三个月 / 近一季度
D180 = Window(date(2026, 5, 6), T)  # 近半年
D365 = Window(date(2025, 11, 2), T)  # 近一年, and the default of order conditions
DEFAULT = D365
THIS_WEEK = Window(date(2026, 10, 26), T)  # Monday 2026-10-26 .. Sunday T
LAST_WEEK = Window(date(2026, 10, 19), date(2026, 10, 25))
THIS_MONTH = Window(date(2026, 11, 1), T)  # 本月 ends at T
LAST_MONTH = Window(date(2026, 10, 1), date(2026, 10, 31))
THIS_YEAR = Window(date(2026, 1, 1), T)
LAST_YEAR = Window(date(2025, 1, 1), date(2025, 12, 31))
SIX18 = Window(date(2026, 6, 1), date(2026, 6, 18))  # 618: June 2026 has begun by T
SHUANG11 = Window(date(2026, 11, 1), T)  # 双11: November 2026 has begun by T (its 1st day)
LAST_YEAR_D11 = Window(date(2025, 11, 1), date(2025, 11, 11))  # 去年双11
LAST_YEAR_618 = Window(date(2025, 6, 1), date(2025, 6, 18))

# The hand-written spans agree with the general rule (a check of the table, not of the code).
assert days(7) == D7 and days(30) == D30 and days(90) == D90 and days(180) == D180 and days(365) == D365
