"""Operator commands: `qianmian deadletter list` and `qianmian deadletter replay [ID...|--all]`.

Replay puts the callbacks back to pending; the running `serve` processes' sweeper takes them up
(or `--now` processes them in this process).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot import texts
from bot.settings import Settings
from profile_store import raw_events
from profile_store.db import Database

deadletter = typer.Typer(help="List and replay callbacks that could not be processed (dead letters).")
_out = Console()
_err = Console(stderr=True)


def _settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # pydantic-settings fills every field from the env


@deadletter.command("list")
def list_command(
    include_replayed: Annotated[bool, typer.Option("--all", help="Also show dead letters already replayed.")] = False,
) -> None:
    """Show dead letters: id, callback, reason."""
    rows = asyncio.run(_list(_settings(), include_replayed))
    if not rows:
        _err.print(texts.DEADLETTER_NONE)
        return
    table = Table(title=texts.DEADLETTER_TITLE)
    for column in texts.DEADLETTER_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            str(row.raw_event_id),
            row.channel,
            row.account,
            row.dedupe_key,
            row.reason,
            row.at.isoformat(timespec="seconds"),
            row.raw_status if row.replayed_at is None else f"{row.raw_status} (replayed)",
        )
    _out.print(table)


@deadletter.command("replay")
def replay_command(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (see `deadletter list`).")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter not yet replayed.")] = False,
    now: Annotated[bool, typer.Option("--now", help="Process them in this process right away.")] = False,
) -> None:
    """Put dead-lettered callbacks back to pending so they are processed again."""
    if not ids and not replay_all:
        _err.print(texts.DEADLETTER_REPLAY_NEEDS_TARGET)
        raise typer.Exit(2)
    count = asyncio.run(_replay(_settings(), None if replay_all else list(ids or []), now))
    if not count:
        _err.print(texts.DEADLETTER_NOTHING_TO_REPLAY)
        return
    _out.print(texts.DEADLETTER_REPLAYED.format(count=count))


async def _list(settings: Settings, include_replayed: bool) -> list[raw_events.DeadLetterRow]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return await raw_events.list_dead_letters(session, include_replayed=include_replayed)
    finally:
        await db.dispose()


async def _replay(settings: Settings, ids: list[int] | None, now: bool) -> int:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            raw_ids = await raw_events.replay(session, ids)
        if now and raw_ids:
            await _process_now(settings, db, raw_ids)
        return len(raw_ids)
    finally:
        await db.dispose()


async def _process_now(settings: Settings, db: Database, raw_ids: list[int]) -> None:
    """Process replayed callbacks here, with the same app pieces `serve` uses."""
    from bot.app import DISPATCHER, create_app

    app = create_app(settings, db=db)
    app.freeze()
    await app.startup()
    try:
        dispatcher = app[DISPATCHER]
        for raw_id in raw_ids:
            await dispatcher.process(raw_id)
    finally:
        await app.cleanup()
