"""One ID (data.md §3): identifiers → persons, incrementally, whatever the order of arrival.

The graph lives in the database: `identity_node` (one row per identifier value), `link` (one per
distinct set of identifiers seen together on an accepted row; the row keeps its `link_key`) and
`link_node` (which identifiers a link holds). Rows with the same identifiers share a link, so the
graph grows with distinct identifier sets rather than with rows. A person is a connected
component of that graph once shared identifiers are taken out: a phone observed together with 3
or more distinct member_ids (a store's phone typed in by a cashier), or any blocklisted value,
links nothing.

`resolve()` re-partitions only the *region* that pending links touch: the persons of the
touched identifiers (including those of identifiers that just became shared), recomputed with a
union-find in memory and written back with set-based SQL. Because a component is recomputed
from all its observations, the partition depends only on the set of observations, never on their
order: a later observation that makes a phone shared splits the people it had joined.

Stable ids: every person_id has an *anchor* identifier. After re-partitioning, a component keeps
the earliest-minted person_id (ids are time-ordered) whose anchor lies in it; the other ids whose
anchors lie in it are marked merged into that survivor and keep resolving to it. When a split
puts an old merged id's anchor in its own component again, that id comes back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.bulk import analyze, dialect_of, fetch_rows, rowcount, stage, temp_table
from profile_store.db import LOCK_IDENTITY, lock_for
from profile_store.normalize import Identifier, normalize_phone
from profile_store.pii import PiiVault

log = logging.getLogger(__name__)

# A phone linked to this many distinct member_ids is a shared (store) phone (data.md §3).
SHARED_PHONE_MEMBERS = 3
# PostgreSQL: refresh a table's statistics after a write of this many rows.
ANALYZE_AFTER_ROWS = 10_000
# Which source table a `source` names, and that table's key column.
SOURCE_TABLES = {"member": ("member", "member_id"), "order": ("orders", "order_id"), "event": ("event", "event_id")}
FEW_LINKS = 2000  # up to this many links, SQLite writes persons back through indexes, not scans


def _pending(session: AsyncSession) -> str:
    """The predicate of ix_link_pending as each database needs to see it to use the index
    (SQLite matches a partial index only on the very expression it was made with)."""
    return "resolved = 0" if dialect_of(session) == "sqlite" else "resolved = false"


class Sighting(NamedTuple):
    """One accepted row: the identifiers on it belong to the same person."""

    source: str  # member | order | event
    source_key: str
    identifiers: Sequence[Identifier]


@dataclass
class ResolveReport:
    links: int = 0
    region_nodes: int = 0
    persons_created: int = 0
    merges: int = 0
    splits: int = 0
    newly_shared: int = 0
    changed_rows: int = 0
    details: list[str] = field(default_factory=list)
    # Every person id the resolve touched, before and after (merged-away ids included): the
    # persons whose tags must be recomputed.
    persons: set[str] = field(default_factory=set)


def link_key_of(stored: Iterable[tuple[str, str]]) -> str:
    """The key of a set of stored identifiers (kind, value as stored): equal sets, equal keys."""
    joined = "\n".join(sorted(f"{kind}\t{value}" for kind, value in set(stored)))
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class LinkPlan:
    """What observing some sightings writes, worked out without the database: each link's
    identifiers as stored (phones as keyed hash and sealed copy) and each row's link."""

    links: dict[str, list[tuple[str, str, str | None]]] = field(default_factory=dict)  # key → (kind, value, sealed)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (source, source_key, link_key)

    def key_of(self) -> dict[str, str]:
        """source_key → link_key (one source per plan, as the importer makes them)."""
        return {source_key: key for _source, source_key, key in self.rows}

    def only(self, source_keys: Iterable[str]) -> LinkPlan:
        """The part of the plan for these rows."""
        wanted = set(source_keys)
        rows = [row for row in self.rows if row[1] in wanted]
        keys = {key for _s, _k, key in rows}
        return LinkPlan({k: v for k, v in self.links.items() if k in keys}, rows)


def plan_links(vault: PiiVault, sightings: Iterable[Sighting]) -> LinkPlan:
    """The links of these sightings (rows without identifiers have none)."""
    sealed_by_phone: dict[str, tuple[str, str]] = {}
    plan = LinkPlan()
    key_of: dict[tuple[Identifier, ...], str] = {}  # rows repeat identifier sets: hash each once
    for sighting in sightings:
        idents = tuple(sighting.identifiers)
        if not idents:
            continue
        key = key_of.get(idents)
        if key is None:
            stored: list[tuple[str, str, str | None]] = []
            for ident in idents:
                if ident.kind == "phone":
                    if ident.value not in sealed_by_phone:
                        sealed_by_phone[ident.value] = (vault.lookup_hash(ident.value), vault.encrypt(ident.value))
                    hashed, sealed = sealed_by_phone[ident.value]
                    stored.append(("phone", hashed, sealed))
                else:
                    stored.append((ident.kind, ident.value, None))
            key = key_of[idents] = link_key_of((kind, value) for kind, value, _ in stored)
            plan.links.setdefault(key, stored)
        plan.rows.append((sighting.source, sighting.source_key, key))
    return plan


def mint_person_id() -> str:
    """Time-ordered, unique across processes: the earlier minted sorts first."""
    return f"p{time.time_ns() // 1000:014x}{secrets.token_hex(3)}"


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                ra, rb = rb, ra
            self.parent[ra] = rb


class IdentityGraph:
    """Observes links between identifiers and resolves them into persons."""

    def __init__(self, vault: PiiVault, blocklist: Iterable[tuple[str, str]] = ()) -> None:
        self.vault = vault
        self._blocklist = [self._stored(Identifier(kind, value)) for kind, value in blocklist]
        self._blocklist = [(k, v) for k, v in self._blocklist if v]

    # ------------------------------------------------------------------ values as stored

    def _stored(self, ident: Identifier) -> tuple[str, str]:
        """The node value as stored: phones as their keyed hash, never in clear."""
        if ident.kind == "phone":
            phone = normalize_phone(ident.value)
            return ("phone", self.vault.lookup_hash(phone) if phone else "")
        return (ident.kind, ident.value)

    async def lock(self, session: AsyncSession) -> None:
        """Take the identity lock for this transaction. Call it before writing person-attributed
        rows that will be observed, so concurrent writers queue instead of deadlocking."""
        await lock_for(session, LOCK_IDENTITY)

    # ------------------------------------------------------------------ observe

    async def observe(self, session: AsyncSession, sightings: Sequence[Sighting]) -> None:
        """Record the links of accepted rows and tag each row with its `link_key`; new links (and
        links a row newly points at) stay pending until `resolve`."""
        await self.record_links(session, plan_links(self.vault, sightings))

    async def record_links(self, session: AsyncSession, plan: LinkPlan, *, rows_keyed: bool = False) -> None:
        """`observe` with the links worked out beforehand (`plan_links`: the importer does it in
        its worker process). `rows_keyed`: the rows were written with their `link_key` already."""
        await self.lock(session)
        link_rows, row_links = plan.links, plan.rows
        if not row_links:
            return
        await temp_table(session, "_qm_sight", "link_key TEXT, kind TEXT, value TEXT, sealed TEXT")
        await stage(
            session,
            "_qm_sight",
            ("link_key", "kind", "value", "sealed"),
            [(key, kind, value, sealed) for key, stored in link_rows.items() for kind, value, sealed in stored],
        )
        await session.execute(
            text(
                "INSERT INTO identity_node (kind, value, person_id, shared, sealed) "
                "SELECT kind, value, NULL, false, MIN(sealed) FROM _qm_sight WHERE true GROUP BY kind, value "
                "ON CONFLICT (kind, value) DO NOTHING"
            )
        )
        new_links = rowcount(
            await session.execute(
                text(
                    "INSERT INTO link (link_key, person_id, resolved, first_seen_at) "
                    "SELECT DISTINCT link_key, NULL, false, CURRENT_TIMESTAMP FROM _qm_sight WHERE true "
                    "ON CONFLICT (link_key) DO NOTHING"
                )
            )
        )
        if new_links:
            await session.execute(
                text(
                    "INSERT INTO link_node (link_id, node_id) "
                    "SELECT DISTINCT l.id, n.id FROM _qm_sight s"
                    " JOIN link l ON l.link_key = s.link_key AND l.resolved = false"
                    " JOIN identity_node n ON n.kind = s.kind AND n.value = s.value WHERE true "
                    "ON CONFLICT (link_id, node_id) DO NOTHING"
                )
            )
        # Every link these rows carry is pending: resolve then gives each row its link's person
        # (it rewrites only rows whose person differs, so a known link costs a lookup).
        await session.execute(
            text(
                "UPDATE link SET resolved = false FROM (SELECT DISTINCT link_key FROM _qm_sight) s"
                " WHERE link.link_key = s.link_key AND link.resolved = true"
            )
        )
        if rows_keyed:
            return
        # Point each row at its link (a row seen again with other identifiers moves to another).
        await temp_table(session, "_qm_row_link", "source TEXT, source_key TEXT, link_key TEXT")
        await stage(session, "_qm_row_link", ("source", "source_key", "link_key"), row_links)
        for source, (table, key) in SOURCE_TABLES.items():
            await session.execute(
                text(
                    f"UPDATE {table} SET link_key = r.link_key FROM _qm_row_link r"
                    f" WHERE r.source = :source AND {table}.{key} = r.source_key"
                    f" AND {table}.link_key IS DISTINCT FROM r.link_key"
                ),
                {"source": source},
            )

    # ------------------------------------------------------------------ resolve

    async def resolve(self, session: AsyncSession) -> ResolveReport:
        """Re-partition every person that pending links touch, in this transaction."""
        await self.lock(session)
        report = ResolveReport()
        pending = (
            await session.execute(text(f"SELECT COUNT(*) FROM link WHERE {_pending(session)}"))
        ).scalar_one()
        if not pending:
            return report
        report.links = int(pending)

        # 1. The region: touched identifiers and every identifier of their persons.
        await temp_table(session, "_qm_region", "id BIGINT PRIMARY KEY")
        await session.execute(
            text(
                "INSERT INTO _qm_region (id) SELECT DISTINCT node_id FROM link_node"
                f" WHERE link_id IN (SELECT id FROM link WHERE {_pending(session)})"
            )
        )
        await analyze(session, "_qm_region")
        newly_shared = await self._mark_shared(session)
        report.newly_shared = len(newly_shared)
        await session.execute(
            text(
                "INSERT INTO _qm_region (id) SELECT n.id FROM identity_node n"
                # CROSS JOIN: from the region's few nodes to their persons (SQLite keeps the order).
                " WHERE n.person_id IN (SELECT DISTINCT r.person_id FROM _qm_region g"
                "   CROSS JOIN identity_node r WHERE g.id = r.id AND r.person_id IS NOT NULL)"
                " ON CONFLICT (id) DO NOTHING"
            )
        )
        await analyze(session, "_qm_region")

        # 2. Load the region's identifiers and every link reaching it through a non-shared
        #    identifier or one that just became shared (its links must let go of their person).
        #    An identifier shared before links nothing and opens no path: a store phone's
        #    thousands of links stay unread.
        node_rows = await fetch_rows(
            session,
            # CROSS JOIN (here and below): driven from the staged region, whatever SQLite's
            # planner guesses without statistics (it would scan the big table).
            "SELECT n.id, n.shared, n.person_id FROM _qm_region g CROSS JOIN identity_node n WHERE n.id = g.id",
        )
        shared: set[int] = {row[0] for row in node_rows if row[1]}
        await temp_table(session, "_qm_entry", "id BIGINT PRIMARY KEY")
        await stage(
            session, "_qm_entry", ("id",),
            [(row[0],) for row in node_rows if not row[1] or row[0] in newly_shared],
        )
        old_person: dict[int, str | None] = {row[0]: row[2] for row in node_rows}
        region: set[int] = set(old_person)
        report.region_nodes = len(region)
        pair_rows = await fetch_rows(
            session,
            "SELECT x.link_id, x.node_id, l.person_id, l.resolved"
            " FROM link_node x JOIN link l ON l.id = x.link_id"
            " WHERE x.link_id IN ("
            "   SELECT DISTINCT y.link_id FROM _qm_entry e CROSS JOIN link_node y WHERE y.node_id = e.id)",
        )

        # 3. Components, leaving shared identifiers out.
        uf = _UnionFind()
        link_nodes: dict[int, list[int]] = defaultdict(list)
        link_meta: dict[int, tuple[str | None, bool]] = {}
        for link_id, node_id, link_person, resolved in pair_rows:
            link_meta[link_id] = (link_person, bool(resolved))
            if node_id in shared or node_id not in region:
                continue  # shared (here or elsewhere): links nothing
            link_nodes[link_id].append(node_id)
        for nodes in link_nodes.values():
            first = nodes[0]
            uf.find(first)
            for other in nodes[1:]:
                uf.union(first, other)
        components: dict[int, list[int]] = defaultdict(list)
        for node in region:
            if node not in shared:
                components[uf.find(node)].append(node)

        # 4. Name the components.
        assignment = await self._assign_ids(session, components, shared, old_person, report)

        report.persons = {p for p in (*old_person.values(), *assignment.values()) if p}
        # 5. Write back what changed.
        await self._write_back(session, assignment, old_person, link_nodes, link_meta, report)
        return report

    async def _mark_shared(self, session: AsyncSession) -> set[int]:
        """Flag identifiers that became shared; they join the region so their persons split."""
        newly = (
            await session.execute(
                text(
                    "SELECT p.node_id FROM _qm_region g"
                    " CROSS JOIN link_node p CROSS JOIN identity_node pn"
                    " CROSS JOIN link_node m CROSS JOIN identity_node mn"
                    " WHERE p.node_id = g.id AND pn.id = p.node_id AND pn.kind = 'phone' AND pn.shared = false"
                    " AND m.link_id = p.link_id AND mn.id = m.node_id AND mn.kind = 'member_id'"
                    " GROUP BY p.node_id HAVING COUNT(DISTINCT m.node_id) >= :n"
                ),
                {"n": SHARED_PHONE_MEMBERS},
            )
        ).scalars().all()
        ids = set(newly)
        for kind, value in self._blocklist:
            found = (
                await session.execute(
                    text("SELECT id FROM identity_node WHERE kind = :k AND value = :v AND shared = false"),
                    {"k": kind, "v": value},
                )
            ).scalar_one_or_none()
            if found is not None:
                ids.add(found)
        if not ids:
            return ids
        await session.execute(
            text("UPDATE identity_node SET shared = true WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": sorted(ids)},
        )
        if dialect_of(session) == "postgresql":
            insert = "INSERT INTO _qm_region (id) VALUES (:id) ON CONFLICT (id) DO NOTHING"
        else:
            insert = "INSERT OR IGNORE INTO _qm_region (id) VALUES (:id)"
        await session.execute(text(insert), [{"id": i} for i in sorted(ids)])
        await session.execute(
            text("INSERT INTO identity_log (at, action, person_id, other_person_id, detail) "
                 "SELECT CURRENT_TIMESTAMP, 'shared', person_id, NULL, :detail FROM identity_node WHERE id = :id"),
            [
                {
                    "id": node_id,
                    "detail": json.dumps(
                        {"node": node_id, "why": f"linked to >= {SHARED_PHONE_MEMBERS} member_ids or blocklisted"}
                    ),
                }
                for node_id in sorted(ids)
            ],
        )
        return ids

    async def _assign_ids(
        self,
        session: AsyncSession,
        components: dict[int, list[int]],
        shared: set[int],
        old_person: dict[int, str | None],
        report: ResolveReport,
    ) -> dict[int, str | None]:
        """node → person_id for every region node (None for shared ones)."""
        component_of: dict[int, int] = {n: root for root, nodes in components.items() for n in nodes}
        # Active persons are always anchored on one of their own identifiers, so every id that
        # can be affected has its anchor in the region.
        rows = await fetch_rows(
            session,
            "SELECT p.person_id, p.anchor_node_id, p.status FROM _qm_region g"
            " CROSS JOIN person p WHERE p.anchor_node_id = g.id",
        )
        status_before = {r[0]: r[2] for r in rows}
        anchor_of = {r[0]: r[1] for r in rows}

        # Where each known id goes: its anchor's component; an id whose anchor became shared
        # follows the lowest of its former identifiers that is still a person's.
        candidates: dict[int, list[str]] = defaultdict(list)
        re_anchor: dict[str, int] = {}
        former_nodes: dict[str, list[int]] = defaultdict(list)
        for node, pid in old_person.items():
            if pid and node not in shared:
                former_nodes[pid].append(node)
        for pid, anchor in anchor_of.items():
            if anchor in component_of:
                candidates[component_of[anchor]].append(pid)
            elif status_before[pid] == "active" and former_nodes.get(pid):
                new_anchor = min(former_nodes[pid])
                re_anchor[pid] = new_anchor
                candidates[component_of[new_anchor]].append(pid)

        now = datetime.now(UTC)
        chosen_by_root: dict[int, str] = {}
        new_persons: list[dict[str, object]] = []
        merged: list[dict[str, object]] = []
        for root, nodes in components.items():
            cands = sorted(set(candidates.get(root, ())))
            if cands:
                survivor = cands[0]
                chosen_by_root[root] = survivor
                for loser in cands[1:]:
                    merged.append({"loser": loser, "survivor": survivor})
            else:
                pid = mint_person_id()
                chosen_by_root[root] = pid
                new_persons.append({"pid": pid, "anchor": min(nodes)})
        report.persons_created = len(new_persons)

        if new_persons:
            await temp_table(session, "_qm_new_person", "person_id TEXT, anchor_node_id BIGINT")
            await stage(session, "_qm_new_person", ("person_id", "anchor_node_id"),
                        [(p["pid"], p["anchor"]) for p in new_persons])
            await session.execute(
                text(
                    "INSERT INTO person (person_id, anchor_node_id, status, merged_into, created_at, updated_at)"
                    " SELECT person_id, anchor_node_id, 'active', NULL, :now, :now FROM _qm_new_person"
                ),
                {"now": now},
            )
        active_now = set(chosen_by_root.values())
        reactivate = [
            {"pid": pid, "anchor": re_anchor.get(pid, anchor_of.get(pid)), "now": now}
            for pid in active_now
            if pid in status_before and (status_before[pid] != "active" or pid in re_anchor)
        ]
        if reactivate:
            await session.execute(
                text(
                    "UPDATE person SET status = 'active', merged_into = NULL, anchor_node_id = :anchor,"
                    " updated_at = :now WHERE person_id = :pid"
                ),
                reactivate,
            )
        if merged:
            await session.execute(
                text(
                    "UPDATE person SET status = 'merged', merged_into = :survivor, updated_at = :now"
                    " WHERE person_id = :loser"
                ),
                [{**m, "now": now} for m in merged],
            )
            # Keep every alias pointing at the final survivor (one hop to resolve).
            await session.execute(
                text("UPDATE person SET merged_into = :survivor WHERE merged_into = :loser"),
                merged,
            )
        gone = [
            pid for pid, st in status_before.items()
            if st == "active" and pid not in active_now and pid not in {m["loser"] for m in merged}
        ]
        if gone:
            await session.execute(
                text("UPDATE person SET status = 'dissolved', updated_at = :now WHERE person_id = :pid"),
                [{"pid": pid, "now": now} for pid in gone],
            )

        # The record of why: merges (which ids, which identifiers), splits, dissolutions.
        entries: list[dict[str, object]] = []
        nodes_of_root = components
        root_of_pid = {pid: root for root, pid in chosen_by_root.items()}
        for m in merged:
            if status_before.get(str(m["loser"])) == "active":
                report.merges += 1
                root = root_of_pid[str(m["survivor"])]
                entries.append({
                    "action": "merge", "pid": m["survivor"], "other": m["loser"],
                    "detail": json.dumps({"nodes": sorted(nodes_of_root[root])[:50],
                                          "why": "identifiers seen together on a row (see link_node)"}),
                })
        spread: dict[str, set[str]] = defaultdict(set)
        for node, pid in old_person.items():
            if pid and node in component_of:
                spread[pid].add(chosen_by_root[component_of[node]])
        for pid, now_ids in spread.items():
            if len(now_ids) > 1:
                report.splits += 1
                entries.append({
                    "action": "split", "pid": pid, "other": None,
                    "detail": json.dumps({"into": sorted(now_ids), "why": "a shared identifier stopped linking"}),
                })
        for pid in gone:
            entries.append({"action": "dissolve", "pid": pid, "other": None,
                            "detail": json.dumps({"why": "its only identifiers became shared"})})
        if entries:
            await session.execute(
                text("INSERT INTO identity_log (at, action, person_id, other_person_id, detail)"
                     " VALUES (:at, :action, :pid, :other, :detail)"),
                [{**e, "at": now} for e in entries],
            )

        assignment: dict[int, str | None] = {}
        for node in old_person:
            assignment[node] = None if node in shared else chosen_by_root[component_of[node]]
        return assignment

    async def _write_back(
        self,
        session: AsyncSession,
        assignment: dict[int, str | None],
        old_person: dict[int, str | None],
        link_nodes: dict[int, list[int]],
        link_meta: dict[int, tuple[str | None, bool]],
        report: ResolveReport,
    ) -> None:
        changed_nodes = [(n, p) for n, p in assignment.items() if old_person.get(n) != p]
        if changed_nodes:
            await temp_table(session, "_qm_node_person", "node_id BIGINT PRIMARY KEY, person_id TEXT")
            await stage(session, "_qm_node_person", ("node_id", "person_id"), changed_nodes)
            if dialect_of(session) == "sqlite" and len(changed_nodes) <= FEW_LINKS:  # see _write_back_few
                statement = (
                    "UPDATE identity_node SET person_id ="
                    " (SELECT a.person_id FROM _qm_node_person a WHERE a.node_id = identity_node.id)"
                    " WHERE id IN (SELECT node_id FROM _qm_node_person)"
                )
            else:
                statement = (
                    "UPDATE identity_node SET person_id = a.person_id FROM _qm_node_person a"
                    " WHERE identity_node.id = a.node_id"
                )
            await session.execute(text(statement))
        # Links whose person changed, and pending links (their rows may be new to them); a
        # pending link made only of identifiers shared before was not loaded: it has no person.
        pending = (await session.execute(text(f"SELECT id FROM link WHERE {_pending(session)}"))).scalars().all()
        for link_id in pending:
            link_meta.setdefault(link_id, (None, False))
        touched: list[tuple[int, str | None]] = []
        for link_id, (link_person, resolved) in link_meta.items():
            nodes = link_nodes.get(link_id)
            pid = assignment.get(nodes[0]) if nodes else None
            if pid != link_person or not resolved:
                touched.append((link_id, pid))
        if touched:
            await temp_table(session, "_qm_link_person", "link_id BIGINT PRIMARY KEY, person_id TEXT")
            await stage(session, "_qm_link_person", ("link_id", "person_id"), touched)
            if dialect_of(session) == "sqlite" and len(touched) <= FEW_LINKS:
                statement = (
                    "UPDATE link SET person_id = (SELECT a.person_id FROM _qm_link_person a WHERE a.link_id = link.id),"
                    " resolved = true WHERE id IN (SELECT link_id FROM _qm_link_person)"
                )
            else:
                statement = (
                    "UPDATE link SET person_id = a.person_id, resolved = true FROM _qm_link_person a"
                    " WHERE link.id = a.link_id"
                )
            await session.execute(text(statement))
            if dialect_of(session) == "sqlite" and len(touched) <= FEW_LINKS:
                await self._write_back_few(session, report)
            else:
                for table, _key in SOURCE_TABLES.values():
                    result = await session.execute(
                        text(
                            f"UPDATE {table} SET person_id = l.person_id FROM link l"
                            f" JOIN _qm_link_person a ON a.link_id = l.id"
                            f" WHERE {table}.link_key = l.link_key AND {table}.person_id IS DISTINCT FROM l.person_id"
                        )
                    )
                    report.changed_rows += rowcount(result)
                await session.execute(
                    text(
                        "UPDATE order_item SET person_id = o.person_id FROM orders o"
                        " JOIN link l ON l.link_key = o.link_key JOIN _qm_link_person a ON a.link_id = l.id"
                        " WHERE order_item.order_id = o.order_id AND order_item.person_id IS DISTINCT FROM o.person_id"
                    )
                )
        # Pending links outside every region (all their identifiers shared) are settled too.
        await session.execute(text(f"UPDATE link SET resolved = true WHERE {_pending(session)}"))
        if len(touched) >= ANALYZE_AFTER_ROWS and dialect_of(session) == "postgresql":
            # A bulk resolve flips `resolved` on most links: statistics taken while they were
            # pending would make the next batch's planner expect one resolved link and scan the
            # table once per key (seen: 71 s of a 1 M-row import).
            await session.execute(text("ANALYZE link"))

    async def _write_back_few(self, session: AsyncSession, report: ResolveReport) -> None:
        """The same write-back for a handful of links (a live callback), on SQLite: its planner
        runs `UPDATE … FROM` as a scan of the whole target table (20 ms per table at 40 k events,
        growing with the store); driven from the few link keys through the link_key and
        order_id indexes instead, it costs well under a millisecond."""
        for table, _key in SOURCE_TABLES.values():
            owner = f"(SELECT l.person_id FROM link l WHERE l.link_key = {table}.link_key)"
            result = await session.execute(
                text(
                    f"UPDATE {table} SET person_id = {owner}"
                    # CROSS JOIN: SQLite's way of fixing the join order (from the few staged links).
                    f" WHERE link_key IN (SELECT l.link_key FROM _qm_link_person a CROSS JOIN link l"
                    f" WHERE l.id = a.link_id)"
                    f" AND person_id IS DISTINCT FROM {owner}"
                )
            )
            report.changed_rows += rowcount(result)
        owner = "(SELECT o.person_id FROM orders o WHERE o.order_id = order_item.order_id)"
        await session.execute(
            text(
                f"UPDATE order_item SET person_id = {owner}"
                " WHERE order_id IN (SELECT o.order_id FROM _qm_link_person a CROSS JOIN link l CROSS JOIN orders o"
                " WHERE l.id = a.link_id AND o.link_key = l.link_key)"
                f" AND person_id IS DISTINCT FROM {owner}"
            )
        )

    # ------------------------------------------------------------------ lookups

    async def person_for(self, session: AsyncSession, kind: str, clear_value: str) -> str | None:
        """The person an identifier belongs to (None: unknown, or shared)."""
        stored_kind, stored_value = self._stored(Identifier(kind, clear_value))
        if not stored_value:
            return None
        return (
            await session.execute(
                text("SELECT person_id FROM identity_node WHERE kind = :k AND value = :v"),
                {"k": stored_kind, "v": stored_value},
            )
        ).scalar_one_or_none()

    async def attribute(self, session: AsyncSession, sightings: Sequence[Sighting]) -> set[str]:
        """Observe these rows' identifiers and resolve; returns every person whose facts may have
        changed: the rows' persons before and after (a re-observed row can move to another
        person), and every person the resolve merged, split or created."""
        before = await self.persons_of(session, sightings)
        await self.observe(session, sightings)
        report = await self.resolve(session)
        return before | report.persons | await self.persons_of(session, sightings)

    async def persons_of(self, session: AsyncSession, sightings: Sequence[Sighting]) -> set[str]:
        """The persons the rows of these sightings belong to now (after a resolve)."""
        found: set[str] = set()
        for source, (table, key) in SOURCE_TABLES.items():
            keys = sorted({s.source_key for s in sightings if s.source == source})
            if keys:
                rows = await session.execute(
                    text(f"SELECT DISTINCT person_id FROM {table} WHERE {key} IN :keys").bindparams(
                        bindparam("keys", expanding=True)
                    ),
                    {"keys": keys},
                )
                found.update(p for p in rows.scalars() if p)
        return found

    async def canonical(self, session: AsyncSession, person_id: str) -> str | None:
        """A person_id as it stands now: itself, its survivor if merged, None if gone."""
        row = (
            await session.execute(
                text("SELECT status, merged_into FROM person WHERE person_id = :p"), {"p": person_id}
            )
        ).first()
        if row is None:
            return None
        status, merged_into = row
        if status == "active":
            return person_id
        return merged_into if status == "merged" else None
