"""Transaction-level advisory locks (`lock_for`) on PostgreSQL: taken once per transaction when
taken outside a savepoint, taken again after a savepoint that held it rolled back. Whether the lock
is held is asked of PostgreSQL itself, from a second connection."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from profile_store.db import Database, lock_for

LOCK = 424242


async def _free_elsewhere(db: Database) -> bool:
    """Whether another connection could take the lock now (and give it back at once)."""
    async with db.engine.connect() as conn:
        free = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK})).scalar_one())
        if free:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
        return free


async def test_a_lock_is_asked_for_once_per_transaction_and_again_after_a_rolled_back_savepoint(
    db: Database,
) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite's transactions hold its one write lock: lock_for does nothing there")
    asked: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "pg_advisory_xact_lock" in statement:
            asked.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.transaction() as session:
            await lock_for(session, LOCK)
            await lock_for(session, LOCK)  # held until the transaction ends: no second round trip
            async with session.begin_nested():
                await lock_for(session, LOCK)  # nor inside a later savepoint
            assert len(asked) == 1 and not await _free_elsewhere(db)
        assert await _free_elsewhere(db), "released with its transaction"
        asked.clear()

        async with db.transaction() as session:
            savepoint = await session.begin_nested()
            await lock_for(session, LOCK)  # inside a savepoint: not remembered
            await savepoint.rollback()
            assert await _free_elsewhere(db), "the savepoint's rollback released it"
            await lock_for(session, LOCK)  # so it is asked for again, now at the top level
            await lock_for(session, LOCK)  # held until the end: no second round trip
            async with session.begin_nested():
                await lock_for(session, LOCK)  # still held inside a later savepoint
            assert len(asked) == 2 and not await _free_elsewhere(db)
        assert await _free_elsewhere(db)

        asked.clear()
        async with db.transaction() as session:  # a new transaction holds nothing yet
            await lock_for(session, LOCK)
            assert len(asked) == 1 and not await _free_elsewhere(db)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
