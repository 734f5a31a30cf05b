"""Keeping tags current: the full refresh (pages of persons), the incremental path (the persons
an event touched) and the export's on-the-fly computation — all through `compute_range`.

The full refresh walks active persons in person_id order, one page per transaction: memory
holds one page, a crash loses at most the page in flight (each page commits whole), and a
re-run simply recomputes. The incremental path runs in the caller's transaction, so an event
and the tags it changes commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.db import Database
from profile_store.export import Extras
from profile_store.labels import labels_of
from profile_store.models import TagSetting
from profile_store.tagging.facts import gather
from profile_store.tagging.rules import Computed, PersonFacts, TagRules, compute
from profile_store.tagging.store import drop_inactive, profile_row, write_profiles

PAGE_SIZE = 5_000


async def load_rules(session: AsyncSession) -> TagRules:
    stored = (await session.execute(select(TagSetting.key, TagSetting.value))).all()  # type: ignore[call-overload]
    return TagRules.from_stored({k: v for k, v in stored})


async def compute_range(
    session: AsyncSession, person_ids: Collection[str], as_of: date, rules: TagRules
) -> dict[str, Computed]:
    """Metrics and tags of these persons (best passed as a contiguous page of ids: the queries
    scan the id range between the smallest and the largest)."""
    if not person_ids:
        return {}
    wanted = set(person_ids)
    facts = await gather(session, min(wanted), max(wanted), as_of, rules, wanted)

    return {pid: compute(facts.get(pid) or PersonFacts(), as_of, rules) for pid in sorted(wanted)}


@dataclass
class RefreshReport:
    persons: int = 0
    changes: int = 0
    dropped: int = 0


async def refresh_all(
    db: Database, as_of: date, *, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> RefreshReport:
    """Recompute every active person's profile as of `as_of`."""
    report = RefreshReport()
    async with db.transaction() as session:
        rules = await load_rules(session)
    after = ""
    while True:
        async with db.transaction() as session:
            page = list(
                (
                    await session.execute(
                        text(
                            "SELECT person_id FROM person WHERE status = 'active' AND person_id > :after"
                            " ORDER BY person_id LIMIT :n"
                        ),
                        {"after": after, "n": page_size},
                    )
                ).scalars()
            )
            if not page:
                break
            computed = await compute_range(session, page, as_of, rules)
            report.changes += await write_profiles(session, [profile_row(pid, as_of, c) for pid, c in computed.items()])
        report.persons += len(page)
        after = page[-1]
        if progress is not None:
            progress(len(page))
    async with db.transaction() as session:
        report.dropped = await drop_inactive(session)
    return report


async def refresh_persons(
    session: AsyncSession, person_ids: Iterable[str], as_of: date, rules: TagRules | None = None
) -> RefreshReport:
    """The incremental path: recompute these persons now, in the caller's transaction. Ids
    that stopped being active persons (merged away, dissolved) lose their profile."""
    ids = sorted({p for p in person_ids if p})
    report = RefreshReport()
    if not ids:
        return report
    rules = rules or await load_rules(session)
    active = set(
        (
            await session.execute(
                text("SELECT person_id FROM person WHERE status = 'active' AND person_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            )
        ).scalars()
    )
    rows = []
    for pid in sorted(active):  # one person at a time: each query reads only that person's rows
        computed = await compute_range(session, [pid], as_of, rules)
        rows.append(profile_row(pid, as_of, computed[pid]))
    report.persons = len(rows)
    report.changes = await write_profiles(session, rows)
    report.dropped = await drop_inactive(session, [p for p in ids if p not in active])
    return report


async def enrich(
    session: AsyncSession, person_ids: Sequence[str], as_of: date, include_pii: bool
) -> Mapping[str, Extras]:
    """`export profiles`' enricher: metrics and tags computed as of the asked date (the stored
    profile may be of another date), with the persons' manual labels."""
    rules = await load_rules(session)
    computed = await compute_range(session, person_ids, as_of, rules)
    labels = await labels_of(session, person_ids)
    return {pid: Extras(c.metrics, c.tags, labels.get(pid, [])) for pid, c in computed.items()}


async def set_rule(session: AsyncSession, key: str, value: str, by: str) -> TagRules:
    """Change one threshold (validated against every other); takes effect at the next refresh."""
    stored = {k: v for k, v in (await session.execute(select(TagSetting.key, TagSetting.value))).all()}  # type: ignore[call-overload]
    if key not in TagRules.model_fields:
        raise KeyError(key)
    rules = TagRules.from_stored({**stored, key: value})  # raises pydantic's ValidationError
    row = await session.get(TagSetting, key)
    if row is None:
        session.add(TagSetting(key=key, value=value, updated_by=by))
    else:
        row.value, row.updated_by, row.updated_at = value, by, datetime.now(UTC)
    await session.flush()
    return rules


async def reset_rule(session: AsyncSession, key: str) -> bool:
    row = await session.get(TagSetting, key)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
