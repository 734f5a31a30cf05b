"""Read one person: who they are (masked), what we hold of them, and why identifiers are one.

Used by the demo and by operators (`qianmian identity explain`); the portrait of a later issue
builds on the same reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from profile_store.identity import IdentityGraph
from profile_store.models import IdentityLog
from profile_store.pii import PiiVault, mask_name, mask_phone


@dataclass
class PersonCard:
    person_id: str
    identities: dict[str, list[str]] = field(default_factory=dict)  # phones masked
    member_names: list[str] = field(default_factory=list)  # masked
    orders_paid: int = 0
    amount_paid_fen: int = 0
    events: dict[str, int] = field(default_factory=dict)
    history: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, action, detail)


def shown_identity(kind: str, value: str, sealed: str | None, vault: PiiVault, include_pii: bool) -> str:
    """An identifier as a person may read it: phones decrypted, and masked unless asked not to."""
    if kind == "phone" and sealed:
        phone = vault.decrypt(sealed)
        return phone if include_pii else mask_phone(phone)
    return value


async def person_card(
    session: AsyncSession, graph: IdentityGraph, person_id: str, *, include_pii: bool = False
) -> PersonCard | None:
    """What the profile store holds of one person (a merged id reads its survivor)."""
    current = await graph.canonical(session, person_id)
    if current is None:
        return None
    card = PersonCard(current)
    nodes = (
        await session.execute(
            text(
                "SELECT kind, value, sealed FROM identity_node WHERE person_id = :p AND shared = false"
                " ORDER BY kind, value"
            ),
            {"p": current},
        )
    ).all()
    for kind, value, sealed in nodes:
        card.identities.setdefault(kind, []).append(shown_identity(kind, value, sealed, graph.vault, include_pii))
    names = (
        await session.execute(text("SELECT name FROM member WHERE person_id = :p ORDER BY row_seq"), {"p": current})
    ).scalars().all()
    card.member_names = [n if include_pii else mask_name(n) for n in names if n]
    paid = (
        await session.execute(
            text("SELECT COUNT(*), COALESCE(SUM(amount_fen), 0) FROM orders WHERE person_id = :p AND status = 'paid'"),
            {"p": current},
        )
    ).one()
    card.orders_paid, card.amount_paid_fen = int(paid[0]), int(paid[1])
    card.events = {
        str(t): int(n)
        for t, n in (
            await session.execute(
                text("SELECT type, COUNT(*) FROM event WHERE person_id = :p GROUP BY type ORDER BY type"),
                {"p": current},
            )
        ).all()
    }
    aliases = (
        await session.execute(text("SELECT person_id FROM person WHERE merged_into = :p"), {"p": current})
    ).scalars().all()
    # Typed columns: `at` reads back as a datetime on SQLite too (a text() query gives a string).
    entries = SQLModel.metadata.tables[str(IdentityLog.__tablename__)].c
    ids = [current, *aliases]
    log = (
        await session.execute(
            select(entries.at, entries.action, entries.detail)
            .where(or_(entries.person_id.in_(ids), entries.other_person_id.in_(ids)))
            .order_by(entries.at, entries.id)
        )
    ).all()
    card.history = [(at, action, _plain(action, detail)) for at, action, detail in log]
    return card


def _plain(action: str, detail: str) -> str:
    try:
        data = json.loads(detail) if detail else {}
    except ValueError:
        return detail
    return str(data.get("why", "")) if isinstance(data, dict) else detail


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    unionid: str | None
    name: str


async def a_member_with_unionid(session: AsyncSession) -> MemberRow | None:
    """A member who has bought and whose WeChat unionid we know (the demo's returning customer)."""
    row = (
        await session.execute(
            text(
                "SELECT m.member_id, m.unionid, m.name FROM member m"
                " WHERE m.unionid IS NOT NULL AND m.unionid <> '' AND m.person_id IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM orders o WHERE o.person_id = m.person_id AND o.status = 'paid')"
                " ORDER BY m.member_id LIMIT 1"
            )
        )
    ).first()
    return MemberRow(row[0], row[1], row[2]) if row else None


async def a_store_with_two_guides(session: AsyncSession) -> tuple[str, str, str]:
    """(store_id, guide, another guide) of the first store with at least two guides."""
    rows = (
        await session.execute(
            text("SELECT store_id, guide_id FROM guide WHERE role IN ('guide', 'manager') ORDER BY store_id, guide_id")
        )
    ).all()
    by_store: dict[str, list[str]] = {}
    for store_id, guide_id in rows:
        by_store.setdefault(store_id, []).append(guide_id)
    for store_id, guides in by_store.items():
        if len(guides) >= 2:
            return store_id, guides[0], guides[1]
    raise LookupError("no store has two guides")


async def count_shared_identifiers(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT COUNT(*) FROM identity_node WHERE shared"))).scalar_one())


async def count_events(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT COUNT(*) FROM event"))).scalar_one())


async def find_person(session: AsyncSession, graph: IdentityGraph, identity: str) -> str | None:
    """The active person an operator names: `kind:value` (e.g. `phone:13812345678`,
    `openid:wxapp/oXYZ`), a person_id (merged ids lead to their survivor), or a bare value tried
    as member_id, phone, external_userid, unionid and miniapp_openid in that order."""
    from profile_store.normalize import IDENTIFIER_KINDS

    value = identity.strip()
    kind, sep, rest = value.partition(":")
    if sep and kind in IDENTIFIER_KINDS:
        person = await graph.person_for(session, kind, rest.strip())
        return await graph.canonical(session, person) if person else None
    if sep and kind == "person":
        return await graph.canonical(session, rest.strip())
    person = await graph.canonical(session, value)
    if person:
        return person
    for kind in ("member_id", "phone", "external_userid", "unionid", "miniapp_openid"):
        try:
            found = await graph.person_for(session, kind, value)
        except ValueError:
            continue
        if found:
            return await graph.canonical(session, found)
    return None


async def count_active_persons(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT COUNT(*) FROM person WHERE status = 'active'"))).scalar_one())


async def lifecycle_counts(session: AsyncSession) -> dict[str, int]:
    """Persons by stored lifecycle, in tags.md's order."""
    order = ("忠诚", "购买", "注册", "兴趣", "认知", "沉睡", "流失")
    rows = (await session.execute(text("SELECT lifecycle, COUNT(*) FROM profile GROUP BY lifecycle"))).all()
    found = {str(k): int(n) for k, n in rows}
    return {k: found[k] for k in order if k in found}


@dataclass(frozen=True)
class Brief:
    """How a person is shown in a list: masked name, masked phone, lifecycle."""

    person_id: str
    name: str
    phone: str
    lifecycle: str


async def briefs(session: AsyncSession, graph: IdentityGraph, person_ids: Sequence[str]) -> list[Brief]:
    """Masked name (latest member record) and phone of a few persons, in the order given."""
    if not person_ids:
        return []
    ids: Any = bindparam("ids", expanding=True)
    names: dict[str, str] = {}
    for pid, name in (
        await session.execute(
            text("SELECT person_id, name FROM member WHERE person_id IN :ids ORDER BY row_seq").bindparams(ids),
            {"ids": list(person_ids)},
        )
    ).all():
        if name:
            names[pid] = name  # the later row wins
    phones: dict[str, str] = {}
    for pid, sealed in (
        await session.execute(
            text(
                "SELECT person_id, sealed FROM identity_node WHERE kind = 'phone' AND shared = false"
                " AND person_id IN :ids ORDER BY value"
            ).bindparams(ids),
            {"ids": list(person_ids)},
        )
    ).all():
        if sealed and pid not in phones:
            phones[pid] = mask_phone(graph.vault.decrypt(sealed))
    lifecycles: dict[str, Any] = dict(
        (
            await session.execute(
                text("SELECT person_id, lifecycle FROM profile WHERE person_id IN :ids").bindparams(ids),
                {"ids": list(person_ids)},
            )
        ).all()
    )
    return [
        Brief(pid, mask_name(names.get(pid, "")), phones.get(pid, ""), str(lifecycles.get(pid) or ""))
        for pid in person_ids
    ]


async def persons_named(session: AsyncSession, name: str, store_id: str | None = None) -> list[str]:
    """Active persons with a member record of this name (registered at, or mostly buying in,
    `store_id` when given)."""
    query = (
        "SELECT DISTINCT m.person_id FROM member m JOIN person p ON p.person_id = m.person_id"
        " AND p.status = 'active' WHERE m.name = :n"
    )
    params: dict[str, Any] = {"n": name.strip()}
    if store_id:
        query += (
            " AND (m.register_store_id = :s OR EXISTS (SELECT 1 FROM profile f"
            " WHERE f.person_id = m.person_id AND f.preferred_store = :s))"
        )
        params["s"] = store_id
    return sorted((await session.execute(text(query + " ORDER BY m.person_id"), params)).scalars())


async def wecom_contacts(session: AsyncSession) -> list[tuple[str, str]]:
    """(external_userid, guide) pairs a guide currently holds: their latest add/del event is an add."""
    rows = await session.execute(
        text(
            "SELECT e.external_userid, e.guide_id FROM event e WHERE e.type = 'add_contact'"
            " AND e.external_userid IS NOT NULL AND e.guide_id IS NOT NULL AND NOT EXISTS ("
            "SELECT 1 FROM event l WHERE l.external_userid = e.external_userid AND l.guide_id = e.guide_id"
            " AND l.type IN ('add_contact', 'del_contact') AND l.occurred_at > e.occurred_at)"
            " ORDER BY e.external_userid, e.guide_id"
        )
    )
    return [(str(r[0]), str(r[1])) for r in rows.all()]


async def member_ids_of(session: AsyncSession, person_ids: Sequence[str]) -> dict[str, str]:
    """One member id of each person that has one."""
    if not person_ids:
        return {}
    rows = await session.execute(
        text("SELECT person_id, MIN(member_id) FROM member WHERE person_id IN :ids GROUP BY person_id").bindparams(
            bindparam("ids", expanding=True)
        ),
        {"ids": list(person_ids)},
    )
    return {str(p): str(m) for p, m in rows.all()}
