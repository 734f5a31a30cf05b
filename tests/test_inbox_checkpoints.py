"""SQLite: the connection that records callbacks does not checkpoint the WAL itself (a flood's
batches would wait for the 4 MB copies and syncs); a checkpoint beside it, every second from the
Recorder, keeps the WAL from growing. PostgreSQL checkpoints by itself."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.recorder import Recorder
from profile_store.db import Database
from profile_store.raw_events import InboxWriter, NewRawEvent

BODY = "<xml>" + "x" * 3000 + "</xml>"  # about a page per callback


def _events(prefix: str, count: int) -> list[NewRawEvent]:
    now = datetime.now(UTC)
    return [NewRawEvent(f"{prefix}{i}", "wecom", "corp", BODY, now) for i in range(count)]


def _wal(db: Database) -> Path:
    assert db.engine.url.database
    return Path(db.engine.url.database + "-wal")


def _autocheckpoint_of_a_new_connection(db: Database) -> int:
    assert db.engine.url.database
    with sqlite3.connect(db.engine.url.database) as conn:
        return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_the_recording_connection_leaves_the_wal_to_the_checkpoint(db: Database) -> None:
    writer = InboxWriter(db)
    try:
        if db.is_postgres:
            await writer.write(_events("pg", 3))
            assert await writer.checkpoint() is None
            return
        # 1500 pages, more than SQLite's automatic threshold (1000): nothing copied them yet
        for batch in range(15):
            await writer.write(_events(f"b{batch}-", 100))
        # SQLite's own checkpoint would have copied the WAL at 1000 pages and started it again
        grown = _wal(db).stat().st_size
        assert grown > 1400 * 4096
        assert _autocheckpoint_of_a_new_connection(db) == 1000  # other connections keep it
        pages, copied = await writer.checkpoint() or (0, 0)
        assert pages >= 1500 and copied == pages  # nobody reading: all of it
        # the next batch starts the WAL from its beginning again: as many callbacks again reuse
        # the file (its size stays about the same) instead of doubling it
        for batch in range(15):
            await writer.write(_events(f"c{batch}-", 100))
        assert _wal(db).stat().st_size < grown * 1.2
        again = await writer.checkpoint()
        assert again is not None and again[0] < pages * 1.2
    finally:
        await writer.close()
    assert (await db_count(db)) == (3 if db.is_postgres else 3000)


async def db_count(db: Database) -> int:
    from sqlalchemy import text

    async with db.read() as session:
        return int((await session.execute(text("SELECT COUNT(*) FROM raw_event"))).scalar_one())


async def test_the_recorder_checkpoints_while_it_records(db: Database) -> None:
    recorder = Recorder(db, checkpoint_every=0.05)
    await recorder.start()
    try:
        for batch in range(12):
            await asyncio.gather(*(recorder.record(e) for e in _events(f"r{batch}-", 100)))
            await asyncio.sleep(0.06)
    finally:
        await recorder.stop()
    if db.is_postgres:
        assert recorder.checkpoints == 0
        return
    assert recorder.checkpoints >= 3
    # what the recorder left behind: a WAL far smaller than the 1200 pages it wrote
    assert _wal(db).stat().st_size < 600 * 4096
