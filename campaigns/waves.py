"""Later waves of a campaign ("T+1, T+3, T+15 for those who have not bought"): planned when they
fall due, by a scheduled job, through the planner (`plan_wave`: the wave-0 persons who were sent
a message and the control group, without those who bought since, when the wave says so).

A wave is planned once: a wave that has rows is never planned again, and `plan_wave` writes with
ON CONFLICT DO NOTHING, so two `serve` processes running the job at once write each row once."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from campaigns.plan import PlanRules, plan_wave
from profile_store import campaigns as store
from profile_store.db import Database


async def plan_due_waves(
    db: Database, *, now: datetime, today: date, rules: PlanRules | None = None
) -> dict[tuple[int, int], int]:
    """Plan every later wave whose time has come; (campaign id, wave) → rows written."""
    async with db.read() as session:
        candidates = await store.campaigns_with_later_waves(session)
        planned = {cid: await store.planned_waves(session, cid) for cid, _w, _s in candidates}
    written: dict[tuple[int, int], int] = {}
    for campaign_id, waves, started in candidates:
        if started is None or 0 not in planned[campaign_id]:
            continue  # wave 0 not planned yet: nothing to follow up
        for spec in json.loads(waves or "[]"):
            wave = int(spec.get("wave", 0))
            due = started + timedelta(days=float(spec.get("after_days", 0) or 0))
            if wave > 0 and wave not in planned[campaign_id] and due <= now:
                report = await plan_wave(db, campaign_id, wave, now=now, today=today, rules=rules)
                written[(campaign_id, wave)] = report.written
    return written
