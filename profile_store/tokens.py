"""SQL of the shared access-token cache (table `access_token`).

Every `serve` process reads the same row, so N processes make one `gettoken` per expiry, not N
(for an official account each extra fetch also invalidates the others' tokens after 5 minutes).

Refreshing is coordinated by a lease row (`lease:<key>`) in the same table rather than by a lock
held across the HTTP call: a transaction held open for seconds would block every SQLite writer,
callbacks included. A lease whose holder died simply expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.models import AccessToken

_T = AccessToken.__table__  # type: ignore[attr-defined]
LEASE_PREFIX = "lease:"


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_T)


async def valid_token(session: AsyncSession, key: str, now: datetime) -> tuple[str, datetime] | None:
    """The stored token of `key` if it is still usable at `now`."""
    row = (
        await session.execute(select(_T.c.token, _T.c.expires_at).where(_T.c.key == key, _T.c.expires_at > now))
    ).first()
    return (row[0], row[1]) if row else None


async def store_token(session: AsyncSession, key: str, token: str, expires_at: datetime) -> None:
    """Insert or replace the token of `key`."""
    stmt = _insert(session).values(key=key, token=token, expires_at=expires_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.c.key], set_={"token": stmt.excluded.token, "expires_at": stmt.excluded.expires_at}
    )
    await session.execute(stmt)


async def discard_token(session: AsyncSession, key: str, token: str, now: datetime) -> None:
    """Mark `token` unusable, unless another process already replaced it with a newer one."""
    await session.execute(
        update(_T).where(_T.c.key == key, _T.c.token == token, _T.c.expires_at > now).values(expires_at=now)
    )


async def acquire_lease(session: AsyncSession, key: str, owner: str, now: datetime, ttl: float) -> bool:
    """Take the right to refresh `key` for `ttl` seconds; False while someone else holds it."""
    stmt = _insert(session).values(key=LEASE_PREFIX + key, token=owner, expires_at=now + timedelta(seconds=ttl))
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.c.key],
        set_={"token": stmt.excluded.token, "expires_at": stmt.excluded.expires_at},
        where=_T.c.expires_at <= now,  # only an expired lease may be taken over
    ).returning(_T.c.token)
    return (await session.execute(stmt)).first() is not None


async def release_lease(session: AsyncSession, key: str, owner: str) -> None:
    await session.execute(delete(_T).where(and_(_T.c.key == LEASE_PREFIX + key, _T.c.token == owner)))
