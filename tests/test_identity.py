"""One ID (data.md §3) on real SQLite and PostgreSQL, checked against a plain oracle in this file."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from profile_store.db import Database
from profile_store.identity import IdentityGraph, Sighting
from profile_store.normalize import Identifier, identifiers_of, normalize_phone
from profile_store.pii import PiiVault
from tests.conftest import SAMPLE_DIR, TEST_SECRET

VAULT = PiiVault(TEST_SECRET)


# ------------------------------------------------------------------ an independent oracle


def oracle_partition(sightings: Iterable[Sighting], blocklist: Iterable[tuple[str, str]] = ()) -> set[frozenset]:
    """Straight from the rule: shared phones (>= 3 distinct co-observed member_ids) and blocklisted
    values link nothing; persons are the connected components of what is left."""
    sightings = list(sightings)
    members_of_phone: dict[str, set[str]] = defaultdict(set)
    for s in sightings:
        members = {i.value for i in s.identifiers if i.kind == "member_id"}
        for i in s.identifiers:
            if i.kind == "phone":
                members_of_phone[i.value] |= members
    blocked = set(blocklist)
    shared = {("phone", p) for p, m in members_of_phone.items() if len(m) >= 3} | blocked
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for s in sightings:
        keys = [(i.kind, i.value) for i in s.identifiers if (i.kind, i.value) not in shared]
        for k in keys:
            find(k)
        for a, b in pairwise(keys):
            parent[find(a)] = find(b)
    groups: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for k in parent:
        groups[find(k)].add(k)
    return {frozenset(g) for g in groups.values()}


# ------------------------------------------------------------------ helpers


async def apply(db: Database, graph: IdentityGraph, sightings: Sequence[Sighting]) -> None:
    async with db.transaction() as session:
        await graph.observe(session, sightings)
        await graph.resolve(session)


async def partition(db: Database) -> set[frozenset]:
    """Persons as sets of (kind, value) with phones turned back into clear text."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                text("SELECT person_id, kind, value, sealed FROM identity_node WHERE person_id IS NOT NULL")
            )
        ).all()
    groups: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for pid, kind, value, sealed in rows:
        groups[pid].add((kind, VAULT.decrypt(sealed) if kind == "phone" else value))
    return {frozenset(g) for g in groups.values()}


async def person_of(db: Database, graph: IdentityGraph, kind: str, value: str) -> str | None:
    async with db.transaction() as session:
        return await graph.person_for(session, kind, value)


def ids(*pairs: tuple[str, str]) -> list[Identifier]:
    return [Identifier(k, v) for k, v in pairs]


# ------------------------------------------------------------------ the sample retailer


def sample_sightings() -> list[Sighting]:
    """Accepted rows of the sample (the few bad rows are dropped by a plain reading)."""
    from datetime import datetime

    def parses(value: str) -> bool:
        try:
            datetime.fromisoformat(value)
            return True
        except ValueError:
            return False

    out: list[Sighting] = []
    with open(SAMPLE_DIR / "data" / "members.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["member_id"].strip():
                out.append(Sighting("member", r["member_id"].strip(), identifiers_of(
                    member_id=r["member_id"], phone=r["phone"], unionid=r["unionid"])))
    with open(SAMPLE_DIR / "data" / "orders.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                float(r["amount"])
            except ValueError:
                continue
            if r["status"] not in ("paid", "refunded") or not parses(r["paid_at"]):
                continue
            out.append(Sighting("order", r["order_id"], identifiers_of(
                member_id=r["member_id"], phone=r["phone"], unionid=r["unionid"],
                miniapp_openid=r["miniapp_openid"])))
    types = {"follow", "unfollow", "scan", "add_contact", "del_contact", "browse", "add_cart", "click",
             "message", "coupon_get", "coupon_consume", "coupon_delete"}
    with open(SAMPLE_DIR / "data" / "events.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["type"] not in types or not parses(r["occurred_at"]):
                continue
            out.append(Sighting("event", r["event_id"], identifiers_of(
                member_id=r["member_id"], phone=r["phone"], unionid=r["unionid"], appid=r["appid"],
                openid=r["openid"], miniapp_openid=r["miniapp_openid"], external_userid=r["external_userid"])))
    return [s for s in out if s.identifiers]


def expected_sample_partition() -> set[frozenset]:
    persons = set()
    with open(SAMPLE_DIR / "expected_profiles.jsonl", encoding="utf-8") as f:
        for line in f:
            person = json.loads(line)
            members = set()
            for kind, values in person["identities"].items():
                for v in values:
                    members.add((kind, f"{v[0]}/{v[1]}" if kind == "openid" else v))
            persons.add(frozenset(members))
    return persons


async def test_sample_partition_matches_expected_profiles(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    sightings = sample_sightings()
    assert oracle_partition(sightings) == expected_sample_partition()  # the oracle reads the rule right
    # Arrive in three batches, in a scrambled order, as an import and callbacks would.
    scrambled = sightings[1::2] + sightings[::2][::-1]
    third = len(scrambled) // 3
    for batch in (scrambled[:third], scrambled[third : 2 * third], scrambled[2 * third :]):
        await apply(db, graph, batch)
    assert await partition(db) == expected_sample_partition()
    async with db.transaction() as session:
        # Every link carries the person of each of its non-shared identifiers.
        bad = (await session.execute(text(
            "SELECT COUNT(*) FROM link l JOIN link_node x ON x.link_id = l.id"
            " JOIN identity_node n ON n.id = x.node_id"
            " WHERE n.shared = false AND (l.person_id IS NULL OR l.person_id <> n.person_id)"))).scalar_one()
        assert bad == 0
        assert (await session.execute(text("SELECT COUNT(*) FROM link WHERE resolved = false"))).scalar_one() == 0
        shared = (await session.execute(text("SELECT COUNT(*) FROM identity_node WHERE shared"))).scalar_one()
        assert shared == 3  # the sample's three store phones


# ------------------------------------------------------------------ rules at their boundaries


async def test_two_member_cards_on_one_phone_merge_but_three_make_it_shared(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    phone = "13800000001"
    await apply(db, graph, [Sighting("member", "M1", ids(("member_id", "M1")))])
    await apply(db, graph, [Sighting("member", "M2", ids(("member_id", "M2")))])
    first = await person_of(db, graph, "member_id", "M1")
    second = await person_of(db, graph, "member_id", "M2")
    assert first != second
    await apply(db, graph, [Sighting("order", "O1", ids(("member_id", "M1"), ("phone", phone)))])
    await apply(db, graph, [Sighting("order", "O2", ids(("member_id", "M2"), ("phone", phone)))])
    # Two cards on one phone: one person, and the older id survives; the merge is recorded.
    assert await person_of(db, graph, "member_id", "M2") == first
    async with db.transaction() as session:
        log = (await session.execute(text(
            "SELECT person_id, other_person_id FROM identity_log WHERE action = 'merge'"))).all()
        assert [tuple(r) for r in log] == [(first, second)]
        assert await graph.canonical(session, second) == first  # the merged id still resolves
    merged_id = second

    # A third card: the phone is a store phone now and links nothing; the people split again.
    await apply(db, graph, [Sighting("order", "O3", ids(("member_id", "M3"), ("phone", phone)))])
    p1, p2, p3 = [await person_of(db, graph, "member_id", m) for m in ("M1", "M2", "M3")]
    assert len({p1, p2, p3}) == 3
    assert p1 == first
    assert p2 == merged_id  # the split gives M2 back the id it had before the merge
    async with db.transaction() as session:
        assert await graph.canonical(session, merged_id) == merged_id
        actions = (await session.execute(text("SELECT action FROM identity_log ORDER BY id"))).scalars().all()
    assert actions == ["merge", "shared", "split"]
    assert await person_of(db, graph, "phone", phone) is None
    assert await partition(db) == {
        frozenset({("member_id", "M1")}), frozenset({("member_id", "M2")}), frozenset({("member_id", "M3")})}


async def test_row_with_only_shared_identifiers_stays_unattributed(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    phone = "+86 138 0000 0002"
    clean = normalize_phone(phone)
    assert clean
    rows = [Sighting("member", f"M{i}", ids(("member_id", f"M{i}"), ("phone", clean))) for i in range(3)]
    rows.append(Sighting("order", "O-shared", ids(("phone", clean))))
    async with db.transaction() as session:
        for key in ("O-shared", "O-member"):
            await session.execute(text(
                "INSERT INTO orders (order_id, channel, store_id, paid_at, amount_fen, coupon_code, status)"
                " VALUES (:k, 'pos', 'S001', '2026-10-01 10:00:00', 100, '', 'paid')"), {"k": key})
    rows.append(Sighting("order", "O-member", ids(("phone", clean), ("member_id", "M0"))))
    await apply(db, graph, rows)
    async with db.transaction() as session:
        owners = dict((await session.execute(text("SELECT order_id, person_id FROM orders"))).all())
    assert owners["O-shared"] is None  # only a shared phone: in no one's profile
    assert owners["O-member"] == await person_of(db, graph, "member_id", "M0")


async def test_blocklisted_value_links_nothing(db: Database) -> None:
    graph = IdentityGraph(VAULT, blocklist=[("unionid", "oU-store"), ("phone", "13900000000")])
    await apply(db, graph, [
        Sighting("event", "E1", ids(("unionid", "oU-store"), ("external_userid", "wmA"))),
        Sighting("event", "E2", ids(("unionid", "oU-store"), ("external_userid", "wmB"))),
        Sighting("event", "E3", ids(("phone", "13900000000"), ("member_id", "MX"), ("member_id", "MY"))),
    ])
    parts = await partition(db)
    assert frozenset({("external_userid", "wmA")}) in parts
    assert frozenset({("external_userid", "wmB")}) in parts
    assert frozenset({("member_id", "MX"), ("member_id", "MY")}) in parts


async def test_ids_are_stable_when_unrelated_rows_arrive(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    await apply(db, graph, [Sighting("member", "M1", ids(("member_id", "M1"), ("unionid", "u1")))])
    before = await person_of(db, graph, "member_id", "M1")
    await apply(db, graph, [Sighting("event", f"E{i}", ids(("unionid", f"x{i}"))) for i in range(20)])
    await apply(db, graph, [Sighting("event", "E-late", ids(("unionid", "u1"), ("miniapp_openid", "mo1")))])
    assert await person_of(db, graph, "member_id", "M1") == before
    assert await person_of(db, graph, "miniapp_openid", "mo1") == before


async def test_same_row_seen_again_with_new_identifier_links_it(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    await apply(db, graph, [Sighting("order", "O1", ids(("member_id", "M1")))])
    await apply(db, graph, [Sighting("order", "O1", ids(("member_id", "M1")))])  # idempotent
    await apply(db, graph, [Sighting("order", "O1", ids(("member_id", "M1"), ("unionid", "u9")))])
    assert await person_of(db, graph, "unionid", "u9") == await person_of(db, graph, "member_id", "M1")


async def test_phone_never_stored_in_clear(db: Database) -> None:
    graph = IdentityGraph(VAULT)
    await apply(db, graph, [Sighting("member", "M1", ids(("member_id", "M1"), ("phone", "13812345678")))])
    async with db.transaction() as session:
        dump = " ".join(str(r) for r in (await session.execute(text("SELECT * FROM identity_node"))).all())
    assert "13812345678" not in dump


# ------------------------------------------------------------------ order does not matter (property)

MEMBERS = [f"M{i}" for i in range(5)]
PHONES = ["13800000010", "13800000011"]
OTHERS = [("unionid", f"u{i}") for i in range(3)] + [("external_userid", f"wm{i}") for i in range(3)]

identifier = st.one_of(
    st.sampled_from(MEMBERS).map(lambda m: ("member_id", m)),
    st.sampled_from(PHONES).map(lambda p: ("phone", p)),
    st.sampled_from(OTHERS),
)
observations = st.lists(st.lists(identifier, min_size=1, max_size=3, unique=True), min_size=1, max_size=14)


def _sightings(obs: list[list[tuple[str, str]]]) -> list[Sighting]:
    return [Sighting("order", f"O{i}", ids(*o)) for i, o in enumerate(obs)]


async def _wipe(db: Database) -> None:
    async with db.transaction() as session:
        for table in ("link_node", "link", "identity_node", "person", "identity_log", "orders"):
            await session.execute(text(f"DELETE FROM {table}"))


async def _row_owners(db: Database) -> dict[str, frozenset | None]:
    """Each order row's person, as that person's set of identifiers (None: unattributed)."""
    async with db.transaction() as session:
        owners = dict((await session.execute(text("SELECT order_id, person_id FROM orders"))).all())
        rows = (await session.execute(text(
            "SELECT person_id, kind, value, sealed FROM identity_node WHERE person_id IS NOT NULL"))).all()
    members: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for pid, kind, value, sealed in rows:
        members[pid].add((kind, VAULT.decrypt(sealed) if kind == "phone" else value))
    return {k: frozenset(members[p]) if p else None for k, p in owners.items()}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_partition_depends_only_on_the_set_of_observations(db_url: str) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(obs=observations, data=st.data())
    def check(obs: list[list[tuple[str, str]]], data: st.DataObject) -> None:
        sightings = _sightings(obs)
        order = data.draw(st.permutations(sightings))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=3)))
        batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]

        async def run() -> tuple[set[frozenset], dict[str, frozenset | None]]:
            db = Database(db_url)
            try:
                await _wipe(db)
                async with db.transaction() as session:
                    for s in sightings:
                        await session.execute(text(
                            "INSERT INTO orders (order_id, channel, store_id, paid_at, amount_fen, coupon_code, status)"
                            " VALUES (:k, 'pos', '', '2026-10-01 10:00:00', 100, '', 'paid')"), {"k": s.source_key})
                graph = IdentityGraph(VAULT)
                for batch in batches:
                    await apply(db, graph, batch)
                return await partition(db), await _row_owners(db)
            finally:
                await db.dispose()

        got_partition, got_owners = asyncio.run(run())
        expected = oracle_partition(sightings)
        assert got_partition == expected
        # Each row belongs to the person holding its identifiers, or to no one when all are shared.
        for s in sightings:
            holders = [p for p in expected if any((i.kind, i.value) in p for i in s.identifiers)]
            assert got_owners[s.source_key] == (holders[0] if holders else None)

    check()
