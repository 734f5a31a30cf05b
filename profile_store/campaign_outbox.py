"""Campaign sending SQL (issue 6): claiming planned `campaign_target` rows, the re-checks made
right before a send, recording outcomes, and WeCom mass-send batches (`campaign_send`).

The planner (profile_store/campaigns.py) writes rows `planned` with a `due_at`; the sender
(campaigns/dispatch.py) claims due rows for a short lease (`claimed_until`), as the portrait
outbox does (profile_store/outbox.py): on PostgreSQL with `FOR UPDATE SKIP LOCKED`, on SQLite
as the single writer with an `UPDATE … RETURNING`. Claims are also serialised across processes
by an advisory lock (`LOCK_CAMPAIGN_SEND`, a few milliseconds each), so the frequency-cap
re-check of one claim always sees the rows another process claimed before it.

Row outcomes written here: planned → (sending →) sent → delivered, or failed | expired |
opted_out | capped; a retried row goes back to `planned` with a later `due_at`.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import dialect_of, rowcount
from profile_store.db import lock_for

LOCK_CAMPAIGN_SEND = 7_240_007
PLANNED, SENDING, SENT, DELIVERED = "planned", "sending", "sent", "delivered"
FAILED, EXPIRED, OPTED_OUT, CAPPED = "failed", "expired", "opted_out", "capped"
# campaign_send.status
BATCH_PENDING, BATCH_SENT, BATCH_DONE, BATCH_FAILED, BATCH_ABANDONED = "pending", "sent", "done", "failed", "abandoned"
BATCH_PREFIX = "batch:"  # campaign_target.last_error of a row in an add_msg_template batch
# Which opt-out channel a sending channel answers to (opt_out.channel: wecom | oa | sms | all).
OPT_OUT_OF = {"wecom": "wecom", "oa_template": "oa", "oa_custom": "oa", "sms": "sms"}

_AT = DateTime(timezone=True)
_COLUMNS = "campaign_id, wave, person_id, variant, channel, guide_id, attempts, due_at, service"


def utc(value: Any) -> datetime | None:
    """A datetime read back from either back-end, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    """A claimed row."""

    campaign_id: int
    wave: int
    person_id: str
    variant: str
    channel: str
    guide_id: str
    attempts: int
    due_at: datetime | None
    service: bool = False  # a service message: no frequency cap (campaign_target.service)

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.campaign_id, self.wave, self.person_id)


Key = tuple[int, int, str]


_WHERE_KEY = "campaign_id = :cid AND wave = :wave AND person_id = :pid"
_WHERE_GROUP = "campaign_id = :cid AND wave = :wave AND person_id IN :persons"
GROUP_ROWS = 5000  # persons per set-based UPDATE


def _groups(keys: Iterable[Key]) -> list[dict[str, Any]]:
    """Keys as set-based UPDATE parameters: one per (campaign, wave) and up to GROUP_ROWS persons."""
    by: dict[tuple[int, int], list[str]] = defaultdict(list)
    for c, w, p in keys:
        by[(c, w)].append(p)
    return [
        {"cid": c, "wave": w, "persons": persons[i : i + GROUP_ROWS]}
        for (c, w), persons in by.items()
        for i in range(0, len(persons), GROUP_ROWS)
    ]


def _stmt(session: AsyncSession, sql: str, lists: Sequence[str] = (), **typed: Any) -> Any:
    """`text(sql)` with typed parameters; each `IN :name` of `lists` takes a Python list — one
    array parameter on PostgreSQL (`= ANY`), an expanded list on SQLite."""
    params = [bindparam(name, type_=type_) for name, type_ in typed.items()]
    for name in lists:
        if dialect_of(session) == "postgresql":
            sql = sql.replace(f"IN :{name}", f"= ANY(:{name})")
        else:
            params.append(bindparam(name, expanding=True))
    return text(sql).bindparams(*params)


async def _update_groups(
    session: AsyncSession, sql: str, keys: Iterable[Key], params: dict[str, Any], **typed: Any
) -> None:
    stmt = _stmt(session, sql, ("persons",), **typed)
    for group in _groups(keys):
        await session.execute(stmt, {**params, **group})


# ---------------------------------------------------------------------------------- claiming


async def claim(session: AsyncSession, *, now: datetime, lease: float, limit: int) -> tuple[list[Target], datetime]:
    """Lease up to `limit` due planned rows of scheduled or running campaigns (drafts, paused and
    cancelled ones left out; journeys are campaigns too), in
    (due_at, campaign, wave, guide) order. Returns the rows and the lease's own `claimed_until`
    (unique per claim: it tells this claim's rows from other processes' in the cap re-check)."""
    await lock_for(session, LOCK_CAMPAIGN_SEND)
    until = now + timedelta(seconds=lease, microseconds=uuid.uuid4().int % 1_000_000)
    where = (
        "outcome = 'planned' AND due_at <= :now AND (claimed_until IS NULL OR claimed_until < :now)"
        " AND campaign_id IN (SELECT id FROM campaign WHERE status IN ('scheduled', 'running'))"
    )
    order = "ORDER BY due_at, campaign_id, wave, guide_id LIMIT :n"
    if dialect_of(session) == "postgresql":
        sql = (
            "UPDATE campaign_target t SET claimed_until = :until FROM ("
            f"SELECT campaign_id, wave, person_id FROM campaign_target WHERE {where} {order} FOR UPDATE SKIP LOCKED) c"
            " WHERE t.campaign_id = c.campaign_id AND t.wave = c.wave AND t.person_id = c.person_id"
            " RETURNING t.campaign_id, t.wave, t.person_id, t.variant, t.channel, t.guide_id, t.attempts, t.due_at,"
            " t.service"
        )
    else:
        sql = (
            "UPDATE campaign_target SET claimed_until = :until WHERE rowid IN ("
            f"SELECT rowid FROM campaign_target WHERE {where} {order}) RETURNING {_COLUMNS}"
        )
    stmt = text(sql).bindparams(bindparam("now", type_=_AT), bindparam("until", type_=_AT))
    rows = (await session.execute(stmt, {"now": now, "until": until, "n": limit})).all()
    targets = [
        Target(int(r[0]), int(r[1]), r[2], r[3] or "", r[4] or "", r[5] or "", int(r[6]), utc(r[7]), bool(r[8]))
        for r in rows
    ]
    targets.sort(key=lambda t: (t.due_at or now, t.campaign_id, t.wave, t.guide_id, t.variant, t.person_id))
    return targets, until


async def expire_cancelled(session: AsyncSession) -> int:
    """Planned rows of cancelled campaigns will never be sent: `expired`."""
    result = await session.execute(
        text(
            "UPDATE campaign_target SET outcome = 'expired', claimed_until = NULL, last_error = 'campaign cancelled'"
            " WHERE outcome = 'planned' AND campaign_id IN (SELECT id FROM campaign WHERE status = 'cancelled')"
        )
    )
    return rowcount(result)


async def opted_out(session: AsyncSession, targets: Sequence[Target]) -> list[Target]:
    """The claimed rows whose person opted out of the row's channel (or of everything)."""
    persons = sorted({t.person_id for t in targets})
    if not persons:
        return []
    rows = (
        await session.execute(
            _stmt(session, "SELECT person_id, channel FROM opt_out WHERE person_id IN :persons", ("persons",)),
            {"persons": persons},
        )
    ).all()
    out: dict[str, set[str]] = defaultdict(set)
    for person, channel in rows:
        out[person].add(channel)
    return [t for t in targets if out.get(t.person_id, set()) & {"all", OPT_OUT_OF.get(t.channel, t.channel)}]


async def recent_counts(
    session: AsyncSession, persons: Sequence[str], *, since: datetime, now: datetime, mine: datetime
) -> dict[str, int]:
    """Per person: marketing messages sent since `since` (any campaign or journey), being sent
    (a WeCom batch in flight), or claimed by another sender's live lease (service messages are
    not marketing: they count for no cap)."""
    if not persons:
        return {}
    rows = (
        await session.execute(
            _stmt(
                session,
                "SELECT person_id, COUNT(*) FROM campaign_target WHERE person_id IN :persons AND service = false AND ("
                " (sent_at IS NOT NULL AND sent_at > :since) OR outcome = 'sending'"
                " OR (outcome = 'planned' AND claimed_until > :now AND claimed_until <> :mine))"
                " GROUP BY person_id",
                ("persons",), since=_AT, now=_AT, mine=_AT,
            ),
            {"persons": list(persons), "since": since, "now": now, "mine": mine},
        )
    ).all()
    return {r[0]: int(r[1]) for r in rows}


# ---------------------------------------------------------------------------------- outcomes


async def end(session: AsyncSession, keys: Iterable[Key], outcome: str, error: str = "") -> None:
    """Rows that will not be sent (failed | expired | opted_out | capped), or sent without a batch."""
    stmt = (
        "UPDATE campaign_target SET outcome = :outcome, claimed_until = NULL, last_error = :err,"
        f" attempts = attempts + 1 WHERE {_WHERE_GROUP}"
    )
    await _update_groups(session, stmt, keys, {"outcome": outcome, "err": error[:500]})


async def mark_sent(session: AsyncSession, keys: Iterable[Key], at: datetime, note: str = "") -> None:
    stmt = (
        "UPDATE campaign_target SET outcome = 'sent', sent_at = :at, claimed_until = NULL, last_error = :note,"
        f" attempts = attempts + 1 WHERE {_WHERE_GROUP} AND outcome IN ('planned', 'sending')"
    )
    await _update_groups(session, stmt, keys, {"at": at, "note": note[:500]}, at=_AT)


async def defer(
    session: AsyncSession, keys: Iterable[Key], due_at: datetime, *, error: str = "", attempt: bool = False
) -> None:
    """Back to `planned`, due at `due_at` (a retry counts an attempt; quiet hours and a channel's
    back-off do not)."""
    stmt = (
        "UPDATE campaign_target SET outcome = 'planned', due_at = :due, claimed_until = NULL,"
        f" last_error = :err, attempts = attempts + :inc WHERE {_WHERE_GROUP}"
    )
    params = {"due": due_at, "err": error[:500], "inc": 1 if attempt else 0}
    await _update_groups(session, stmt, keys, params, due=_AT)


# ---------------------------------------------------------------------------------- addresses


async def addresses(session: AsyncSession, persons: Sequence[str], kind: str) -> dict[str, str]:
    """person → one unshared identifier of `kind` (external_userid, openid as 'appid/openid'),
    or for `phone` its ciphertext (`sealed`)."""
    if not persons:
        return {}
    column = "sealed" if kind == "phone" else "value"
    rows = (
        await session.execute(
            _stmt(
                session,
                f"SELECT person_id, MIN({column}) FROM identity_node WHERE kind = :kind AND shared = false"
                f" AND person_id IN :persons AND {column} IS NOT NULL GROUP BY person_id",
                ("persons",),
            ),
            {"kind": kind, "persons": list(persons)},
        )
    ).all()
    return {r[0]: r[1] for r in rows}


async def persons_of(session: AsyncSession, kind: str, values: Sequence[str]) -> dict[str, str]:
    """identifier value → person (delivered results name external_userids)."""
    if not values:
        return {}
    rows = (
        await session.execute(
            _stmt(
                session,
                "SELECT value, person_id FROM identity_node WHERE kind = :kind AND value IN :values"
                " AND person_id IS NOT NULL",
                ("values",),
            ),
            {"kind": kind, "values": list(values)},
        )
    ).all()
    return {r[0]: r[1] for r in rows}


async def variants(session: AsyncSession, campaign_ids: Iterable[int]) -> dict[int, str]:
    """campaign id → its `variants` JSON."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    rows = (
        await session.execute(
            _stmt(session, "SELECT id, variants FROM campaign WHERE id IN :ids", ("ids",)),
            {"ids": ids},
        )
    ).all()
    return {int(r[0]): r[1] or "[]" for r in rows}


# ---------------------------------------------------------------------------------- WeCom batches


@dataclass(frozen=True)
class Batch:
    batch_id: str
    campaign_id: int
    wave: int
    guide_id: str
    variant: str
    status: str
    msgid: str | None
    created_at: datetime
    persons: list[str]


async def begin_batch(
    session: AsyncSession, batch_id: str, key: tuple[int, int, str, str], persons: Sequence[str], *, now: datetime,
    lease: float,
) -> None:
    """Record the batch (the idempotency key) and mark its rows `sending`, BEFORE the call."""
    cid, wave, guide, variant = key
    until = now + timedelta(seconds=lease)
    await session.execute(
        text(
            "INSERT INTO campaign_send (batch_id, campaign_id, wave, guide_id, variant, persons, status, msgid,"
            " created_at, lease_until, sent_at, next_check_at, last_error)"
            " VALUES (:b, :cid, :wave, :guide, :variant, :n, 'pending', NULL, :now, :until, NULL, NULL, '')"
        ).bindparams(bindparam("now", type_=_AT), bindparam("until", type_=_AT)),
        {"b": batch_id, "cid": cid, "wave": wave, "guide": guide, "variant": variant, "n": len(persons),
         "now": now, "until": until},
    )
    stmt = (
        "UPDATE campaign_target SET outcome = 'sending', claimed_until = :until, last_error = :b"
        f" WHERE {_WHERE_GROUP}"
    )
    keys = [(cid, wave, p) for p in persons]
    await _update_groups(session, stmt, keys, {"until": until, "b": BATCH_PREFIX + batch_id}, until=_AT)


async def batch_sent(
    session: AsyncSession, batch: str, key: tuple[int, int], msgid: str, *, now: datetime, sent: Sequence[str],
    failed: Sequence[str], check_at: datetime, note: str = "",
) -> None:
    """The call succeeded: the msgid is kept and the rows become sent (those in `fail_list`
    failed), in one transaction."""
    await session.execute(
        text(
            "UPDATE campaign_send SET status = 'sent', msgid = :msgid, sent_at = :now, next_check_at = :check,"
            " lease_until = NULL, last_error = :note WHERE batch_id = :b"
        ).bindparams(bindparam("now", type_=_AT), bindparam("check", type_=_AT)),
        {"msgid": msgid, "now": now, "check": check_at, "b": batch, "note": note[:500]},
    )
    cid, wave = key
    await end(
        session, [(cid, wave, p) for p in failed], FAILED,
        "fail_list: not reachable through this guide (WeCom quota, or not a contact)",
    )
    await mark_sent(session, [(cid, wave, p) for p in sent], now)


async def msgids(session: AsyncSession, guide: str, *, since: datetime) -> set[str]:
    """The msgids of the guide's batches recorded since `since` (a lost answer is none of them)."""
    rows = await session.execute(
        text(
            "SELECT msgid FROM campaign_send WHERE guide_id = :g AND created_at >= :since AND msgid IS NOT NULL"
        ).bindparams(bindparam("since", type_=_AT)),
        {"g": guide, "since": since},
    )
    return {r[0] for r in rows}


async def batch_ended(
    session: AsyncSession, batch: str, keys: Sequence[Key], *, status: str, error: str, retry_at: datetime | None,
    attempt: bool = True,
) -> None:
    """The call did not create a message: the batch ends `failed` (or `abandoned`); its rows are
    retried at `retry_at` (back to planned) or end failed when `retry_at` is None."""
    await session.execute(
        text("UPDATE campaign_send SET status = :s, last_error = :err, lease_until = NULL WHERE batch_id = :b"),
        {"s": status, "err": error[:500], "b": batch},
    )
    if retry_at is None:
        await end(session, keys, FAILED, error)
    else:
        await defer(session, keys, retry_at, error=error, attempt=attempt)


async def stale_batches(session: AsyncSession, *, now: datetime, lease: float, limit: int = 20) -> list[Batch]:
    """Pending batches whose sender died (or lost the answer) — leased to this caller for `lease`."""
    lock = " FOR UPDATE SKIP LOCKED" if dialect_of(session) == "postgresql" else ""
    rows = (
        await session.execute(
            text(
                "SELECT batch_id, campaign_id, wave, guide_id, variant, status, msgid, created_at FROM campaign_send"
                f" WHERE status = 'pending' AND lease_until < :now ORDER BY created_at LIMIT :n{lock}"
            ).bindparams(bindparam("now", type_=_AT)),
            {"now": now, "n": limit},
        )
    ).all()
    if not rows:
        return []
    until = now + timedelta(seconds=lease)
    await session.execute(
        text("UPDATE campaign_send SET lease_until = :until WHERE batch_id = :b").bindparams(
            bindparam("until", type_=_AT)
        ),
        [{"until": until, "b": r[0]} for r in rows],
    )
    batches = []
    for r in rows:
        await session.execute(
            text("UPDATE campaign_target SET claimed_until = :until WHERE last_error = :tag AND outcome = 'sending'"
                 " AND campaign_id = :cid AND wave = :wave").bindparams(bindparam("until", type_=_AT)),
            {"until": until, "tag": BATCH_PREFIX + r[0], "cid": r[1], "wave": r[2]},
        )
        persons = (
            await session.execute(
                text("SELECT person_id FROM campaign_target WHERE campaign_id = :cid AND wave = :wave"
                     " AND outcome = 'sending' AND last_error = :tag"),
                {"cid": r[1], "wave": r[2], "tag": BATCH_PREFIX + r[0]},
            )
        ).scalars().all()
        batches.append(Batch(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6], utc(r[7]) or now, list(persons)))
    return batches


async def batches_to_check(session: AsyncSession, *, now: datetime, next_check: datetime, limit: int) -> list[Batch]:
    """Sent batches whose send results are due to be fetched again (leased until `next_check`)."""
    lock = " FOR UPDATE SKIP LOCKED" if dialect_of(session) == "postgresql" else ""
    rows = (
        await session.execute(
            text(
                "SELECT batch_id, campaign_id, wave, guide_id, variant, status, msgid, created_at FROM campaign_send"
                f" WHERE status = 'sent' AND next_check_at <= :now ORDER BY next_check_at LIMIT :n{lock}"
            ).bindparams(bindparam("now", type_=_AT)),
            {"now": now, "n": limit},
        )
    ).all()
    if rows:
        await session.execute(
            text("UPDATE campaign_send SET next_check_at = :at WHERE batch_id = :b").bindparams(
                bindparam("at", type_=_AT)
            ),
            [{"at": next_check, "b": r[0]} for r in rows],
        )
    return [Batch(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6], utc(r[7]) or now, []) for r in rows]


async def delivered(
    session: AsyncSession, campaign_id: int, wave: int, results: Sequence[tuple[str, datetime | None, str]],
    *, now: datetime,
) -> int:
    """Send results of one batch: (person, send time, '' | error). A row still `sent` becomes
    `delivered` (the guide sent it) or `failed` (WeCom says it could not be)."""
    ok = [{"cid": campaign_id, "wave": wave, "pid": p, "at": at or now} for p, at, err in results if not err]
    bad = [{"cid": campaign_id, "wave": wave, "pid": p, "err": err[:500]} for p, _at, err in results if err]
    if ok:
        await session.execute(
            text(
                f"UPDATE campaign_target SET outcome = 'delivered', delivered_at = :at WHERE {_WHERE_KEY}"
                " AND outcome = 'sent'"
            ).bindparams(bindparam("at", type_=_AT)),
            ok,
        )
    if bad:
        await session.execute(
            text(
                "UPDATE campaign_target SET outcome = 'failed', last_error = :err"
                f" WHERE {_WHERE_KEY} AND outcome = 'sent'"
            ),
            bad,
        )
    return len(ok)


async def batch_checked(session: AsyncSession, batch: str, *, done: bool) -> None:
    if done:
        await session.execute(text("UPDATE campaign_send SET status = 'done' WHERE batch_id = :b"), {"b": batch})


# ---------------------------------------------------------------------------------- figures


async def outcome_counts(session: AsyncSession, campaign_id: int | None = None) -> dict[str, int]:
    """Rows per outcome (one campaign or all): operators, tests, benchmarks."""
    where = " WHERE campaign_id = :cid" if campaign_id is not None else ""
    rows = (
        await session.execute(
            text(f"SELECT outcome, COUNT(*) FROM campaign_target{where} GROUP BY outcome"),
            {"cid": campaign_id} if campaign_id is not None else {},
        )
    ).all()
    return {r[0]: int(r[1]) for r in rows}


async def batch_rows(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            text("SELECT batch_id, campaign_id, wave, guide_id, variant, persons, status, msgid, last_error"
                 " FROM campaign_send ORDER BY created_at")
        )
    ).all()
    return [
        {"batch_id": r[0], "campaign_id": r[1], "wave": r[2], "guide_id": r[3], "variant": r[4], "persons": r[5],
         "status": r[6], "msgid": r[7], "note": r[8]}
        for r in rows
    ]


async def advance_campaigns(session: AsyncSession) -> None:
    """Campaign statuses follow their rows: scheduled → running once a message went out; running →
    done once every wave is planned and nothing is waiting or being sent. Journeys keep theirs."""
    await session.execute(
        text(
            "UPDATE campaign SET status = 'running' WHERE kind = 'campaign' AND status = 'scheduled'"
            " AND EXISTS (SELECT 1 FROM campaign_target t WHERE t.campaign_id = campaign.id AND t.sent_at IS NOT NULL)"
        )
    )
    running = (
        await session.execute(
            text(
                "SELECT c.id, c.waves FROM campaign c WHERE c.kind = 'campaign' AND c.status = 'running'"
                " AND NOT EXISTS (SELECT 1 FROM campaign_target t WHERE t.campaign_id = c.id"
                " AND t.outcome IN ('planned', 'sending'))"
            )
        )
    ).all()
    for campaign_id, waves in running:  # a few campaigns, never persons
        wanted = {int(w.get("wave", 0)) for w in json.loads(waves or "[]")} | {0}
        planned = {
            int(r[0])
            for r in (
                await session.execute(
                    text("SELECT DISTINCT wave FROM campaign_target WHERE campaign_id = :c"), {"c": campaign_id}
                )
            ).all()
        }
        if wanted <= planned:
            await session.execute(text("UPDATE campaign SET status = 'done' WHERE id = :c"), {"c": campaign_id})
