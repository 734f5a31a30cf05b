"""QIANMIAN_CLAIM_LINK_DAYS: how long a coupon claim link (`/c/{token}`) stays valid, counted from
the time its message is sent — at its boundary (the last second valid, the next one expired), its
default (7 days) and its floor (1 day)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.claim_links import ClaimLinks, ClaimRefused
from bot.settings import Settings
from tests.conftest import TEST_SECRET

SENT = 1_790_000_000.0  # epoch seconds the message went out
DAY = 24 * 60 * 60


def settings(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Settings:
    monkeypatch.delenv("QIANMIAN_CLAIM_LINK_DAYS", raising=False)
    return Settings(QIANMIAN_SECRET_KEY=TEST_SECRET, QIANMIAN_PUBLIC_URL="https://crm.example.com",
                    **extra)  # type: ignore[call-arg]


def valid_until(days_setting: Settings) -> tuple[bool, bool]:
    """(valid one second before SENT + the setting's days, valid at that moment)."""
    now = [0.0]
    links = ClaimLinks.from_settings(days_setting, clock=lambda: now[0])
    token = links.url(7, "default", "pCard", sent_from=SENT).rsplit("/c/", 1)[1]
    end = SENT + days_setting.claim_link_days * DAY

    def valid(at: float) -> bool:
        now[0] = at
        try:
            link = links.read(token)
        except ClaimRefused as refused:
            assert refused.reason == "expired"
            return False
        assert (link.campaign_id, link.variant, link.card_id) == (7, "default", "pCard")
        return True

    return valid(end - 1), valid(end)


@pytest.mark.parametrize(("value", "days"), [(None, 7), ("1", 1), ("30", 30)])
def test_a_link_is_valid_the_days_set_and_not_a_second_more(
    monkeypatch: pytest.MonkeyPatch, value: str | None, days: int
) -> None:
    chosen = settings(monkeypatch, **({} if value is None else {"QIANMIAN_CLAIM_LINK_DAYS": value}))
    assert chosen.claim_link_days == days
    assert valid_until(chosen) == (True, False)
    # and the link carries that end: days × 86 400 s after sending, no more, no less
    assert ClaimLinks.from_settings(chosen).ttl_seconds == days * 86_400


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANMIAN_CLAIM_LINK_DAYS", "3")
    assert Settings(QIANMIAN_SECRET_KEY=TEST_SECRET).claim_link_days == 3  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "seven"])
def test_less_than_a_day_or_not_a_whole_number_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ValidationError):
        settings(monkeypatch, QIANMIAN_CLAIM_LINK_DAYS=value)
