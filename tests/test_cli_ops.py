"""`deadletter list` / `deadletter replay` against a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli_ops import deadletter
from profile_store import raw_events
from profile_store.db import Database
from tests.conftest import TEST_SECRET


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        ids = await raw_events.record_once(
            db,
            [
                raw_events.NewRawEvent(
                    "wechat:gh:o1:event:LOCATION::1", "wechat", "wxoa", "<xml/>", datetime.now(UTC)
                )
            ],
        )
        async with db.transaction() as session:
            await raw_events.mark_dead(session, ids["wechat:gh:o1:event:LOCATION::1"], "unhandled event LOCATION")
    finally:
        await db.dispose()


async def _statuses(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return [r[0] for r in (await session.execute(text("SELECT status FROM raw_event"))).all()]
    finally:
        await db.dispose()


def test_list_and_replay(db_url: str) -> None:
    asyncio.run(_seed(db_url))
    env = {"DATABASE_URL": db_url, "QIANMIAN_SECRET_KEY": TEST_SECRET, "COLUMNS": "250"}
    runner = CliRunner()
    listed = runner.invoke(deadletter, ["list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "unhandled event LOCATION" in listed.output and "wxoa" in listed.output

    no_target = runner.invoke(deadletter, ["replay"], env=env)
    assert no_target.exit_code == 2

    replayed = runner.invoke(deadletter, ["replay", "--all"], env=env)
    assert replayed.exit_code == 0 and "1" in replayed.output
    assert asyncio.run(_statuses(db_url)) == ["pending"]

    again = runner.invoke(deadletter, ["replay", "1"], env=env)  # already replayed: nothing to do
    assert again.exit_code == 0 and asyncio.run(_statuses(db_url)) == ["pending"]
    assert "unhandled event LOCATION" not in runner.invoke(deadletter, ["list"], env=env).output
    assert "unhandled event LOCATION" in runner.invoke(deadletter, ["list", "--all"], env=env).output
