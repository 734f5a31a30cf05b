"""SQL for writing one live fact (a callback) and linking its identifiers.

In the caller's transaction: take the identity lock, insert the `event` row (ON CONFLICT DO
NOTHING, so an imported row of the same fact — same `fact_key` — stays the one row) and observe
its identifiers. The caller resolves before committing (the dispatcher does it once per
transaction, for every callback in it), so a crash anywhere leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.facts import fact_key
from profile_store.identity import IdentityGraph, Sighting
from profile_store.models import Event
from profile_store.normalize import Identifier, identifiers_of

EVENT: Table = Event.__table__  # type: ignore[attr-defined]


_DEFERRED = "qianmian.deferred_sightings"


def defer_observations(session: AsyncSession) -> list[Sighting]:
    """From now on, facts recorded in this session collect their sightings in the returned list
    instead of observing them one by one; the caller observes them all at once (bulk) before it
    resolves and commits. `stop_deferring` ends it."""
    buffer: list[Sighting] = []
    session.info[_DEFERRED] = buffer
    return buffer


def stop_deferring(session: AsyncSession) -> None:
    session.info.pop(_DEFERRED, None)


async def _observe(session: AsyncSession, graph: IdentityGraph, sightings: list[Sighting]) -> None:
    buffer = session.info.get(_DEFERRED)
    if buffer is not None:
        buffer.extend(sightings)
    else:
        await graph.observe(session, sightings)


def live_event_id(dedupe_key: str) -> str:
    """Stable id of the event row a callback produces (the same callback → the same id)."""
    return "cb:" + hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class LiveFact:
    """One customer event as a callback reports it (clear identifiers; no phones come live)."""

    dedupe_key: str
    type: str
    occurred_at: datetime  # naive business-local time
    channel: str  # oa | wecom
    appid: str | None = None
    openid: str | None = None
    unionid: str | None = None
    external_userid: str | None = None
    guide_id: str | None = None
    qr_state: str | None = None
    card_id: str | None = None
    coupon_code: str | None = None


@dataclass(frozen=True)
class Recorded:
    event_id: str  # the row holding the fact (an imported row's id when it was there first)
    new: bool


async def record_fact(session: AsyncSession, graph: IdentityGraph, fact: LiveFact) -> Recorded:
    """Insert the fact (once) and observe its identifiers; `graph.resolve` attributes it."""
    # Lock first: rows that will be observed are written under the identity lock, so concurrent
    # writers queue instead of deadlocking with resolve().
    await graph.lock(session)
    event_id = live_event_id(fact.dedupe_key)
    key = fact_key(
        fact.type,
        fact.occurred_at,
        appid=fact.appid,
        openid=fact.openid,
        external_userid=fact.external_userid,
        guide_id=fact.guide_id,
        card_id=fact.card_id,
        coupon_code=fact.coupon_code,
        event_id=event_id,
    )
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(EVENT)
    statement = (
        insert.values(
            event_id=event_id,
            fact_key=key,
            person_id=None,
            type=fact.type,
            occurred_at=fact.occurred_at,
            channel=fact.channel,
            appid=fact.appid,
            openid=fact.openid,
            unionid=fact.unionid,
            external_userid=fact.external_userid,
            guide_id=fact.guide_id,
            qr_state=fact.qr_state,
            card_id=fact.card_id,
            coupon_code=fact.coupon_code,
            origin="callback",
        )
        .on_conflict_do_nothing()
        .returning(EVENT.c.event_id)
    )
    inserted = (await session.execute(statement)).scalar_one_or_none()
    holder = inserted
    if holder is None:
        # The fact is already a row (imported, or this callback processed before): observe under
        # that row, so identifiers only the callback carries (e.g. a unionid) join its person.
        holder = (
            await session.execute(select(EVENT.c.event_id).where(EVENT.c.fact_key == key))
        ).scalar_one_or_none() or event_id
        if fact.unionid:
            # An imported row may lack the unionid the callback carries: complete, never overwrite.
            await session.execute(
                update(EVENT).where(EVENT.c.event_id == holder, EVENT.c.unionid.is_(None)).values(unionid=fact.unionid)
            )
    identifiers = identifiers_of(
        unionid=fact.unionid, appid=fact.appid, openid=fact.openid, external_userid=fact.external_userid
    )
    if identifiers:
        await _observe(session, graph, [Sighting("event", holder, identifiers)])
    return Recorded(event_id=holder, new=inserted is not None)


async def link_identifiers(
    session: AsyncSession, graph: IdentityGraph, dedupe_key: str, identifiers: list[Identifier]
) -> None:
    """Observe identifiers a callback shows together when it is no customer event of its own
    (e.g. a WeCom contact edited: its unionid). The observation is keyed like the event it would
    have been, so a replay observes nothing new."""
    if len(identifiers) < 2:
        return
    await graph.lock(session)
    await _observe(session, graph, [Sighting("event", live_event_id(dedupe_key), identifiers)])
