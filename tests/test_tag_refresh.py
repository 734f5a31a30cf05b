"""Keeping tags current: changed thresholds, the incremental path (= a full refresh), history,
manual labels (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.importer import import_dir
from profile_store.labels import LabelError, add_label, label_log, labels_of, remove_label
from profile_store.live import LiveFact, defer_observations, record_fact, stop_deferring
from profile_store.models import PersonProfile, TagHistory
from profile_store.tagging.history import last_change, tag_history
from profile_store.tagging.refresh import (
    compute_persons,
    compute_range,
    coupon_holders,
    load_rules,
    refresh_all,
    refresh_persons,
    set_rule,
)
from profile_store.tagging.store import stored_tags
from tests.conftest import SAMPLE_DIR
from tests.tag_kit import VAULT, Retailer, T, person_of


async def stored(db: Database) -> dict[str, PersonProfile]:
    async with db.transaction() as session:
        return {p.person_id: p for p in (await session.execute(select(PersonProfile))).scalars()}


# --------------------------------------------------------------------------- thresholds


async def test_a_changed_threshold_changes_exactly_its_tag(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    await refresh_all(db, T)
    before = {pid: (stored_tags(p), p.aov_365d_fen) for pid, p in (await stored(db)).items()}
    async with db.transaction() as session:
        await set_rule(session, "power_high", "800", by="marketer1")
    report = await refresh_all(db, T)
    after = {pid: stored_tags(p) for pid, p in (await stored(db)).items()}
    # Independently: the sample's expected average order values between the old and new limit.
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        aovs = [p["metrics"].get("aov_365d") for p in map(json.loads, handle)]
    should_change = sum(1 for a in aovs if a is not None and 500 <= a < 800)
    changed = {pid for pid in after if after[pid] != before[pid][0]}
    assert len(changed) == should_change == report.changes > 0
    for pid in changed:
        diff = {k for k in after[pid] if after[pid][k] != before[pid][0].get(k)}
        assert diff == {"purchase_power"}
        assert (before[pid][0]["purchase_power"], after[pid]["purchase_power"]) == ("高", "中")
        assert 50_000 <= (before[pid][1] or 0) <= 80_000
    async with db.transaction() as session:
        history = (await session.execute(select(TagHistory))).scalars().all()
    assert {(h.tag, h.old_value, h.new_value, h.changed_on) for h in history} == {("purchase_power", "高", "中", T)}
    assert len(history) == should_change


async def test_bad_threshold_values_are_refused(db: Database) -> None:
    import pydantic
    import pytest

    await db.migrate()
    async with db.transaction() as session:
        for key, value in (("power_high", "abc"), ("window_days", "0"), ("loyal_level", "V9"), ("coupon_share", "2")):
            with pytest.raises(pydantic.ValidationError):
                await set_rule(session, key, value, by="x")
        with pytest.raises(KeyError):
            await set_rule(session, "no_such_rule", "1", by="x")
        rules = await load_rules(session)
    assert rules.power_high == 500 and rules.window_days == 365  # nothing was stored


# --------------------------------------------------------------------------- incremental = full


_counter = itertools.count()
Step = tuple[str, int, int, int]  # (kind, person, day offset before T, variant)
steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "follow",
                "unfollow",
                "add_contact",
                "del_contact",
                "coupon_get",
                "coupon_consume",
                "link_openid",
                "message",
            ]
        ),
        st.integers(0, 3),
        st.integers(0, 800),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=12,
)


async def _base(db: Database, directory: Path, ns: str) -> None:
    shop = Retailer()
    for i in range(3):
        shop.member(
            f"{ns}M{i}",
            unionid=f"{ns}u{i}",
            level=("V0", "V2", "V4")[i],
            register_time=f"202{4 + i % 2}-0{i + 1}-10 10:00:00",
        )
        for k in range(i + 1):
            shop.order(
                f"{ns}M{i}",
                f"2026-0{k + 2}-1{i} 10:00:00",
                f"{300 * (k + 1) + i}.50",
                items=[(f"SKU{(i + k) % 5}", 1, "100")],
                order_id=f"{ns}O{i}{k}",
            )
    await import_dir(db, shop.write(directory), VAULT)


def _fact(ns: str, step: Step, n: int) -> LiveFact:
    kind, person, days, variant = step
    when = datetime.combine(T - timedelta(days=days), datetime.min.time()) + timedelta(hours=10, seconds=n)
    # Person 3 starts as an openid with no unionid; `link_openid` later joins it to a member.
    unionid = f"{ns}u{person}" if person < 3 or kind == "link_openid" else None
    if kind == "link_openid":
        unionid = f"{ns}u{variant}"
    common: dict[str, Any] = {"dedupe_key": f"{ns}-{n}", "occurred_at": when, "unionid": unionid}
    if kind in ("follow", "unfollow", "link_openid", "message"):
        return LiveFact(
            type="follow" if kind == "link_openid" else kind,
            channel="oa",
            appid="wxA",
            openid=f"{ns}o{person}",
            qr_state=f"store_S00{variant}",
            **common,
        )
    if kind in ("add_contact", "del_contact"):
        return LiveFact(type=kind, channel="wecom", external_userid=f"{ns}wm{person}", guide_id=f"G{variant}", **common)
    return LiveFact(
        type=kind,
        channel="oa",
        appid="wxA",
        openid=f"{ns}o{person}",
        card_id="C30",
        coupon_code=f"{ns}K{variant}",
        **common,
    )


async def _incremental_equals_full(db: Database, tmp_path: Path, events: list[Step]) -> None:
    ns = f"x{next(_counter)}"
    await _base(db, tmp_path / ns, ns)
    graph = IdentityGraph(VAULT)
    await refresh_all(db, T)
    for n, step in enumerate(events):
        async with db.transaction() as session:  # what the dispatcher does for a batch of one
            sightings = defer_observations(session)
            await record_fact(session, graph, _fact(ns, step, n))
            stop_deferring(session)
            touched = await graph.attribute(session, sightings)
            touched |= await coupon_holders(session, [s.source_key for s in sightings])
            await refresh_persons(session, touched, T)
    profiles = await stored(db)
    async with db.transaction() as session:
        full = await compute_range(session, sorted(profiles), T, await load_rules(session))
        active = set((await session.execute(select(func.count()).select_from(PersonProfile))).scalars())
    assert active
    for pid, computed in full.items():
        assert stored_tags(profiles[pid]) == computed.tags, pid
        assert profiles[pid].orders_365d == computed.metrics["orders_365d"]
    assert (await refresh_all(db, T)).changes == 0  # a full refresh finds nothing to change
    assert (await refresh_all(db, T)).dropped == 0  # no profile of a merged-away person was left


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=steps)
async def test_incremental_update_equals_a_full_refresh(db: Database, tmp_path: Path, events: list[Step]) -> None:
    await db.migrate()
    await _incremental_equals_full(db, tmp_path, events)


async def test_persons_chosen_as_a_set_read_as_the_range_does(db: Database, sample_dir: Path) -> None:
    """The incremental path gathers the touched persons as a set (their ids are scattered); a
    full refresh gathers pages of ids. Both must compute the same metrics and tags for a person,
    whoever else is in the set — and chunking a big set changes nothing."""
    import profile_store.tagging.refresh as refresh

    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    async with db.transaction() as session:
        rules = await load_rules(session)
        active = text("SELECT person_id FROM person WHERE status = 'active'")
        everyone = sorted((await session.execute(active)).scalars())
        by_range = await compute_range(session, everyone, T, rules)
        scattered = everyone[::7] + everyone[3::11] + ["no-such-person"]
        by_set = await compute_persons(session, scattered, T, rules)
        refresh.PERSONS_PER_QUERY, saved = 5, refresh.PERSONS_PER_QUERY
        try:
            chunked = await compute_persons(session, scattered, T, rules)
        finally:
            refresh.PERSONS_PER_QUERY = saved
    assert len(everyone) > 50 and set(by_set) == set(scattered)
    for pid in set(scattered) - {"no-such-person"}:
        assert (by_set[pid].metrics, by_set[pid].tags) == (by_range[pid].metrics, by_range[pid].tags), pid
        assert (chunked[pid].metrics, chunked[pid].tags) == (by_range[pid].metrics, by_range[pid].tags), pid
    assert by_set["no-such-person"].metrics["orders_365d"] == 0


# --------------------------------------------------------------------------- history


async def test_history_records_each_change_with_its_date(db: Database, tmp_path: Path) -> None:
    shop = Retailer()
    shop.member("M1", register_time="2020-01-01 10:00:00")
    shop.order("M1", "2026-06-01 10:00:00", "100")
    await shop.load(db, tmp_path)
    person = await person_of(db, "member_id:M1")
    await refresh_all(db, T)  # first computation: a baseline, no history
    async with db.transaction() as session:
        assert await tag_history(session, person) == []
    later = date(2027, 6, 2)  # the order is now 366 days old
    await refresh_all(db, later)
    await refresh_all(db, date(2026, 1, 1))  # back-dated: rewrites the profile, records no change
    async with db.transaction() as session:
        change = await last_change(session, person, "lifecycle")
        everything = await tag_history(session, person)
    assert change is not None and (change.changed_on, change.old, change.new) == (later, "购买", "沉睡")
    assert {c.tag for c in everything} >= {"lifecycle", "purchase_power", "wallet_depth"}  # no window order
    assert all(c.changed_on == later for c in everything)


async def test_history_follows_merges_newest_first(db: Database) -> None:
    """C was merged into A, A into B: B's history holds all three, and none of D's."""
    persons = [("B", "active", None), ("A", "merged", "B"), ("C", "merged", "A"), ("D", "active", None)]
    changes = [  # (person, tag, old, new, day)
        ("C", "lifecycle", "新客", "购买", date(2026, 1, 5)),
        ("A", "lifecycle", "购买", "忠诚", date(2026, 3, 1)),
        ("B", "purchase_power", "中", "高", date(2026, 3, 1)),
        ("D", "lifecycle", "购买", "沉睡", date(2026, 4, 1)),
        ("B", "core_sku", json.dumps(["SKU1"]), json.dumps(["SKU1", "SKU2"]), date(2026, 2, 1)),
        ("A", "lifecycle", None, "新客", date(2025, 12, 1)),
    ]
    async with db.transaction() as session:
        for i, (pid, status, into) in enumerate(persons):
            await session.execute(
                text(
                    "INSERT INTO person (person_id, anchor_node_id, status, merged_into, created_at, updated_at)"
                    " VALUES (:p, :n, :s, :m, :at, :at)"
                ),
                {"p": pid, "n": i + 1, "s": status, "m": into, "at": datetime(2026, 1, 1)},
            )
        for pid, tag, old, new, day in changes:
            await session.execute(
                text(
                    "INSERT INTO tag_history (person_id, tag, old_value, new_value, changed_on, recorded_at)"
                    " VALUES (:p, :t, :o, :n, :d, :at)"
                ),
                {"p": pid, "t": tag, "o": old, "n": new, "d": day, "at": datetime(2026, 1, 1)},
            )
    # The oracle: B's family by hand, newest day first, later-inserted first within a day.
    family = {"B", "A", "C"}
    ordered = sorted(
        ((i, c) for i, c in enumerate(changes) if c[0] in family), key=lambda ic: (ic[1][4], ic[0]), reverse=True
    )
    expected = [
        (day, tag, json.loads(old) if old and tag == "core_sku" else old, json.loads(new) if tag == "core_sku" else new)
        for _i, (_p, tag, old, new, day) in ordered
    ]
    async with db.read() as session:
        got = [(c.changed_on, c.tag, c.old, c.new) for c in await tag_history(session, "B")]
        assert got == expected
        assert [(c.changed_on, c.new) for c in await tag_history(session, "B", tags=("lifecycle",), limit=2)] == [
            (date(2026, 3, 1), "忠诚"),
            (date(2026, 1, 5), "购买"),
        ]
        change = await last_change(session, "A", "lifecycle")  # A's own family: A and C, not B
        assert change is not None and (change.changed_on, change.old, change.new) == (date(2026, 3, 1), "购买", "忠诚")
        assert await last_change(session, "C", "purchase_power") is None
        assert await tag_history(session, "nobody") == []


# --------------------------------------------------------------------------- labels


async def test_labels_are_audited_and_follow_merges(db: Database, tmp_path: Path) -> None:
    shop = Retailer()
    shop.member("M1", unionid="uA")
    shop.event("", "follow", "2026-01-01 10:00:00", appid="wxA", openid="oB")  # a stranger, for now
    await shop.load(db, tmp_path)
    member, follower = await person_of(db, "member_id:M1"), await person_of(db, "openid:wxA/oB")
    assert member != follower
    async with db.transaction() as session:
        assert await add_label(session, follower, " 爱穿裙子 ", by="GS0011")
        assert not await add_label(session, follower, "爱穿裙子", by="GS0012")  # already there
        assert await add_label(session, member, "VIP客户", by="marketer")
        for bad in ("", "a" * 21, "a,b", "a|b"):
            try:
                await add_label(session, member, bad, by="x")
                raise AssertionError(f"{bad!r} accepted")
            except LabelError:
                pass
    graph = IdentityGraph(VAULT)
    async with db.transaction() as session:  # the follower's unionid arrives: one person now
        await record_fact(
            session,
            graph,
            LiveFact(
                dedupe_key="k1",
                type="follow",
                occurred_at=datetime(2026, 2, 1),
                channel="oa",
                appid="wxA",
                openid="oB",
                unionid="uA",
            ),
        )
        await graph.resolve(session)
    survivor = await person_of(db, "member_id:M1")
    assert survivor == await person_of(db, "openid:wxA/oB")
    async with db.transaction() as session:
        assert (await labels_of(session, [survivor]))[survivor] == ["VIP客户", "爱穿裙子"]
        assert await remove_label(session, survivor, "爱穿裙子", by="GS0011")
        assert not await remove_label(session, survivor, "爱穿裙子", by="GS0011")
        assert (await labels_of(session, [survivor]))[survivor] == ["VIP客户"]
        log = [(e.label, e.action, e.by) for e in await label_log(session, survivor)]
    assert log == [("爱穿裙子", "add", "GS0011"), ("VIP客户", "add", "marketer"), ("爱穿裙子", "remove", "GS0011")]


async def test_a_refresh_split_over_worker_processes_equals_one_in_this_process(db: Database, sample_dir: Path) -> None:
    """On PostgreSQL a large refresh runs in worker processes (person_id ranges); forced here on
    the sample, it must store exactly what the one-process refresh stores, and report progress
    for every person once."""
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    single = await refresh_all(db, T, workers=1)
    expected = {pid: (stored_tags(p), p.orders_365d, p.aov_365d_fen) for pid, p in (await stored(db)).items()}
    async with db.transaction() as session:  # forget them, so the split refresh writes every row again
        await session.execute(PersonProfile.__table__.delete())  # type: ignore[attr-defined]
    seen: list[int] = []
    split = await refresh_all(db, T, workers=3, parallel_from=1, page_size=7, progress=seen.append)
    got = {pid: (stored_tags(p), p.orders_365d, p.aov_365d_fen) for pid, p in (await stored(db)).items()}
    assert got == expected
    assert split.persons == single.persons == len(expected) == sum(seen)
    if db.is_postgres:
        assert len(seen) >= 3  # pages from the workers (SQLite always refreshes in this process)
