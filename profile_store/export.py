"""`qianmian export profiles`: every person with identities, metrics, tags and labels.

One line per active person (runtime.md "Profile lines"). Persons are read in pages by person_id
(keyset pagination), so memory holds one page whatever the size of the store. Metrics, tags and
labels come from a pluggable `Enricher` (the tags module plugs its own in); without one they are
empty. Personal data: phones are decrypted from the identity graph and shown masked
(`138****5678`) unless `include_pii`; an enricher receives the same flag for names.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, TextIO

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from nlp.segment import TAG_KEYS
from profile_store.db import Database
from profile_store.lookup import shown_identity
from profile_store.normalize import IDENTIFIER_KINDS
from profile_store.pii import PiiVault

# Columns of the CSV format, from tags.md (the JSON lines carry whatever the enricher gives).
METRIC_KEYS = (
    "orders_365d", "amount_365d", "aov_365d", "max_order_365d", "recency_days", "last_active_date",
    "orders_total", "amount_total",
)
PAGE_SIZE = 2_000

Format = Literal["jsonl", "csv"]


@dataclass
class Extras:
    """What is known about a person beyond identities (tags.md)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


# (session, person_ids of one page, as-of date, include_pii) → extras by person_id.
Enricher = Callable[[AsyncSession, Sequence[str], date, bool], Awaitable[Mapping[str, Extras]]]


async def no_extras(
    session: AsyncSession, person_ids: Sequence[str], as_of: date, include_pii: bool
) -> Mapping[str, Extras]:
    """Until tags are computed: every person has empty metrics, tags and labels."""
    return {}


@dataclass
class Profile:
    person_id: str
    identities: dict[str, list[Any]]
    extras: Extras

    def as_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "identities": self.identities,
            "metrics": self.extras.metrics,
            "tags": self.extras.tags,
            "labels": self.extras.labels,
        }


async def iter_profiles(
    db: Database,
    vault: PiiVault,
    *,
    as_of: date,
    include_pii: bool = False,
    enrich: Enricher = no_extras,
    page_size: int = PAGE_SIZE,
    only: Collection[str] | None = None,
) -> AsyncIterator[Profile]:
    """Every active person (or those of `only`, e.g. a segment's), ordered by person_id, one
    page of persons in memory at a time."""
    after = ""
    chosen = sorted(only) if only is not None else None
    while True:
        async with db.transaction() as session:
            if chosen is not None:
                person_ids = [p for p in chosen if p > after][:page_size]
            else:
                person_ids = list(
                    (
                        await session.execute(
                            text(
                                "SELECT person_id FROM person WHERE status = 'active' AND person_id > :after"
                                " ORDER BY person_id LIMIT :n"
                            ),
                            {"after": after, "n": page_size},
                        )
                    ).scalars()
                )
            if not person_ids:
                return
            nodes = (
                await session.execute(
                    text(
                        "SELECT person_id, kind, value, sealed FROM identity_node"
                        " WHERE person_id IN :ids AND shared = false"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": person_ids},
                )
            ).all()
            extras = await enrich(session, person_ids, as_of, include_pii)
        identities: dict[str, dict[str, list[Any]]] = {pid: {} for pid in person_ids}
        for person_id, kind, value, sealed in nodes:
            identities[person_id].setdefault(kind, []).append(_shown(kind, value, sealed, vault, include_pii))
        for person_id in person_ids:
            found = identities[person_id]
            ordered = {kind: sorted(found[kind]) for kind in IDENTIFIER_KINDS if kind in found}
            yield Profile(person_id, ordered, extras.get(person_id) or Extras())
        after = person_ids[-1]


def _shown(kind: str, value: str, sealed: str | None, vault: PiiVault, include_pii: bool) -> Any:
    """An identifier as exported: as a person may read it (phones masked unless PII is asked
    for), and openids as [appid, openid] pairs (runtime.md's profile line)."""
    if kind == "openid":
        appid, _, openid = value.partition("/")
        return [appid, openid]
    return shown_identity(kind, value, sealed, vault, include_pii)


async def export_profiles(
    db: Database,
    out: TextIO,
    vault: PiiVault,
    *,
    as_of: date,
    fmt: Format = "jsonl",
    include_pii: bool = False,
    enrich: Enricher = no_extras,
    page_size: int = PAGE_SIZE,
    only: Collection[str] | None = None,
) -> int:
    """Write every profile (or those of `only`) to `out`; returns how many."""
    count = 0
    profiles = iter_profiles(
        db, vault, as_of=as_of, include_pii=include_pii, enrich=enrich, page_size=page_size, only=only
    )
    if fmt == "jsonl":
        async for profile in profiles:
            out.write(json.dumps(profile.as_json(), ensure_ascii=False) + "\n")
            count += 1
        return count
    if fmt != "csv":
        raise ValueError(f"unknown format {fmt!r}: jsonl or csv")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("person_id", *IDENTIFIER_KINDS, *METRIC_KEYS, *TAG_KEYS, "labels"))
    async for profile in profiles:
        idents = [
            "|".join("/".join(v) if kind == "openid" else str(v) for v in profile.identities.get(kind, []))
            for kind in IDENTIFIER_KINDS
        ]
        metrics = [_cell(profile.extras.metrics.get(key)) for key in METRIC_KEYS]
        tags = [_cell(profile.extras.tags.get(key)) for key in TAG_KEYS]
        writer.writerow((profile.person_id, *idents, *metrics, *tags, "|".join(profile.extras.labels)))
        count += 1
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    return str(value)
