"""Journey SQL (issue 6 item 3): journey rows, their switches and content, and the set-based
trigger statements that find who enters a journey step (campaigns.journeys decides the times).

A journey is a `campaign` row of kind `journey`; each entry is a `campaign_target` row of
(journey id, wave, person), written through the planner's own pipeline
(profile_store.campaigns: stage → decide → counts), so the control group, opt-outs, channel
choice, caps and quiet hours are the planner's. Only the staging (who, which wave) is here.

Wave keys: `wave = entry_key × 10 + step`, entry_key an integer naming the entry:
- 新粉欢迎 (welcome): the local date of the follow, YYYYMMDD; steps 0, 1, 2;
- 加购提醒 (cart): the local date of the add_cart, YYYYMMDD; step 0;
- 券到期提醒 (coupon): the local expiry date of the coupon, YYYYMMDD; step 0;
- 生日月 (birthday): the year, YYYY; step 0 (once a year);
- 沉睡唤醒 (dormant): the local date of the run that entered the person, YYYYMMDD; step 0 (the
  90-day rule is a NOT EXISTS over the journey's rows, not the key).
So a person enters again later (another day's add_cart, next year's birthday) under a new wave,
and a re-run finds the same (journey, wave, person) and writes nothing (ON CONFLICT DO NOTHING;
candidates already entered are also left out before deciding). Several candidate entries of one
person in one run give one entry (the latest key; the earliest expiry for coupons).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, bindparam, column, select, table, text
from sqlalchemy import String as _String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store import campaigns as store
from profile_store.bulk import analyze, dialect_of, rowcount, temp_table
from profile_store.models import Campaign
from profile_store.times import utc as _utc

WAVES = "_qm_jr_wave"
CURSOR_JOB = "journey"  # job_run rows (job, run_key = journey name): the time of its last run
_AT = store._AT
_LOCAL = store._LOCAL


def entry_key(day: date) -> int:
    """YYYYMMDD of a date, as the SQL below computes it."""
    return day.year * 10_000 + day.month * 100 + day.day


def _day_key(session: AsyncSession, expr: str) -> str:
    """SQL: YYYYMMDD (integer) of a naive local timestamp."""
    if dialect_of(session) == "postgresql":
        return f"CAST(to_char({expr}, 'YYYYMMDD') AS INTEGER)"
    return f"CAST(strftime('%Y%m%d', {expr}) AS INTEGER)"


def _expiry_key(session: AsyncSession, moment: str, days: str) -> str:
    """SQL: YYYYMMDD of the local date of `moment` plus `days` days (a coupon's last valid day)."""
    if dialect_of(session) == "postgresql":
        return f"CAST(to_char(CAST({moment} AS DATE) + {days}, 'YYYYMMDD') AS INTEGER)"
    return f"CAST(strftime('%Y%m%d', date({moment}, printf('%+d days', {days}))) AS INTEGER)"


# ---------------------------------------------------------------------------------- journey rows


@dataclass(frozen=True)
class JourneyRow:
    campaign_id: int
    name: str
    status: str
    variants: str
    control_pct: float
    channel: str
    turned_on_at: datetime | None  # confirmed_at: when it was last turned on
    entries: int  # entries ever (step-0 rows, every outcome)
    sent: int  # messages of it sent (any step)


async def ensure_journey(
    session: AsyncSession, name: str, *, variants: str, segment: str, reading: str, control_pct: float, now: datetime
) -> None:
    """Create the journey's campaign row (off: status paused) unless it exists."""
    campaigns = Campaign.__table__  # type: ignore[attr-defined]
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(campaigns)
    await session.execute(
        insert.values(
            name=name, kind="journey", segment=segment, reading=reading, variants=variants, channel="any",
            waves="[]", send_at=None, control_pct=control_pct, attribution_days=7, status="paused",
            created_by="journey", created_at=_utc(now), confirmed_by="", confirmed_at=None,
        ).on_conflict_do_nothing(index_elements=["name"])
    )


async def journeys(session: AsyncSession, names: list[str]) -> dict[str, JourneyRow]:
    rows = await session.execute(
        text(
            "SELECT c.id, c.name, c.status, c.variants, c.control_pct, c.channel, c.confirmed_at,"
            " (SELECT count(*) FROM campaign_target t WHERE t.campaign_id = c.id AND t.wave % 10 = 0),"
            " (SELECT count(*) FROM campaign_target t WHERE t.campaign_id = c.id AND t.sent_at IS NOT NULL)"
            " FROM campaign c WHERE c.kind = 'journey' AND c.name IN :names"
        ).bindparams(bindparam("names", expanding=True)),
        {"names": names},
    )
    return {
        str(r[1]): JourneyRow(
            int(r[0]), str(r[1]), str(r[2]), str(r[3] or "[]"), float(r[4]), str(r[5] or "any"), store.aware(r[6]),
            int(r[7]), int(r[8]),
        )
        for r in rows
    }


async def set_status(session: AsyncSession, campaign_id: int, *, on: bool, by: str, at: datetime) -> int:
    """Turn a journey on (running; `confirmed_at` = now: triggers count from then) or off (paused:
    its planned, unsent rows end as `expired`, so turning it on later sends nothing stale).
    Returns the rows expired."""
    if on:
        await session.execute(
            text(
                "UPDATE campaign SET status = 'running', confirmed_by = :by, confirmed_at = :at"
                " WHERE id = :c AND status <> 'running'"
            ).bindparams(bindparam("at", type_=_AT)),
            {"c": campaign_id, "by": by, "at": _utc(at)},
        )
        return 0
    await session.execute(text("UPDATE campaign SET status = 'paused' WHERE id = :c"), {"c": campaign_id})
    ended = await session.execute(
        text(
            "UPDATE campaign_target SET outcome = 'expired', claimed_until = NULL, last_error = 'journey turned off'"
            " WHERE campaign_id = :c AND outcome = 'planned'"
        ),
        {"c": campaign_id},
    )
    return rowcount(ended)


async def set_variants(session: AsyncSession, campaign_id: int, variants: str) -> None:
    await session.execute(text("UPDATE campaign SET variants = :v WHERE id = :c"), {"v": variants, "c": campaign_id})


async def last_run(session: AsyncSession, name: str) -> datetime | None:
    row = (
        await session.execute(
            text("SELECT finished_at FROM job_run WHERE job = :job AND run_key = :name"),
            {"job": CURSOR_JOB, "name": name},
        )
    ).first()
    return None if row is None else store.aware(row[0])


async def mark_run(session: AsyncSession, name: str, at: datetime, outcome: str) -> None:
    runs = table(
        "job_run", column("job"), column("run_key"), column("started_at"), column("finished_at"), column("owner"),
        column("outcome"),
    )
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(runs)
    values = {"job": CURSOR_JOB, "run_key": name, "started_at": _utc(at), "finished_at": _utc(at), "owner": "",
              "outcome": outcome[:500]}
    await session.execute(
        insert.values(**values).on_conflict_do_update(
            index_elements=["job", "run_key"],
            set_={"started_at": insert.excluded.started_at, "finished_at": insert.excluded.finished_at,
                  "outcome": insert.excluded.outcome},
        )
    )


# ---------------------------------------------------------------------------------- staging candidates


async def _candidates(session: AsyncSession, campaign_id: int, select_sql: str, params: dict[str, Any],
                      binds: tuple[Any, ...] = ()) -> int:
    """Fill the wave table from `select_sql` (person_id, wave), leaving out the entries already
    written; the number of candidates."""
    await temp_table(session, WAVES, "person_id TEXT PRIMARY KEY, wave INTEGER NOT NULL")
    statement = text(
        f"INSERT INTO {WAVES} (person_id, wave) SELECT c.person_id, c.wave FROM ({select_sql}) c"
        " WHERE NOT EXISTS (SELECT 1 FROM campaign_target x WHERE x.campaign_id = :cid AND x.wave = c.wave"
        " AND x.person_id = c.person_id)"
    ).bindparams(*binds)
    result = await session.execute(statement, {**params, "cid": campaign_id})
    await analyze(session, WAVES)
    return rowcount(result)


def wave_persons() -> Any:
    """The staged candidates as a select of person_id (for store.stage_segment)."""
    waves = table(WAVES, column("person_id", _String()))
    return select(waves.c.person_id)


async def stage_welcome(session: AsyncSession, campaign_id: int, *, since_local: datetime, now_local: datetime) -> int:
    """Step 0 of 新粉欢迎: persons with a `follow` event in (since, now]."""
    key = _day_key(session, "e.occurred_at")
    sql = (
        f"SELECT e.person_id AS person_id, MAX({key}) * 10 AS wave FROM event e"
        " WHERE e.type = 'follow' AND e.person_id IS NOT NULL"
        " AND e.occurred_at > :since AND e.occurred_at <= :now_local"
        " GROUP BY e.person_id"
    )
    return await _candidates(
        session, campaign_id, sql, {"since": since_local, "now_local": now_local},
        (bindparam("since", type_=_LOCAL), bindparam("now_local", type_=_LOCAL)),
    )


async def stage_welcome_step(
    session: AsyncSession,
    campaign_id: int,
    step: int,
    *,
    due_local: datetime,
    now_local: datetime,
    rows_since: datetime,
) -> int:
    """Step `step` of 新粉欢迎: entries whose step-0 message was sent (or held as control), whose
    follow that day is at or before `due_local` (now − the step's days), with no paid order since
    that follow up to now. Only entries whose step-0 row is due after `rows_since` are looked at."""
    key = _day_key(session, "e.occurred_at")
    sql = (
        f"SELECT t.person_id AS person_id, MAX(t.wave) + {int(step)} AS wave FROM campaign_target t"
        " JOIN event e ON e.person_id = t.person_id AND e.type = 'follow'"
        f" AND {key} = t.wave / 10"
        " WHERE t.campaign_id = :cid AND t.wave % 10 = 0 AND t.due_at > :rows_since"
        " AND (t.sent_at IS NOT NULL OR t.outcome = 'control') AND e.occurred_at <= :due_local"
        " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.person_id = t.person_id AND o.status = 'paid'"
        " AND o.paid_at > e.occurred_at AND o.paid_at <= :now_local)"
        " GROUP BY t.person_id"
    )
    return await _candidates(
        session, campaign_id, sql, {"due_local": due_local, "now_local": now_local, "rows_since": _utc(rows_since)},
        (bindparam("due_local", type_=_LOCAL), bindparam("now_local", type_=_LOCAL),
         bindparam("rows_since", type_=_AT)),
    )


async def stage_cart(
    session: AsyncSession, campaign_id: int, *, since_local: datetime, cutoff_local: datetime, now_local: datetime
) -> int:
    """加购提醒: persons with an add_cart (of a sku) in (since, cutoff] — cutoff = now − N hours —
    and no paid order containing that sku after it, up to now."""
    key = _day_key(session, "e.occurred_at")
    sql = (
        f"SELECT e.person_id AS person_id, MAX({key}) * 10 AS wave FROM event e"
        " WHERE e.type = 'add_cart' AND e.person_id IS NOT NULL AND e.sku IS NOT NULL AND e.sku <> ''"
        " AND e.occurred_at > :since AND e.occurred_at <= :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM orders o JOIN order_item i ON i.order_id = o.order_id"
        " WHERE o.person_id = e.person_id AND o.status = 'paid' AND i.sku = e.sku"
        " AND o.paid_at > e.occurred_at AND o.paid_at <= :now_local)"
        " GROUP BY e.person_id"
    )
    return await _candidates(
        session, campaign_id, sql, {"since": since_local, "cutoff": cutoff_local, "now_local": now_local},
        (bindparam("since", type_=_LOCAL), bindparam("cutoff", type_=_LOCAL), bindparam("now_local", type_=_LOCAL)),
    )


async def stage_coupon(
    session: AsyncSession, campaign_id: int, *, first_day: date, last_day: date, now_local: datetime
) -> int:
    """券到期提醒: persons holding a coupon gotten up to now, not consumed nor deleted (by its code,
    up to now), whose last valid day (get date + valid_days, tags.md) is in [first_day, last_day];
    a card with valid_days ≤ 0 or unknown never expires."""
    expiry = _expiry_key(session, "g.occurred_at", "cp.valid_days")
    sql = (
        f"SELECT g.person_id AS person_id, MIN({expiry}) * 10 AS wave FROM event g"
        " JOIN coupon cp ON cp.card_id = g.card_id"
        " WHERE g.type = 'coupon_get' AND g.person_id IS NOT NULL AND cp.valid_days > 0"
        " AND g.occurred_at <= :now_local"
        f" AND {expiry} BETWEEN :k1 AND :k2"
        " AND NOT EXISTS (SELECT 1 FROM event f WHERE f.coupon_code = g.coupon_code AND g.coupon_code <> ''"
        " AND f.type IN ('coupon_consume', 'coupon_delete') AND f.occurred_at <= :now_local)"
        " GROUP BY g.person_id"
    )
    return await _candidates(
        session, campaign_id, sql, {"now_local": now_local, "k1": entry_key(first_day), "k2": entry_key(last_day)},
        (bindparam("now_local", type_=_LOCAL),),
    )


async def stage_birthday(session: AsyncSession, campaign_id: int, *, year: int, month: int) -> int:
    """生日月: persons whose profile's birthday_month is `month`, once in `year` (wave = year × 10)."""
    sql = (
        "SELECT p.person_id AS person_id, CAST(:wave AS INTEGER) AS wave FROM profile p"
        " WHERE p.birthday_month = :month"
    )
    return await _candidates(session, campaign_id, sql, {"wave": year * 10, "month": month})


async def stage_dormant(session: AsyncSession, campaign_id: int, *, day: date, since: datetime) -> int:
    """沉睡唤醒: persons whose lifecycle is 沉睡 and who have no row of this journey due after
    `since` (now − 90 days), whatever its outcome; wave = today's key × 10."""
    sql = (
        "SELECT p.person_id AS person_id, CAST(:wave AS INTEGER) AS wave FROM profile p WHERE p.lifecycle = '沉睡'"
        " AND NOT EXISTS (SELECT 1 FROM campaign_target t WHERE t.campaign_id = :cid AND t.person_id = p.person_id"
        " AND t.due_at > :since)"
    )
    return await _candidates(
        session, campaign_id, sql, {"wave": entry_key(day) * 10, "since": _utc(since)},
        (bindparam("since", type_=_AT),),
    )


# ---------------------------------------------------------------------------------- writing


async def write_entries(session: AsyncSession, campaign_id: int, due_at: datetime, *, service: bool = False) -> int:
    """One campaign_target row per decided person, under its staged wave; existing rows kept.
    `service`: the rows are service messages (campaign_target.service: no frequency cap)."""
    result = await session.execute(
        text(
            "INSERT INTO campaign_target (campaign_id, wave, person_id, variant, channel, guide_id, store_id,"
            " outcome, service, due_at, claimed_until, attempts, sent_at, delivered_at, last_error)"
            f" SELECT :cid, w.wave, p.person_id, p.variant, p.channel, p.guide_id, p.store_id, p.outcome, :service,"
            f" :due, NULL, 0, NULL, NULL, '' FROM {store.PLAN} p JOIN {WAVES} w ON w.person_id = p.person_id"
            " ON CONFLICT (campaign_id, wave, person_id) DO NOTHING"
        ).bindparams(bindparam("due", type_=_AT), bindparam("service", type_=Boolean())),
        {"cid": campaign_id, "due": _utc(due_at), "service": service},
    )
    return rowcount(result)


async def journey_targets(session: AsyncSession, campaign_id: int) -> list[dict[str, Any]]:
    """A journey's rows (every wave), for operators and tests."""
    return await store.targets(session, campaign_id, None)


__all__ = [
    "CURSOR_JOB",
    "JourneyRow",
    "ensure_journey",
    "entry_key",
    "journey_targets",
    "journeys",
    "last_run",
    "mark_run",
    "set_status",
    "set_variants",
    "stage_birthday",
    "stage_cart",
    "stage_coupon",
    "stage_dormant",
    "stage_welcome",
    "stage_welcome_step",
    "wave_persons",
    "write_entries",
]
