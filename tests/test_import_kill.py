"""SIGKILL `qianmian import` mid-way: nothing half-written, and running it again completes it.

The data set is generated (~200k rows); the reference partition comes from a clean import of the
same files into a fresh SQLite store, so the PostgreSQL run is also checked against SQLite.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from profile_store.db import Database
from profile_store.generator import GeneratedSet, generate
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.slow

QIANMIAN = str(Path(sys.executable).with_name("qianmian"))
Partition = set[frozenset[tuple[str, str]]]


def start_import(directory: Path, url: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANMIAN_", "DATABASE_URL"))}
    env.update(DATABASE_URL=url, QIANMIAN_SECRET_KEY=TEST_SECRET)
    return subprocess.Popen(
        [QIANMIAN, "import", str(directory), "--rejects", str(cwd / "rejects.csv")],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedSet, Partition]:
    """~200k rows, and their persons after a clean, uninterrupted import."""
    base = tmp_path_factory.mktemp("kill")
    data = generate(base / "data", customers=8_000, seed=21)
    assert 180_000 <= sum(data.rows.values()) <= 240_000
    clean = start_import(data.directory, f"sqlite:///{base / 'clean.db'}", base)
    _, err = clean.communicate(timeout=600)
    assert clean.returncode == 0, err.decode()
    with sqlite3.connect(base / "clean.db") as conn:
        rows = conn.execute("SELECT person_id, kind, value FROM identity_node WHERE person_id IS NOT NULL").fetchall()
    return data, _partition(rows)


def _partition(rows: Sequence[Sequence[Any]]) -> Partition:
    persons: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for person_id, kind, value in rows:
        persons[str(person_id)].add((str(kind), str(value)))
    return {frozenset(p) for p in persons.values()}


async def _committed_orders(db: Database, url: str) -> int:
    """Polled while the import runs; on SQLite a plain reader, never the write lock."""
    if db.is_sqlite:
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0])
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT COUNT(*) FROM orders"))).scalar_one())


async def check_nothing_half_written(db: Database, *, complete: bool) -> None:
    """Committed rows are observed; what is resolved is consistent; only an unfinished import may
    leave links pending (the import resolves once per file; the next run resolves them)."""
    differs = "IS DISTINCT FROM" if db.is_postgres else "IS NOT"
    async with db.transaction() as session:
        async def scalar(sql: str) -> int:
            return int((await session.execute(text(sql))).scalar_one())

        # Every committed row that carries identifiers was observed (has its link)...
        assert await scalar("SELECT COUNT(*) FROM member WHERE link_key IS NULL") == 0
        assert await scalar(
            "SELECT COUNT(*) FROM orders WHERE link_key IS NULL AND (member_id IS NOT NULL"
            " OR phone_hash IS NOT NULL OR unionid IS NOT NULL OR miniapp_openid IS NOT NULL)"
        ) == 0
        assert await scalar(
            "SELECT COUNT(*) FROM event WHERE link_key IS NULL AND (member_id IS NOT NULL OR phone_hash IS NOT NULL"
            " OR unionid IS NOT NULL OR openid IS NOT NULL OR miniapp_openid IS NOT NULL"
            " OR external_userid IS NOT NULL)"
        ) == 0
        # ... each row of a resolved link has the link's person ...
        if complete:
            assert await scalar("SELECT COUNT(*) FROM link WHERE resolved = false") == 0
        for table in ("member", "orders", "event"):
            assert await scalar(
                f"SELECT COUNT(*) FROM {table} t JOIN link l ON l.link_key = t.link_key"
                f" WHERE l.resolved = true AND t.person_id {differs} l.person_id"
            ) == 0, table
        if complete:
            assert await scalar(
                f"SELECT COUNT(*) FROM order_item i JOIN orders o ON o.order_id = i.order_id"
                f" WHERE i.person_id {differs} o.person_id"
            ) == 0
        # ... the identifiers of one resolved link are one person (or shared) ...
        assert await scalar(
            "SELECT COUNT(*) FROM (SELECT x.link_id FROM link_node x JOIN link l ON l.id = x.link_id"
            " JOIN identity_node n ON n.id = x.node_id AND n.shared = false WHERE l.resolved = true"
            " GROUP BY x.link_id HAVING COUNT(DISTINCT n.person_id) > 1"
            " OR SUM(CASE WHEN n.person_id IS NULL THEN 1 ELSE 0 END) > 0) bad"
        ) == 0
        # ... and nobody is a person without identifiers.
        assert await scalar(
            "SELECT COUNT(*) FROM person p WHERE p.status = 'active'"
            " AND NOT EXISTS (SELECT 1 FROM identity_node n WHERE n.person_id = p.person_id)"
        ) == 0


async def partition_of(db: Database) -> Partition:
    async with db.transaction() as session:
        rows = (
            await session.execute(text("SELECT person_id, kind, value FROM identity_node WHERE person_id IS NOT NULL"))
        ).all()
    return _partition([tuple(r) for r in rows])


async def test_killed_import_leaves_whole_chunks_and_completes(
    db: Database, db_url: str, tmp_path: Path, dataset: tuple[GeneratedSet, Partition]
) -> None:
    data, clean = dataset
    process = start_import(data.directory, db_url, tmp_path)
    deadline = time.monotonic() + 300
    while await _committed_orders(db, db_url) == 0:
        assert process.poll() is None, "the import ended before it could be killed: use more data"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # somewhere inside a later chunk
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    await check_nothing_half_written(db, complete=False)
    async with db.transaction() as session:
        orders = (await session.execute(text("SELECT COUNT(*) FROM orders"))).scalar_one()
        unfinished = (
            await session.execute(text("SELECT COUNT(*) FROM import_run WHERE finished_at IS NULL"))
        ).scalar_one()
    assert 0 < orders < data.rows["orders"]  # killed mid-way
    assert unfinished == 1  # the run record says it did not finish

    again = start_import(data.directory, db_url, tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err.decode()
    await check_nothing_half_written(db, complete=True)
    assert await partition_of(db) == clean
    async with db.transaction() as session:
        for name in ("member", "orders", "order_item", "event"):
            total = (await session.execute(text(f"SELECT COUNT(*) FROM {name}"))).scalar_one()
            file = {"member": "members", "orders": "orders", "order_item": "order_items", "event": "events"}[name]
            bad = sum(1 for f, _, _ in data.bad_rows if f == f"{file}.csv")
            assert total == data.rows[file] - bad, name
