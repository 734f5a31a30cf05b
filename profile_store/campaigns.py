"""Campaign SQL (issue 6): campaign rows, opt-outs, and the set-based planning statements.

Planning one wave of a campaign is four statements, whatever the number of persons, all inside
the caller's transaction (campaigns.plan decides the parameters and reads the figures):

1. `stage_segment` / `stage_wave`: the wave's persons, their variant and whether they are in the
   control group into a temporary table (`_qm_cp_seg`), from the compiled segment and the
   variants' compiled `when` segments (LEFT JOINs, first match wins), or, for a later wave, from
   the wave-0 rows (the md5 is computed here, once a person: inlined into the decision's CASEs
   it was computed four times, 7 s of 24 at 1 M persons);
2. `decide`: each staged person's outcome, channel (their preferred lane by tags.md 偏好渠道
   when open to them, else the fixed order: `PREFERRED_LANE`), guide and store into `_qm_cp_plan`: one
   INSERT … SELECT over the staged persons LEFT JOINed with pre-aggregated sets (opt-outs,
   phones, external_userids, latest held add_contact, recent OA messages, cap and quota counts)
   — hash joins on PostgreSQL, never a subplan per person;
3. `write_targets`: `INSERT INTO campaign_target … ON CONFLICT DO NOTHING` (planning twice writes
   nothing the second time);
4. counts by outcome, channel and variant (`decided_counts` for a preview, `target_counts` for
   what is stored).

The control bucket of a person in a campaign is `int(md5(f"{key}{person_id}")[:8], 16) % 10000`
(key = "<campaign id>:"): PostgreSQL computes it with md5() and a bit(32) cast, SQLite with the
same Python function registered on the connection as `qm_bucket` (SQLite has no md5), so both
back-ends put exactly the same persons in the control group.

Measured at 1 M persons on PostgreSQL (bench/campaign_plan.py, 2 cores): the plan takes 27–34 s
against 7–9 s for a bare INSERT … SELECT of the same rows; the rows' own write (one PK and two
indexes on campaign_target) is the largest single part after the decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, case, column, insert, literal, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.functions import FunctionElement

from profile_store.bulk import analyze, dialect_of, rowcount, temp_table
from profile_store.db import lock_for
from profile_store.identity import IdentityGraph
from profile_store.models import Campaign
from profile_store.times import read_utc as aware
from profile_store.times import utc as _utc

# Planning is serialised across processes: two campaigns planned at once would each count the
# other's rows as absent and together exceed the frequency cap.
LOCK_CAMPAIGN_PLAN = 7_240_006
BUCKETS = 10_000
# outcomes of campaign_target rows
PLANNED, CONTROL, OPTED_OUT, UNREACHABLE, CAPPED = "planned", "control", "opted_out", "unreachable", "capped"
HELD_OUTCOMES = (CONTROL, OPTED_OUT, UNREACHABLE, CAPPED)
# Rows that never reached the customer (without a sent_at): they count for no cap.
ENDED_UNSENT = ("failed", "expired")
# Every other outcome is a message: planned, in flight at the dispatcher (e.g. sending), sent,
# delivered. A row counts for the cap and the quota by its sent_at once sent, else by its due_at.
_NOT_PENDING = ", ".join(f"'{o}'" for o in (*HELD_OUTCOMES, *ENDED_UNSENT))
OPT_OUT_CHANNELS = ("wecom", "oa", "sms", "all")

_AT = DateTime(timezone=True)
_LOCAL = DateTime()
SEG = "_qm_cp_seg"
PLAN = "_qm_cp_plan"


def bucket(key: str, person_id: str) -> int:
    """A person's control bucket (0..9999) for a campaign key: the rule both back-ends compute."""
    return int(hashlib.md5(f"{key}{person_id}".encode()).hexdigest()[:8], 16) % BUCKETS


class _Bucket(FunctionElement[int]):
    """bucket(key, person_id) in SQL (see `_bucket_sql`)."""

    type = Integer()
    name = "qm_bucket"
    inherit_cache = True


@compiles(_Bucket)
def _bucket_default(element: Any, compiler: Any, **kw: Any) -> str:
    key, person = (compiler.process(c, **kw) for c in element.clauses)
    return _bucket_sql("sqlite", key, person)


@compiles(_Bucket, "postgresql")
def _bucket_pg(element: Any, compiler: Any, **kw: Any) -> str:
    key, person = (compiler.process(c, **kw) for c in element.clauses)
    return _bucket_sql("postgresql", key, person)


# ---------------------------------------------------------------------------------- campaigns


async def create_campaign(session: AsyncSession, campaign: Campaign) -> int:
    """Store a campaign (a draft until confirmed); its id."""
    if campaign.send_at is not None:
        campaign.send_at = _utc(campaign.send_at)
    session.add(campaign)
    await session.flush()
    assert campaign.id is not None
    return campaign.id


async def name_taken(session: AsyncSession, name: str) -> bool:
    found = await session.execute(text("SELECT 1 FROM campaign WHERE name = :n"), {"n": name})
    return found.first() is not None


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign | None:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is not None and campaign.send_at is not None:
        campaign.send_at = aware(campaign.send_at)
    return campaign


async def opt_out(
    session: AsyncSession, person_id: str, channel: str, reason: str, *, at: datetime | None = None
) -> bool:
    """Record that a person wants nothing more through `channel` (wecom | oa | sms | all), for good:
    the first opt-out of a channel is kept. True when it is new."""
    if channel not in OPT_OUT_CHANNELS:
        raise ValueError(f"opt-out channel must be one of {OPT_OUT_CHANNELS}, not {channel!r}")
    result = await session.execute(
        text(
            "INSERT INTO opt_out (person_id, channel, at, reason) VALUES (:person, :channel, :at, :reason)"
            " ON CONFLICT (person_id, channel) DO NOTHING"
        ).bindparams(bindparam("at", type_=_AT)),
        {"person": person_id, "channel": channel, "at": _utc(at or datetime.now(UTC)), "reason": reason[:200]},
    )
    return rowcount(result) > 0


async def opt_out_follower(
    session: AsyncSession, graph: IdentityGraph, appid: str, openid: str, *, reason: str
) -> bool:
    """An official-account follower opts out of its marketing ("退订", or unfollowing). A follower
    is known by their follow (a person already); an openid never seen belongs to nobody yet: False."""
    person = await graph.person_for(session, "openid", f"{appid}/{openid}")
    if person is None:
        return False
    return await opt_out(session, person, "oa", reason)


async def lock_planning(session: AsyncSession) -> None:
    await lock_for(session, LOCK_CAMPAIGN_PLAN)


# ---------------------------------------------------------------------------------- 1. staging


def _bucket_sql(dialect: str, key: str, person: str) -> str:
    """SQL of `bucket(key, person)`: the same number on both back-ends."""
    if dialect == "postgresql":
        return f"(('x' || substr(md5({key} || {person}), 1, 8))::bit(32)::bigint % {BUCKETS})"
    return f"qm_bucket({key} || {person})"


async def _tables(session: AsyncSession) -> None:
    """The staging tables (private to the connection) and, on SQLite, `qm_bucket`. On PostgreSQL
    the planning statements get room to hash and sort in memory (work_mem) and no JIT (compiling
    these statements costs ~2 s at 1 M persons and saves nothing): for this transaction only."""
    if dialect_of(session) == "postgresql":
        await session.execute(text("SET LOCAL work_mem = '128MB'"))
        await session.execute(text("SET LOCAL jit = off"))
    await temp_table(session, SEG, "person_id TEXT PRIMARY KEY, variant TEXT, ctl INTEGER")
    await temp_table(
        session,
        PLAN,
        "person_id TEXT PRIMARY KEY, variant TEXT, store_id TEXT, guide_id TEXT, outcome TEXT, channel TEXT,"
        " quota_hit INTEGER",
    )
    if dialect_of(session) == "sqlite":
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.create_function("qm_bucket", 1, lambda s: bucket("", s), deterministic=True)


async def stage_segment(
    session: AsyncSession,
    segment: Select[Any],
    variants: list[tuple[str, Select[Any] | None]],
    *,
    hash_key: str,
    control_cut: int,
) -> tuple[int, int]:
    """Stage the persons of a compiled segment with their variant — the first variant whose
    compiled `when` holds the person, a variant without `when` holding everyone left — and
    whether they are in the control group (bucket(hash_key, person) < control_cut).
    (staged persons, persons of the segment no variant holds — these are dropped)."""
    await _tables(session)
    seg = segment.subquery("s")
    source: Any = seg
    whens: list[tuple[Any, str]] = []
    fallback: str | None = None
    for i, (name, when) in enumerate(variants):
        if when is None:
            fallback = name
            break
        v = when.subquery(f"v{i}")
        source = source.outerjoin(v, v.c.person_id == seg.c.person_id)
        whens.append((v.c.person_id.is_not(None), name))
    chosen: Any = case(*whens, else_=fallback) if whens else bindparam("fallback", fallback, type_=String())
    staged = table(SEG, column("person_id", String()), column("variant", String()), column("ctl", Integer()))
    in_control = case((_Bucket(literal(hash_key, String()), seg.c.person_id) < control_cut, 1), else_=0)
    await session.execute(
        insert(staged).from_select(
            ["person_id", "variant", "ctl"], select(seg.c.person_id, chosen, in_control).select_from(source)
        )
    )
    dropped = int((await session.execute(text(f"SELECT count(*) FROM {SEG} WHERE variant IS NULL"))).scalar_one())
    if dropped:
        await session.execute(text(f"DELETE FROM {SEG} WHERE variant IS NULL"))
    total = int((await session.execute(text(f"SELECT count(*) FROM {SEG}"))).scalar_one())
    await analyze(session, SEG)
    return total, dropped


def _local(session: AsyncSession, expr: str) -> str:
    """SQL turning a stored system timestamp (UTC) into naive local time (:tz / :tz_offset)."""
    if dialect_of(session) == "postgresql":
        return f"({expr} AT TIME ZONE :tz)"
    return f"strftime('%Y-%m-%d %H:%M:%f', {expr}, :tz_offset)"


async def stage_wave(
    session: AsyncSession,
    campaign_id: int,
    *,
    only_not_bought: bool,
    hash_key: str,
    control_cut: int,
    now_local: datetime,
    tz: str,
    tz_offset_seconds: int,
) -> int:
    """Stage a later wave's persons: the campaign's wave-0 persons that were sent a message, and
    its wave-0 control group (so the held-out stay held out and comparable); with
    `only_not_bought`, those without a paid order after their wave-0 send (for the control group:
    after the wave-0 due time) up to now. Their wave-0 variant is kept."""
    await _tables(session)
    bought = ""
    if only_not_bought:
        since = _local(session, "COALESCE(t.sent_at, t.due_at)")
        bought = (
            " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.person_id = t.person_id AND o.status = 'paid'"
            f" AND o.paid_at > {since} AND o.paid_at <= :now_local)"
        )
    result = await session.execute(
        text(
            f"INSERT INTO {SEG} (person_id, variant, ctl) SELECT t.person_id, t.variant,"
            f" CASE WHEN {_bucket_sql(dialect_of(session), ':hkey', 't.person_id')} < :cut THEN 1 ELSE 0 END"
            " FROM campaign_target t"
            " WHERE t.campaign_id = :cid AND t.wave = 0 AND (t.sent_at IS NOT NULL OR t.outcome = 'control')"
            f"{bought}"
        ).bindparams(bindparam("now_local", type_=_LOCAL)),
        {
            "cid": campaign_id, "hkey": hash_key, "cut": control_cut, "now_local": now_local, "tz": tz,
            "tz_offset": f"{tz_offset_seconds:+d} seconds",
        },
    )
    await analyze(session, SEG)
    return rowcount(result)


# ---------------------------------------------------------------------------------- 2. deciding


@dataclass(frozen=True)
class Decision:
    """Everything one planning pass needs, decided in Python (campaigns.plan) and bound once."""

    campaign_id: int  # the rows' campaign (cap and quota leave its own wave's rows out)
    wave: int
    hash_key: str  # control bucket key, "<campaign id>:"
    control_cut: int  # buckets below are the control group (10 % → 1000)
    due_at: datetime  # aware
    due_local: datetime  # naive local
    now_local: datetime  # naive local: events after it do not exist yet
    custom_since_local: datetime  # naive local: an OA message after it opens the 48-hour window
    allow_wecom: bool
    allow_oa: bool
    allow_sms: bool
    cap_messages: int
    cap_days: int
    month_start: datetime  # aware: the due date's local calendar month
    month_end: datetime
    month_days: int  # WeCom's per-customer quota that month


# tags.md 偏好渠道 (where the person buys most) → the lane that reaches them best: a store buyer
# through their guide, a mini-program or OA-mall buyer through the official account, an e-shop
# buyer by SMS. Other values (none) keep the fixed order wecom, oa_custom, oa_template, sms.
PREFERRED_LANE = {"门店": "wecom", "小程序": "oa", "公众号商城": "oa", "电商": "sms"}


def _preferred_lane_sql() -> str:
    """SQL of the lane a person prefers ('' without a preference), from profile.preferred_channel."""
    whens = " ".join(f"WHEN '{value}' THEN '{lane}'" for value, lane in PREFERRED_LANE.items())
    return f"CASE p.preferred_channel {whens} ELSE '' END"


def _decide_sql(dialect: str) -> str:
    if dialect == "postgresql":
        held = "strpos(p2.guides, '\"' || e.guide_id || '\"') > 0"
    else:
        held = "instr(p2.guides, '\"' || e.guide_id || '\"') > 0"
    # A person's other marketing messages near this send: sent within cap_days of it, or still
    # to be sent (planned, in flight) with a due time within cap_days of it (all campaigns and
    # journeys, this wave aside).
    near = (
        "((sent_at IS NOT NULL AND sent_at > :cap_lo AND sent_at < :cap_hi)"
        f" OR (sent_at IS NULL AND outcome NOT IN ({_NOT_PENDING}) AND due_at > :cap_lo AND due_at < :cap_hi))"
    )
    in_month = (
        "((sent_at IS NOT NULL AND sent_at >= :m0 AND sent_at < :m1)"
        f" OR (sent_at IS NULL AND outcome NOT IN ({_NOT_PENDING}) AND due_at >= :m0 AND due_at < :m1))"
    )
    flags = f"""
SELECT s.person_id AS person_id, s.variant AS variant, COALESCE(p.preferred_store, '') AS store_id,
  s.ctl AS ctl, {_preferred_lane_sql()} AS pref,
  CASE WHEN :allow_w = 1 AND g.guide_id IS NOT NULL AND eu.person_id IS NOT NULL THEN 1 ELSE 0 END AS r_w,
  COALESCE(g.guide_id, '') AS guide,
  CASE WHEN :allow_oa = 1 AND m.person_id IS NOT NULL THEN 1 ELSE 0 END AS r_oc,
  CASE WHEN :allow_oa = 1 AND p.oa_follower = '是' THEN 1 ELSE 0 END AS r_ot,
  CASE WHEN :allow_sms = 1 AND ph.person_id IS NOT NULL THEN 1 ELSE 0 END AS r_s,
  COALESCE(oo.o_w, 0) AS o_w, COALESCE(oo.o_oa, 0) AS o_oa, COALESCE(oo.o_s, 0) AS o_s,
  COALESCE(oo.o_all, 0) AS o_all,
  CASE WHEN cap.person_id IS NOT NULL THEN 1 ELSE 0 END AS capped,
  CASE WHEN q.person_id IS NOT NULL THEN 1 ELSE 0 END AS q_full
FROM {SEG} s
LEFT JOIN profile p ON p.person_id = s.person_id
LEFT JOIN (
  SELECT person_id, guide_id FROM (
    SELECT e.person_id AS person_id, e.guide_id AS guide_id,
      ROW_NUMBER() OVER (PARTITION BY e.person_id ORDER BY e.occurred_at DESC, e.event_id DESC) AS rn
    FROM event e JOIN {SEG} s2 ON s2.person_id = e.person_id JOIN profile p2 ON p2.person_id = e.person_id
    WHERE e.type = 'add_contact' AND e.guide_id IS NOT NULL AND e.guide_id <> '' AND e.occurred_at <= :now_local
      AND p2.guides IS NOT NULL AND {held}
  ) latest WHERE rn = 1
) g ON g.person_id = s.person_id
LEFT JOIN (
  SELECT DISTINCT person_id FROM identity_node
  WHERE kind = 'external_userid' AND shared = false AND person_id IS NOT NULL
) eu ON eu.person_id = s.person_id
LEFT JOIN (
  SELECT DISTINCT person_id FROM event
  WHERE type = 'message' AND occurred_at > :custom_since AND occurred_at <= :now_local
    AND appid IS NOT NULL AND appid <> '' AND openid IS NOT NULL AND openid <> '' AND person_id IS NOT NULL
) m ON m.person_id = s.person_id
LEFT JOIN (
  SELECT DISTINCT person_id FROM identity_node WHERE kind = 'phone' AND shared = false AND person_id IS NOT NULL
) ph ON ph.person_id = s.person_id
LEFT JOIN (
  SELECT person_id,
    MAX(CASE WHEN channel = 'wecom' THEN 1 ELSE 0 END) AS o_w,
    MAX(CASE WHEN channel = 'oa' THEN 1 ELSE 0 END) AS o_oa,
    MAX(CASE WHEN channel = 'sms' THEN 1 ELSE 0 END) AS o_s,
    MAX(CASE WHEN channel = 'all' THEN 1 ELSE 0 END) AS o_all
  FROM opt_out GROUP BY person_id
) oo ON oo.person_id = s.person_id
LEFT JOIN (
  SELECT person_id FROM campaign_target
  WHERE NOT (campaign_id = :cid AND wave = :wave) AND service = false AND {near}
  GROUP BY person_id HAVING count(*) >= :cap_n
) cap ON cap.person_id = s.person_id
LEFT JOIN (
  SELECT person_id FROM campaign_target
  WHERE channel = 'wecom' AND NOT (campaign_id = :cid AND wave = :wave) AND {in_month}
  GROUP BY person_id HAVING count(*) >= :month_days
) q ON q.person_id = s.person_id
"""
    # The person's preferred lane when it is open to them (reachable, not opted out, WeCom's
    # quota not used up), else the fixed order: `pch` is the former, `ch` the channel used.
    open_w = "r_w = 1 AND o_w = 0 AND q_full = 0"
    preferred = f"""
SELECT f.*,
  CASE WHEN pref = 'wecom' AND {open_w} THEN 'wecom'
       WHEN pref = 'oa' AND r_oc = 1 AND o_oa = 0 THEN 'oa_custom'
       WHEN pref = 'oa' AND r_ot = 1 AND o_oa = 0 THEN 'oa_template'
       WHEN pref = 'sms' AND r_s = 1 AND o_s = 0 THEN 'sms' END AS pch
FROM ({flags}) f
"""
    chosen = f"""
SELECT pf.*,
  CASE WHEN pch IS NOT NULL THEN pch
       WHEN {open_w} THEN 'wecom'
       WHEN r_oc = 1 AND o_oa = 0 THEN 'oa_custom'
       WHEN r_ot = 1 AND o_oa = 0 THEN 'oa_template'
       WHEN r_s = 1 AND o_s = 0 THEN 'sms' END AS ch
FROM ({preferred}) pf
"""
    outcome = f"""
SELECT c.*,
  CASE WHEN ctl = 1 THEN 'control'
       WHEN o_all = 1 OR (r_w + r_oc + r_ot + r_s > 0 AND (r_w = 0 OR o_w = 1)
                          AND (r_oc + r_ot = 0 OR o_oa = 1) AND (r_s = 0 OR o_s = 1)) THEN 'opted_out'
       WHEN r_w + r_oc + r_ot + r_s = 0 THEN 'unreachable'
       WHEN capped = 1 OR ch IS NULL THEN 'capped'
       ELSE 'planned' END AS outcome
FROM ({chosen}) c
"""
    return f"""
INSERT INTO {PLAN} (person_id, variant, store_id, guide_id, outcome, channel, quota_hit)
SELECT person_id, variant, store_id,
  CASE WHEN outcome = 'planned' AND ch = 'wecom' THEN guide ELSE '' END,
  outcome,
  CASE WHEN outcome = 'planned' THEN ch ELSE '' END,
  CASE WHEN ctl = 0 AND o_all = 0 AND r_w = 1 AND o_w = 0 AND q_full = 1 AND pch IS NULL THEN 1 ELSE 0 END
FROM ({outcome}) d
"""


async def decide(session: AsyncSession, d: Decision) -> int:
    """Decide every staged person's outcome, channel, guide and store (into `_qm_cp_plan`)."""
    cap_span = timedelta(days=d.cap_days)
    statement = text(_decide_sql(dialect_of(session))).bindparams(
        bindparam("cap_lo", type_=_AT),
        bindparam("cap_hi", type_=_AT),
        bindparam("m0", type_=_AT),
        bindparam("m1", type_=_AT),
        bindparam("now_local", type_=_LOCAL),
        bindparam("custom_since", type_=_LOCAL),
    )
    result = await session.execute(
        statement,
        {
            "allow_w": int(d.allow_wecom),
            "allow_oa": int(d.allow_oa),
            "allow_sms": int(d.allow_sms),
            "now_local": d.now_local,
            "custom_since": d.custom_since_local,
            "cid": d.campaign_id,
            "wave": d.wave,
            "cap_lo": _utc(d.due_at) - cap_span,
            "cap_hi": _utc(d.due_at) + cap_span,
            # a cap of 0 messages holds everyone back
            "cap_n": max(d.cap_messages, 0),
            "m0": _utc(d.month_start),
            "m1": _utc(d.month_end),
            "month_days": d.month_days,
        },
    )
    if d.cap_messages <= 0:
        await session.execute(text(f"UPDATE {PLAN} SET outcome = 'capped', channel = '', guide_id = ''"
                                   " WHERE outcome = 'planned'"))
    return rowcount(result)


async def decided_counts(session: AsyncSession) -> list[tuple[str, str, str, int, int]]:
    """(outcome, channel, variant, quota_hit, persons) of the decided persons."""
    rows = await session.execute(
        text(
            f"SELECT outcome, channel, variant, quota_hit, count(*) FROM {PLAN}"
            " GROUP BY outcome, channel, variant, quota_hit"
        )
    )
    return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


async def clear_staging(session: AsyncSession) -> None:
    await session.execute(text(f"DELETE FROM {SEG}"))
    await session.execute(text(f"DELETE FROM {PLAN}"))


# ---------------------------------------------------------------------------------- 3. writing


async def write_targets(session: AsyncSession, campaign_id: int, wave: int, due_at: datetime) -> int:
    """One campaign_target row per decided person; rows already there are kept as they are."""
    result = await session.execute(
        text(
            "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
            " outcome, due_at, claimed_until, attempts, sent_at, delivered_at, last_error)"
            f" SELECT :cid, :wave, person_id, variant, channel, guide_id, store_id, outcome, :due, NULL, 0,"
            f" NULL, NULL, '' FROM {PLAN} WHERE true"
            " ON CONFLICT (campaign_id, wave, person_id) DO NOTHING"
        ).bindparams(bindparam("due", type_=_AT)),
        {"cid": campaign_id, "wave": wave, "due": _utc(due_at)},
    )
    return rowcount(result)


async def record_target(
    session: AsyncSession,
    campaign_id: int,
    wave: int,
    person_id: str,
    *,
    channel: str,
    outcome: str,
    due_at: datetime | None = None,
    sent_at: datetime | None = None,
    variant: str = "",
) -> None:
    """Write (or overwrite) one campaign_target row: a journey's message, a send recorded by the
    dispatcher, history in tests. Times are aware (stored as UTC)."""
    await session.execute(
        text(
            "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
            " outcome, due_at, claimed_until, attempts, sent_at, delivered_at, last_error)"
            " VALUES (:cid, :wave, :person, :variant, :channel, '', '', :outcome, :due, NULL, 0, :sent, NULL, '')"
            " ON CONFLICT (campaign_id, wave, person_id) DO UPDATE SET channel = excluded.channel,"
            " outcome = excluded.outcome, due_at = excluded.due_at, sent_at = excluded.sent_at"
        ).bindparams(bindparam("due", type_=_AT), bindparam("sent", type_=_AT)),
        {
            "cid": campaign_id, "wave": wave, "person": person_id, "variant": variant, "channel": channel,
            "outcome": outcome, "due": None if due_at is None else _utc(due_at),
            "sent": None if sent_at is None else _utc(sent_at),
        },
    )


async def target_counts(session: AsyncSession, campaign_id: int, wave: int) -> list[tuple[str, str, str, int]]:
    """(outcome, channel, variant, rows) of a campaign wave's stored rows."""
    rows = await session.execute(
        text(
            "SELECT outcome, channel, variant, count(*) FROM campaign_target WHERE campaign_id = :cid AND wave = :wave"
            " GROUP BY outcome, channel, variant"
        ),
        {"cid": campaign_id, "wave": wave},
    )
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


async def targets(session: AsyncSession, campaign_id: int, wave: int | None = None) -> list[dict[str, Any]]:
    """A campaign's rows (by wave, person), for operators and tests."""
    where = " AND wave = :wave" if wave is not None else ""
    rows = await session.execute(
        text(
            "SELECT wave, person_id, variant, channel, guide_id, store_id, outcome, due_at, sent_at"
            f" FROM campaign_target WHERE campaign_id = :cid{where} ORDER BY wave, person_id"
        ),
        {"cid": campaign_id, "wave": wave},
    )
    return [
        {
            "wave": r[0], "person_id": r[1], "variant": r[2], "channel": r[3], "guide_id": r[4], "store_id": r[5],
            "outcome": r[6], "due_at": aware(r[7]), "sent_at": aware(r[8]),
        }
        for r in rows
    ]


__all__ = [
    "BUCKETS",
    "ENDED_UNSENT",
    "HELD_OUTCOMES",
    "LOCK_CAMPAIGN_PLAN",
    "Decision",
    "aware",
    "bucket",
    "clear_staging",
    "create_campaign",
    "decide",
    "decided_counts",
    "get_campaign",
    "lock_planning",
    "opt_out",
    "record_target",
    "stage_segment",
    "stage_wave",
    "target_counts",
    "targets",
    "write_targets",
]


# ---------------------------------------------------------------------------------- pause, resume, cancel

# action → (statuses it applies to, the status it leaves)
STATUS_CHANGES = {
    "pause": (("scheduled", "running"), "paused"),
    "resume": (("paused",), "scheduled"),
    "cancel": (("draft", "scheduled", "running", "paused"), "cancelled"),
}


@dataclass(frozen=True)
class CampaignState:
    campaign_id: int
    name: str
    status: str
    waiting: int  # planned rows not sent yet


async def campaign_state(session: AsyncSession, name: str) -> CampaignState | None:
    row = (
        await session.execute(
            text(
                "SELECT c.id, c.name, c.status, (SELECT COUNT(*) FROM campaign_target t WHERE t.campaign_id = c.id"
                " AND t.outcome = 'planned') FROM campaign c WHERE c.name = :n"
            ),
            {"n": name},
        )
    ).first()
    return None if row is None else CampaignState(int(row[0]), str(row[1]), str(row[2]), int(row[3]))


async def change_status(session: AsyncSession, campaign_id: int, action: str) -> str | None:
    """Pause, resume or cancel; the new status, or None when the campaign's status does not allow
    it. A cancelled campaign's waiting rows end as `expired` at once (nothing of it is sent)."""
    allowed, new = STATUS_CHANGES[action]
    changed = await session.execute(
        text("UPDATE campaign SET status = :new WHERE id = :c AND status IN :allowed").bindparams(
            bindparam("allowed", expanding=True)
        ),
        {"new": new, "c": campaign_id, "allowed": list(allowed)},
    )
    if not rowcount(changed):
        return None
    if new == "cancelled":
        await session.execute(
            text(
                "UPDATE campaign_target SET outcome = 'expired', claimed_until = NULL,"
                " last_error = 'campaign cancelled' WHERE campaign_id = :c AND outcome = 'planned'"
            ),
            {"c": campaign_id},
        )
    return new


async def latest_campaign(session: AsyncSession) -> tuple[int, str] | None:
    """The campaign confirmed last (kind campaign): (id, name)."""
    row = (
        await session.execute(text("SELECT id, name FROM campaign WHERE kind = 'campaign' ORDER BY id DESC LIMIT 1"))
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def campaigns_with_later_waves(session: AsyncSession) -> list[tuple[int, str, datetime | None]]:
    """(id, waves JSON, send_at) of scheduled or running campaigns that have more than one wave."""
    rows = await session.execute(
        text(
            "SELECT id, waves, send_at, confirmed_at FROM campaign WHERE kind = 'campaign'"
            " AND status IN ('scheduled', 'running') AND waves IS NOT NULL AND waves LIKE '%after_days%'"
        )
    )
    return [(int(r[0]), str(r[1]), aware(r[2]) or aware(r[3])) for r in rows.all()]


async def planned_waves(session: AsyncSession, campaign_id: int) -> set[int]:
    rows = await session.execute(
        text("SELECT DISTINCT wave FROM campaign_target WHERE campaign_id = :c"), {"c": campaign_id}
    )
    return {int(r[0]) for r in rows.all()}
