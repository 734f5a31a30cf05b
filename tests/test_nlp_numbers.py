"""Numerals and amounts (commands.md "Numerals"): exact Decimals, at the place-word boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nlp.numbers import parse_amount, parse_number, to_fen


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", "2"),
        ("两", "2"),
        ("二", "2"),
        ("十", "10"),
        ("十二", "12"),
        ("二十", "20"),
        ("二十五", "25"),
        ("一百", "100"),
        ("一百零五", "105"),
        ("三百五", "350"),
        ("三千", "3000"),
        ("一千五", "1500"),
        ("一千零五", "1005"),
        ("两千五百", "2500"),
        ("1.5万", "15000"),
        ("1万5", "15000"),
        ("两万五", "25000"),
        ("一万五千", "15000"),
        ("一万零五", "10005"),
        ("二十万", "200000"),
        ("3k", "3000"),
        ("1.5k", "1500"),
        ("3千", "3000"),
        ("0.5", "0.5"),
        ("300", "300"),
        ("二零二六", "2026"),
    ],
)
def test_numbers(text: str, value: str) -> None:
    assert parse_number(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "元", "3kg"])
def test_not_numbers(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("300块", "300"), ("三百元", "300"), ("50块钱", "50"), ("5000", "5000"), ("1.5万元", "15000"), ("¥99", "99")],
)
def test_amounts(text: str, value: str) -> None:
    assert parse_amount(text) == Decimal(value)


def test_fen() -> None:
    assert to_fen(Decimal("300")) == 30000
    assert to_fen(Decimal("0.5")) == 50
    assert to_fen(Decimal("19.999")) == 2000
