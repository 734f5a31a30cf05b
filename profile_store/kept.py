"""A driver connection kept open between statements, for the hot or frequent ones.

A pooled session pays, for every statement, a checkout with its pre-ping round trip, BEGIN and
COMMIT/ROLLBACK and SQLAlchemy's parameter processing. For the edge's record of each batch of
callbacks (thousands a second) and for the looks that idle processes take many times a second
(is anything new? is anything due?) that is most of their cost. A kept connection runs ONE
statement per use, in autocommit, through the driver (asyncpg or aiosqlite).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class KeptConnection:
    """Opened at first use; dropped (invalidated) after a failure, so the next use opens a fresh
    one. `value` takes turns: a connection runs one statement at a time, and a process's
    processing and sending may look at once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._turn = asyncio.Lock()

    async def driver(self) -> Any:
        if self._driver is None:
            conn = await self.engine.connect()
            try:
                raw = await conn.get_raw_connection()
            except BaseException:
                await conn.close()
                raise
            self._conn, self._driver = conn, raw.driver_connection
        return self._driver

    async def value(self, postgres_sql: str, sqlite_sql: str, *params: Any) -> Any:
        """The first column of the statement's first row, or None without a row. The statement
        is given in each driver's own form: `$1`… placeholders for asyncpg, `?` for SQLite
        (where a time is bound as it is stored: times.sqlite_utc)."""
        async with self._turn:
            try:
                driver = await self.driver()
                if self.engine.dialect.name == "postgresql":
                    return await driver.fetchval(postgres_sql, *params)
                async with driver.execute(sqlite_sql, params) as cursor:
                    row = await cursor.fetchone()
                return row[0] if row else None
            except BaseException:
                await self.close(invalidate=True)
                raise

    async def close(self, *, invalidate: bool = False) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is None:
            return
        if not invalidate:
            await conn.close()
            return
        with contextlib.suppress(Exception):
            await conn.invalidate()
            await conn.close()
