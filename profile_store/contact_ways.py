"""QR codes we created (`contact_way`): WeCom 「联系我」 contact ways and official-account parametric
QR codes, one row per (channel, state), so a QR asked for again is reused instead of spending
Tencent's quota (500 000 contact ways per corp), and a scan's `State` can be traced back to it.
Also the few reference lookups a QR needs (staff names, stores by name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from profile_store.bulk import dialect_of
from profile_store.models import ContactWay

# The state (WeCom) / scene (OA) of our codes, which comes back in the add-contact, subscribe and
# scan callbacks: `store_<store_id>` or `guide_<guide_id>`. Written and read only through these.
STORE_PREFIX, GUIDE_PREFIX = "store_", "guide_"


def state_for(kind: str, target: str) -> str:
    """`state_for("store", "S001")` → `store_S001`; kind is store | guide."""
    return f"{STORE_PREFIX if kind == 'store' else GUIDE_PREFIX}{target}"


def scene_of(state: str | None) -> tuple[str, str]:
    """`store_S001` → ("S001", ""); `guide_G001` → ("", "G001"); anything else → ("", "")."""
    if state and state.startswith(STORE_PREFIX):
        return state[len(STORE_PREFIX):], ""
    if state and state.startswith(GUIDE_PREFIX):
        return "", state[len(GUIDE_PREFIX):]
    return "", ""

WAYS = ContactWay.__table__  # type: ignore[attr-defined]
WECOM = "wecom"  # the channel of WeCom contact ways; an official account's channel is its appid


@dataclass(frozen=True)
class StoredQr:
    channel: str  # "wecom" or an OA appid
    state: str  # store_<id> / guide_<id>: WeCom's State, the OA's scene_str
    store_id: str
    guide_id: str
    config_id: str  # WeCom config_id, or the OA ticket
    qr_url: str  # where Tencent serves the picture
    image_path: str  # where we saved it
    users: list[str] = field(default_factory=list)  # the staff a store QR rotates among
    created_by: str = ""
    created_at: datetime | None = None


def _stored(row: ContactWay) -> StoredQr:
    created = row.created_at
    return StoredQr(
        channel=row.channel,
        state=row.state,
        store_id=row.store_id,
        guide_id=row.guide_id,
        config_id=row.config_id,
        qr_url=row.qr_url,
        image_path=row.image_path,
        users=list(json.loads(row.users or "[]")),
        created_by=row.created_by,
        created_at=created if created is None or created.tzinfo else created.replace(tzinfo=UTC),
    )


async def save_contact_way(session: AsyncSession, qr: StoredQr) -> None:
    """Record a QR; a new one for the same (channel, state) replaces the old (`--new`)."""
    values = {
        "channel": qr.channel,
        "state": qr.state,
        "store_id": qr.store_id,
        "guide_id": qr.guide_id,
        "config_id": qr.config_id,
        "qr_url": qr.qr_url,
        "image_path": qr.image_path,
        "users": json.dumps(list(qr.users), ensure_ascii=False),
        "created_by": qr.created_by,
        "created_at": qr.created_at or datetime.now(UTC),
    }
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(WAYS).values(**values)
    replaced = {k: insert.excluded[k] for k in values if k not in ("channel", "state")}
    await session.execute(insert.on_conflict_do_update(index_elements=["channel", "state"], set_=replaced))


async def set_image_path(session: AsyncSession, channel: str, state: str, image_path: str) -> None:
    """The picture of a stored QR was fetched again (e.g. on another machine)."""
    await session.execute(
        update(ContactWay)
        .where(col(ContactWay.channel) == channel, col(ContactWay.state) == state)
        .values(image_path=image_path)
    )


async def get_contact_way(session: AsyncSession, channel: str, state: str) -> StoredQr | None:
    row = await session.get(ContactWay, (channel, state))
    return _stored(row) if row is not None else None


async def list_contact_ways(session: AsyncSession, *, store_id: str | None = None) -> list[StoredQr]:
    """Every QR we created (of one store, when given), by channel and state."""
    query = select(ContactWay).order_by(col(ContactWay.channel), col(ContactWay.state))
    if store_id is not None:
        query = query.where(col(ContactWay.store_id) == store_id)
    return [_stored(row) for row in (await session.execute(query)).scalars()]


# ---------------------------------------------------------------- reference lookups for QR codes


async def staff_names(session: AsyncSession, userids: Sequence[str]) -> dict[str, str]:
    """Names of staff by WeCom userid (guides.csv); a userid without a name is left out."""
    if not userids:
        return {}
    rows = await session.execute(
        text("SELECT guide_id, name FROM guide WHERE guide_id IN :ids").bindparams(bindparam("ids", expanding=True)),
        {"ids": list(userids)},
    )
    return {r[0]: r[1] for r in rows if r[1]}


async def stores_by_name(session: AsyncSession) -> dict[str, str]:
    """store name → store_id (stores.csv), so "上海一店的二维码" can be understood."""
    rows = await session.execute(text("SELECT name, store_id FROM store WHERE name <> ''"))
    return {r[0]: r[1] for r in rows}
