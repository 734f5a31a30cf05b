"""Windows and send times (commands.md "Numbers, comparisons and windows"), with dates worked
out by hand. T = 2026-11-01, a Sunday."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from nlp.segment import Window, days
from nlp.when import SendTimeError, parse_send_time, parse_window

T = date(2026, 11, 1)
SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=SH)  # Sunday 09:30


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("近90天", days(90)),
        ("最近90天", days(90)),
        ("过去90天", days(90)),
        ("近7日", days(7)),
        ("近三十天", days(30)),
        ("近一周", days(7)),
        ("近两周", days(14)),
        ("近一个月", days(30)),
        ("近半个月", days(15)),
        ("近三个月", days(90)),
        ("最近3个月", days(90)),
        ("近一季度", days(90)),
        ("近一个季度", days(90)),
        ("近半年", days(180)),
        ("近一年", days(365)),
        ("过去一年", days(365)),
        ("本周", Window("week", 0)),
        ("上周", Window("week", -1)),
        ("本月", Window("month", 0)),
        ("上个月", Window("month", -1)),
        ("上月", Window("month", -1)),
        ("今年", Window("year", 0)),
        ("去年", Window("year", -1)),
        ("618", Window("festival", name="618")),
        ("双11", Window("festival", name="双11")),
        ("双十一", Window("festival", name="双11")),
        ("去年双11", Window("festival", name="双11", year=2025)),
        ("2025年双11", Window("festival", name="双11", year=2025)),
        ("10月", Window("month_of", month=10)),
        ("2026年10月", Window("month_of", year=2026, month=10)),
        ("今天", days(1)),
    ],
)
def test_windows(text: str, window: Window) -> None:
    assert parse_window(text, T) == window


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("近90天", date(2026, 8, 4), date(2026, 11, 1)),
        ("近一周", date(2026, 10, 26), date(2026, 11, 1)),
        ("近半年", date(2026, 5, 6), date(2026, 11, 1)),
        ("近一年", date(2025, 11, 2), date(2026, 11, 1)),
        ("本周", date(2026, 10, 26), date(2026, 11, 1)),
        ("上周", date(2026, 10, 19), date(2026, 10, 25)),
        ("本月", date(2026, 11, 1), date(2026, 11, 1)),
        ("上个月", date(2026, 10, 1), date(2026, 10, 31)),
        ("今年", date(2026, 1, 1), date(2026, 11, 1)),
        ("去年", date(2025, 1, 1), date(2025, 12, 31)),
        ("618", date(2026, 6, 1), date(2026, 6, 18)),
        ("双11", date(2026, 11, 1), date(2026, 11, 1)),  # begun on T: this year's, ending at T
        ("去年双11", date(2025, 11, 1), date(2025, 11, 11)),
        ("12月", date(2025, 12, 1), date(2025, 12, 31)),  # the latest December begun by T
        ("10月", date(2026, 10, 1), date(2026, 10, 31)),
        ("昨天", date(2026, 10, 31), date(2026, 10, 31)),
        ("前天", date(2026, 10, 30), date(2026, 10, 30)),
    ],
)
def test_window_spans(text: str, first: date, last: date) -> None:
    window = parse_window(text, T)
    assert window is not None
    assert window.span(T) == (first, last)


def test_double_eleven_before_it_begins_is_last_years() -> None:
    window = parse_window("双11", date(2026, 10, 31))
    assert window is not None
    assert window.span(date(2026, 10, 31)) == (date(2025, 11, 1), date(2025, 11, 11))


@pytest.mark.parametrize("text", ["近0天", "沉睡", "13月", ""])
def test_not_windows(text: str) -> None:
    assert parse_window(text, T) is None


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("明天上午10点", datetime(2026, 11, 2, 10, 0, tzinfo=SH)),
        ("下周一10:00", datetime(2026, 11, 2, 10, 0, tzinfo=SH)),
        ("下周一上午10点", datetime(2026, 11, 2, 10, 0, tzinfo=SH)),
        ("下周五下午3点半", datetime(2026, 11, 6, 15, 30, tzinfo=SH)),
        ("今晚8点", datetime(2026, 11, 1, 20, 0, tzinfo=SH)),
        ("今天下午2点15分", datetime(2026, 11, 1, 14, 15, tzinfo=SH)),
        ("明晚7点", datetime(2026, 11, 2, 19, 0, tzinfo=SH)),
        ("后天早上9点", datetime(2026, 11, 3, 9, 0, tzinfo=SH)),
        ("3天后", datetime(2026, 11, 4, 9, 30, tzinfo=SH)),
        ("三天后上午10点", datetime(2026, 11, 4, 10, 0, tzinfo=SH)),
        ("中午12点", datetime(2026, 11, 1, 12, 0, tzinfo=SH)),
        ("中午1点", datetime(2026, 11, 1, 13, 0, tzinfo=SH)),
        ("11月5日10点", datetime(2026, 11, 5, 10, 0, tzinfo=SH)),
        ("2小时后", datetime(2026, 11, 1, 11, 30, tzinfo=SH)),
        ("周日晚上8点", datetime(2026, 11, 1, 20, 0, tzinfo=SH)),  # this Mon–Sun week's Sunday = today
    ],
)
def test_send_times(text: str, moment: datetime) -> None:
    assert parse_send_time(text, NOW) == moment


def test_send_time_from_utc_now() -> None:
    utc_now = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("UTC"))  # = 09:30 in Shanghai
    assert parse_send_time("明天上午10点", utc_now) == datetime(2026, 11, 2, 10, 0, tzinfo=SH)


@pytest.mark.parametrize("text", ["今天早上8点", "周五下午3点", "本周六上午10点", "上周一10点", "9点"])
def test_past_times_are_refused_not_moved(text: str) -> None:
    with pytest.raises(SendTimeError):
        parse_send_time(text, NOW)


def test_impossible_time() -> None:
    with pytest.raises(SendTimeError):
        parse_send_time("明天25点", NOW)
