"""The migrated schema: what the models declare is what the migrations build, on both back-ends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import profile_store.models  # noqa: F401  (registers every table on SQLModel.metadata)
from profile_store.db import Database


async def test_the_migrations_build_what_the_models_declare(db: Database) -> None:
    def differences(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    async with db.engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert [str(d)[:200] for d in diff] == []


async def test_a_coupon_is_found_by_its_code_through_the_partial_index(db: Database) -> None:
    """Most events carry no coupon: the index holds only those that do (migration 0009), and a
    lookup by code, or a join on equal codes, can still use it (equality implies NOT NULL)."""
    by_code = "SELECT type FROM event WHERE coupon_code = 'C1' AND type IN ('coupon_consume', 'coupon_delete')"
    joined = (
        "SELECT g.person_id FROM event g WHERE g.type = 'coupon_get' AND NOT EXISTS"
        " (SELECT 1 FROM event f WHERE f.coupon_code = g.coupon_code AND f.type = 'coupon_consume')"
    )
    async with db.read() as session:
        if db.is_postgres:
            definition = (await session.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_event_coupon_code'"))).scalar_one()
            await session.execute(text("SET LOCAL enable_seqscan = off"))  # usable, not merely chosen
            plans = ["\n".join((await session.execute(text(f"EXPLAIN {q}"))).scalars()) for q in (by_code, joined)]
        else:
            definition = (await session.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_event_coupon_code'"))).scalar_one()
            plans = [
                "\n".join(str(row[-1]) for row in await session.execute(text(f"EXPLAIN QUERY PLAN {q}")))
                for q in (by_code, joined)
            ]
    assert "WHERE" in definition and "coupon_code IS NOT NULL" in definition
    for plan in plans:
        assert "ix_event_coupon_code" in plan, plan
