"""Bulk staging: put many rows into a temporary table fast, then work on them with set-based SQL.

PostgreSQL gets COPY (asyncpg's binary copy); SQLite gets one executemany. Either way the rows
land inside the caller's transaction, so a crash leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Result, text
from sqlalchemy.ext.asyncio import AsyncSession


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE touched (execute() is typed as returning a plain Result)."""
    return max(int(cast(CursorResult[Any], result).rowcount or 0), 0)


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def temp_table(session: AsyncSession, name: str, columns: str) -> None:
    """Create (once per connection) and empty a temporary table private to this connection.

    `columns` is the column list in SQL, e.g. "node_id BIGINT PRIMARY KEY, person_id TEXT".
    """
    if dialect_of(session) == "postgresql":
        await session.execute(
            text(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
        )
    else:
        await session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})"))
    await session.execute(text(f"DELETE FROM {name}"))


async def fetch_rows(session: AsyncSession, sql: str) -> list[Sequence[Any]]:
    """Every row of a statement without parameters, in the session's transaction.

    A big result (a chunk's 50 k keys, a resolve's region) cost the import more in SQLAlchemy's
    Row objects than in the database (a sixth of its main process, measured at 1 M rows): on
    PostgreSQL, inside a transaction already begun, asyncpg's records are returned as they are."""
    if dialect_of(session) == "postgresql":
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is not None and driver.is_in_transaction():
            return list(await driver.fetch(sql))
    return list((await session.execute(text(sql))).all())


async def analyze(session: AsyncSession, table: str, columns: Sequence[str] = ()) -> None:
    """Give the planner a temporary table's real size (PostgreSQL). Temp tables are never
    auto-analysed: unanalysed, a 1-row table is taken for ~1 000 rows and joined to the big
    tables by hash joins over full scans (30–100 ms a statement at 200 k persons), a 1 M-row one
    for ~1 000 and joined by nested loops. Analysing a small one costs well under a millisecond.
    `columns`: statistics for these only (the row count is always taken); a 50 k-row chunk of
    twenty text columns costs 160 ms in full, a fraction of that for its join keys."""
    if dialect_of(session) == "postgresql":
        only = f" ({', '.join(columns)})" if columns else ""
        await session.execute(text(f"ANALYZE {table}{only}"))


async def stage(
    session: AsyncSession,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    statistics: Sequence[str] = (),
) -> None:
    """Append rows (tuples in `columns` order) to a temporary table made by `temp_table`, then
    analyse it (`statistics`: the columns whose statistics the planner needs; all by default)."""
    records = rows if isinstance(rows, list) else list(rows)
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if dialect_of(session) == "postgresql":
        await driver.copy_records_to_table(table, records=records, columns=list(columns))
        await analyze(session, table, statistics)
        return
    # SQLite: the driver's own executemany on tuples, inside the same transaction; SQLAlchemy's
    # per-row parameter processing would cost more than the insert itself.
    placeholders = ", ".join("?" for _ in columns)
    await driver.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", records)
