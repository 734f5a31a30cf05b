"""The outbox of WeCom corp tags (tags.md "mirrored onto the customer in WeCom").

For each (customer, guide) pair that is a current WeCom contact, `corp_tag_sync.desired` holds
the tag names our profile says (lifecycle, RFM class, manual labels) and `mirrored` what WeCom
was last told; a row whose two differ is `dirty` and waits for the sender (bot/corp_tags.py).
Queued in the same transaction as the tags themselves, so nothing is lost between a change and
its mirroring; several `serve` processes share the work (claims with SKIP LOCKED).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of, stage, temp_table
from profile_store.labels import labels_of

GROUP_NAME = "千面"
CLAIM_SECONDS = 60  # a claimed row is someone's for this long (a crashed sender's claim expires)


def desired_tags(lifecycle: str | None, rfm: str | None, labels: Iterable[str]) -> list[str]:
    names = [v for v in (lifecycle, rfm) if v]
    names += [label for label in labels if label not in names]
    return names


async def queue_corp_tags(session: AsyncSession, person_ids: Iterable[str]) -> int:
    """Recompute the desired corp tags of these persons' WeCom contacts; returns dirty rows."""
    ids = sorted(set(person_ids))
    if not ids:
        return 0
    pairs = (
        await session.execute(
            text(
                "SELECT person_id, external_userid, guide_id FROM ("
                "  SELECT person_id, external_userid, guide_id, type, ROW_NUMBER() OVER ("
                "    PARTITION BY external_userid, guide_id ORDER BY occurred_at DESC, event_id DESC) AS n"
                "  FROM event WHERE person_id IN :ids AND type IN ('add_contact', 'del_contact')"
                "    AND external_userid IS NOT NULL AND guide_id IS NOT NULL) AS last"
                " WHERE n = 1 AND type = 'add_contact'"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
    ).all()
    if not pairs:
        return 0
    profiles = {
        r[0]: (r[1], r[2])
        for r in (
            await session.execute(
                text("SELECT person_id, lifecycle, rfm FROM profile WHERE person_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            )
        ).all()
    }
    labels = await labels_of(session, ids)
    rows = []
    for person_id, external_userid, userid in pairs:
        lifecycle, rfm = profiles.get(person_id, (None, None))
        names = desired_tags(lifecycle, rfm, labels.get(person_id, []))
        rows.append((external_userid, userid, person_id, json.dumps(names, ensure_ascii=False)))
    await temp_table(session, "_qm_corp_tags", "external_userid TEXT, userid TEXT, person_id TEXT, desired TEXT")
    await stage(session, "_qm_corp_tags", ("external_userid", "userid", "person_id", "desired"), rows)
    now = bindparam("now", datetime.now(UTC), type_=DateTime(timezone=True))
    await session.execute(
        text(
            "INSERT INTO corp_tag_sync (external_userid, userid, person_id, desired, mirrored, dirty, attempts,"
            "  next_attempt_at, last_error, updated_at)"
            " SELECT external_userid, userid, person_id, desired, '[]', desired <> '[]', 0, :now, '', :now"
            " FROM _qm_corp_tags WHERE true"
            " ON CONFLICT (external_userid, userid) DO UPDATE SET"
            "  person_id = excluded.person_id, desired = excluded.desired, updated_at = excluded.updated_at,"
            "  dirty = corp_tag_sync.mirrored <> excluded.desired,"
            "  attempts = CASE WHEN corp_tag_sync.desired <> excluded.desired THEN 0 ELSE corp_tag_sync.attempts END,"
            "  next_attempt_at = CASE WHEN corp_tag_sync.desired <> excluded.desired THEN excluded.next_attempt_at"
            "    ELSE corp_tag_sync.next_attempt_at END"
        ).bindparams(now)
    )
    return len(rows)


@dataclass(frozen=True)
class PendingTags:
    external_userid: str
    userid: str
    desired: list[str]
    mirrored: list[str]
    desired_text: str
    attempts: int


async def claim_due(session: AsyncSession, limit: int) -> list[PendingTags]:
    """Dirty rows whose time has come, claimed for CLAIM_SECONDS (others skip them)."""
    now = datetime.now(UTC)
    lock = " FOR UPDATE SKIP LOCKED" if dialect_of(session) == "postgresql" else ""
    rows = (
        await session.execute(
            text(
                "SELECT external_userid, userid, desired, mirrored, attempts FROM corp_tag_sync"
                f" WHERE dirty = :yes AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :n{lock}"
            ).bindparams(bindparam("now", now, type_=DateTime(timezone=True))),
            {"yes": True, "n": limit},
        )
    ).all()
    if rows:
        until = now + timedelta(seconds=CLAIM_SECONDS)
        await session.execute(
            text(
                "UPDATE corp_tag_sync SET next_attempt_at = :until WHERE external_userid = :e AND userid = :u"
            ).bindparams(bindparam("until", until, type_=DateTime(timezone=True))),
            [{"e": r[0], "u": r[1]} for r in rows],
        )
    return [PendingTags(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[2], int(r[4])) for r in rows]


async def mark_mirrored(session: AsyncSession, item: PendingTags) -> None:
    """WeCom now carries `item.desired`; still dirty if our tags changed meanwhile."""
    await session.execute(
        text(
            "UPDATE corp_tag_sync SET mirrored = CAST(:m AS TEXT), dirty = (desired <> CAST(:m AS TEXT)), attempts = 0,"
            " last_error = ''"
            " WHERE external_userid = :e AND userid = :u"
        ),
        {"m": item.desired_text, "e": item.external_userid, "u": item.userid},
    )


async def mark_failed(session: AsyncSession, item: PendingTags, error: str, retry_in: timedelta) -> None:
    await session.execute(
        text(
            "UPDATE corp_tag_sync SET attempts = attempts + 1, last_error = :err, next_attempt_at = :at"
            " WHERE external_userid = :e AND userid = :u"
        ).bindparams(bindparam("at", datetime.now(UTC) + retry_in, type_=DateTime(timezone=True))),
        {"err": error[:500], "e": item.external_userid, "u": item.userid},
    )


async def known_tag_ids(session: AsyncSession, names: Sequence[str]) -> dict[str, str]:
    if not names:
        return {}
    rows = await session.execute(
        text("SELECT name, tag_id FROM corp_tag WHERE name IN :names").bindparams(bindparam("names", expanding=True)),
        {"names": list(names)},
    )
    return {r[0]: r[1] for r in rows.all()}


async def remember_tag_ids(session: AsyncSession, ids: dict[str, str], group_id: str) -> None:
    for name, tag_id in ids.items():
        await session.execute(
            text(
                "INSERT INTO corp_tag (name, tag_id, group_id) VALUES (:n, :t, :g)"
                " ON CONFLICT (name) DO UPDATE SET tag_id = excluded.tag_id, group_id = excluded.group_id"
            ),
            {"n": name, "t": tag_id, "g": group_id},
        )


async def forget_tag_ids(session: AsyncSession, names: Sequence[str]) -> None:
    """Tags deleted in WeCom by an administrator: learn them again."""
    if names:
        await session.execute(
            text("DELETE FROM corp_tag WHERE name IN :names").bindparams(bindparam("names", expanding=True)),
            {"names": list(names)},
        )
