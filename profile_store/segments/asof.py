"""The profile relation a segment is evaluated against, as of any date.

Tags are as of T (tags.md); the stored `profile` holds them as of its `as_of`. When every active
person's stored profile is of the asked date, segments read `profile` itself; otherwise the
profiles are computed as of that date — by the tag refresh's own code (`compute_range` over
contiguous pages of person ids, `profile_row`) — into a temporary table of the same shape, which
lives until the end of the caller's transaction (PostgreSQL) or its connection (SQLite).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import analyze, dialect_of, stage, temp_table
from profile_store.tagging.refresh import compute_range, load_rules
from profile_store.tagging.store import COLUMNS, NAMES, profile_row

TEMP_PROFILE = "_qm_segment_profile"
PAGE = 5_000


async def profile_relation(session: AsyncSession, today: date) -> str:
    """`profile` when it is as of `today` for every active person, else a temporary table of
    the active persons' profiles computed as of `today` (use it in the same transaction)."""
    stale = (
        await session.execute(
            text(
                "SELECT 1 FROM person ps WHERE ps.status = 'active' AND NOT EXISTS"
                " (SELECT 1 FROM profile p WHERE p.person_id = ps.person_id AND p.as_of = :today) LIMIT 1"
            ),
            {"today": today},
        )
    ).first()
    if stale is None:
        return "profile"
    postgres = dialect_of(session) == "postgresql"
    await temp_table(session, TEMP_PROFILE, ", ".join(f"{c} {t}" for c, t in COLUMNS) + ", PRIMARY KEY (person_id)")
    rules = await load_rules(session)
    after = ""
    while True:
        ids = list(
            (
                await session.execute(
                    text(
                        "SELECT person_id FROM person WHERE status = 'active' AND person_id > :after"
                        " ORDER BY person_id LIMIT :n"
                    ),
                    {"after": after, "n": PAGE},
                )
            ).scalars()
        )
        if not ids:
            break
        computed = await compute_range(session, ids, today, rules)
        rows = [profile_row(pid, today, computed[pid]) for pid in ids]
        if not postgres:  # the aiosqlite driver gets values as SQLAlchemy would store them
            rows = [tuple(v.isoformat() if isinstance(v, date) else v for v in row) for row in rows]
        await stage(session, TEMP_PROFILE, NAMES, rows)
        after = ids[-1]
    await analyze(session, TEMP_PROFILE)
    return TEMP_PROFILE
