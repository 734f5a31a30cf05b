"""The database: engine, sessions, migrations and the write locks both back-ends need.

SQLite (WAL) is the single-machine default; PostgreSQL is the system of record past one machine.
Everything above this module talks to `Database` and never to a driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Advisory lock ids (PostgreSQL): one per concern that must be done by one writer at a time.
LOCK_MIGRATE = 7_240_001
LOCK_IDENTITY = 7_240_002


def async_url(url: str) -> str:
    """`sqlite:///x.db` → aiosqlite, `postgresql://…` → asyncpg; explicit drivers are kept."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _setup_sqlite(engine: AsyncEngine, *, writer: bool = True) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions into our own hands: every transaction starts with BEGIN IMMEDIATE, so
        # two writers queue on busy_timeout instead of failing on a lock upgrade mid-transaction.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers begin deferred: in WAL mode they see a consistent snapshot and never wait for
        # (nor hold up) the writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _log_slow_statements(engine: AsyncEngine, slow_ms: float) -> None:
    """Log each statement slower than `slow_ms` (QIANMIAN_SLOW_SQL_MS), with its time."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _started(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("qm_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _finished(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        ms = (time.perf_counter() - conn.info["qm_started"].pop()) * 1000
        if ms >= slow_ms:
            log.warning("slow SQL (%.1f ms): %s", ms, " ".join(statement.split())[:500])


class _WriterQueue:
    """SQLite writers of several processes, queued by the kernel (an flock on a file beside the
    database) instead of by SQLite's busy handler, which polls with sleeps growing to 100 ms: a
    process taking the lock back to back would starve another's writes for seconds (measured: a
    sender process beside `serve` waited 250 ms on average, up to 4 s, to mark a card sent).
    Released waiters get the lock at once. SQLite's busy_timeout stays the fallback for writers
    that are not ours (an operator's sqlite3 shell)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no thread needed
            return
        except BlockingIOError:
            pass
        waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread may still get the lock after we gave up waiting: hand it back then.
            def hand_back(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

            waiting.add_done_callback(hand_back)
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _writer_queue(url: str) -> _WriterQueue | None:
    """The queue file of an SQLite database on disk (none for an in-memory one)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return _WriterQueue(database + ".writers")


class Database:
    """Engine and session factory of one process; started and stopped by its owner."""

    def __init__(self, url: str, *, echo: bool = False, slow_sql_ms: float | None = None) -> None:
        self.url = async_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.url.startswith("postgresql"):
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = _create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _setup_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_gate: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._writers = _writer_queue(self.url) if self.is_sqlite else None
        self.read_engine: AsyncEngine | None = None
        self._readers = self.sessions
        if self.is_sqlite:
            self.read_engine = _create_async_engine(self.url, echo=echo)
            _setup_sqlite(self.read_engine, writer=False)
            self._readers = async_sessionmaker(self.read_engine, expire_on_commit=False)
        if slow_sql_ms is not None:
            for engine in (self.engine, self.read_engine):
                if engine is not None:
                    _log_slow_statements(engine, slow_sql_ms)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error.

        SQLite has one writer (every transaction is BEGIN IMMEDIATE): this process's transactions
        queue on an asyncio lock, first come first served, instead of blocking driver threads in
        SQLite's busy handler; other processes' behind the kernel's lock on a file beside the
        database (`_WriterQueue`).
        """
        if self._write_gate is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self._write_gate, self._across_processes(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """This process's turn at the single SQLite writer, for a statement run outside a
        session (the inbox writer); nothing to wait for on PostgreSQL."""
        if self._write_gate is None:
            yield
            return
        async with self._write_gate, self._across_processes():
            yield

    def _across_processes(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._writers.held() if self._writers is not None else contextlib.nullcontext()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (a snapshot). On SQLite it takes neither the write gate nor
        the write lock, so reading a portrait never delays recording a callback; nothing it
        does may write (it is rolled back at the end)."""
        async with self._readers() as session:
            yield session  # closing the session rolls its (auto-begun) transaction back

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (safe with several processes starting)."""
        from alembic import command

        async with self.engine.connect() as conn:
            if self.is_postgres:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_MIGRATE})
            try:
                await conn.run_sync(lambda sync_conn: command.upgrade(_alembic_config(sync_conn), "head"))
                await conn.commit()
            finally:
                if self.is_postgres:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_MIGRATE})
                    await conn.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()
        if self._writers is not None:
            self._writers.close()


async def lock_for(session: AsyncSession, lock_id: int) -> None:
    """Serialise one concern across processes until the transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: every transaction already holds the
    database's single write lock (BEGIN IMMEDIATE), so nothing more is needed.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


def _alembic_config(sync_conn: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    return cfg


async def run_with_retry(fn: Any, *, attempts: int = 5) -> Any:
    """Retry a whole transaction on serialisation failures and deadlocks (PostgreSQL)."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(attempts):
        try:
            return await fn()
        except DBAPIError as exc:  # pragma: no cover - timing dependent
            code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code not in ("40001", "40P01") or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
