"""QIANMIAN_SLOW_SQL_MS: statements slower than the setting are logged with their time."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from bot.settings import Settings
from profile_store.db import Database


async def test_a_statement_over_the_threshold_is_logged(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    slow = Database(db_url, slow_sql_ms=0.000001)  # every statement is "slow"
    quiet = Database(db_url)
    try:
        with caplog.at_level(logging.WARNING, logger="profile_store.db"):
            async with quiet.transaction() as session:
                await session.execute(text("SELECT 1 AS unlogged"))
            assert not [r for r in caplog.records if "slow SQL" in r.getMessage()]
            async with slow.transaction() as session:
                await session.execute(text("SELECT 2   AS   logged"))
            async with slow.read() as session:
                await session.execute(text("SELECT 3 AS read_side"))
        messages = [r.getMessage() for r in caplog.records if "slow SQL" in r.getMessage()]
        assert any(m.endswith("SELECT 2 AS logged") and " ms): " in m for m in messages)
        assert any("read_side" in m for m in messages)
    finally:
        await slow.dispose()
        await quiet.dispose()


def test_the_setting_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANMIAN_SLOW_SQL_MS", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("QIANMIAN_SLOW_SQL_MS", "50")
    assert Settings(_env_file=None).slow_sql_ms == 50  # type: ignore[call-arg]
