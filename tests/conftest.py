"""Shared fixtures: real SQLite and real PostgreSQL, never mocks of our own code.

PostgreSQL comes from QIANMIAN_TEST_PG (an admin URL such as
postgresql://postgres@127.0.0.1:5432/postgres; `.ci/run` starts that server). Each test gets a
fresh database cloned from a migrated template, so tests never see each other's rows. Under
CI=true a missing PostgreSQL fails the run instead of silently skipping half the suite.

Outbound network is refused by pytest-socket (see pyproject): only loopback is allowed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from profile_store.db import Database, async_url

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_DIR = FIXTURES / "sample"
TEST_SECRET = "test-secret-key-for-pii-and-links-0123456789"

PG_ADMIN_URL = os.environ.get("QIANMIAN_TEST_PG")
# One template per test session: parallel sessions (several developers, xdist) never share it.
_TEMPLATE = f"qm_template_{os.getpid()}"


def _pg_url(dbname: str) -> str:
    assert PG_ADMIN_URL
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


async def _pg_admin(*statements: str) -> None:
    engine = create_async_engine(async_url(PG_ADMIN_URL or ""), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for stmt in statements:
                await conn.execute(text(stmt))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """A migrated template database, made once per test session."""
    if not PG_ADMIN_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but QIANMIAN_TEST_PG is not set: PostgreSQL tests would not run")
        yield None
        return

    async def build() -> None:
        await _pg_admin(f"DROP DATABASE IF EXISTS {_TEMPLATE}", f"CREATE DATABASE {_TEMPLATE}")
        db = Database(_pg_url(_TEMPLATE))
        await db.migrate()
        await db.dispose()

    asyncio.run(build())
    yield _TEMPLATE
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {_TEMPLATE}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_template: str | None) -> Iterator[str]:
    """The URL of an empty, migrated profile store on each back-end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'qianmian.db'}"

        async def migrate() -> None:
            db = Database(url)
            await db.migrate()
            await db.dispose()

        asyncio.run(migrate())
        yield url
        return
    if pg_template is None:
        pytest.skip("QIANMIAN_TEST_PG not set")
    name = f"qm_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    yield _pg_url(name)
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """A private copy of the sample retailer's CSV files (tests may write rejects beside them)."""
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR / "data", target)
    return target
