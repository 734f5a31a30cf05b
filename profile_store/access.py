"""Who may see a customer: the access rules of the portrait page (and, later, of chat commands).

A staff member's role comes from the `guide` table (guides.csv); an unknown userid sees nobody.

- guide: their own customers — the person's latest add/del contact event with them is
  `add_contact` — and anyone who scanned their store's or their own QR code in the last 24 hours
  (the customer in front of them, before the contact is added);
- manager: anyone the rules above give to some staff member of their store, plus customers whose
  preferred store (常去门店, the stored profile) is their store or who registered there;
- marketer, admin: everyone.

Decided by one SQL statement after the role lookup, so the answer is the database's, whatever the
number of events. `now` is naive local business time, as `event.occurred_at` is (models.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_store.contact_ways import GUIDE_PREFIX, state_for
from profile_store.staff import staff_of

SCAN_WINDOW = timedelta(hours=24)
SEE_ALL_ROLES = frozenset({"marketer", "admin"})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Why: contact | scan | preferred_store | registered_store | role (allowed);
    # unknown_viewer | unknown_role | not_theirs (refused).
    reason: str


# The staff whose customers count: the guide alone, or everyone of the manager's store.
_STAFF = {
    "guide": "s.guide_id = :viewer",
    "manager": "s.store_id = :store",
}

# A contact is held when the latest add/del event of that (person, guide) is an add, ties in time
# broken by the event id as in the tags (facts.py), so the page and the `guides` tag agree.
_HELD = (
    "SELECT 1 FROM event e JOIN guide s ON s.guide_id = e.guide_id"
    " WHERE e.person_id = :p AND e.type = 'add_contact' AND e.occurred_at <= :now AND {staff}"
    " AND NOT EXISTS (SELECT 1 FROM event d WHERE d.person_id = e.person_id AND d.guide_id = e.guide_id"
    "   AND d.type IN ('add_contact', 'del_contact') AND d.occurred_at <= :now"
    "   AND (d.occurred_at > e.occurred_at OR (d.occurred_at = e.occurred_at AND d.event_id > e.event_id)))"
)
_SCANNED = (
    "SELECT 1 FROM event e WHERE e.person_id = :p AND e.occurred_at >= :since AND e.occurred_at <= :now"
    " AND (e.qr_state = :store_state"
    f" OR e.qr_state IN (SELECT '{GUIDE_PREFIX}' || s.guide_id FROM guide s WHERE {{staff}}))"
)
_PREFERRED = "SELECT 1 FROM profile pr WHERE pr.person_id = :p AND pr.preferred_store = :store"
_REGISTERED = (
    "SELECT 1 FROM member m WHERE m.person_id = :p AND m.register_store_id = :store"
    " AND (m.register_time IS NULL OR m.register_time <= :now)"
)


def _statement(role: str, has_store: bool) -> str:
    # A manager without a store manages nobody else: only their own customers count.
    staff = _STAFF[role] if has_store else _STAFF["guide"]
    checks = [("contact", _HELD.format(staff=staff)), ("scan", _SCANNED.format(staff=staff))]
    if role == "manager" and has_store:
        checks += [("preferred_store", _PREFERRED), ("registered_store", _REGISTERED)]
    columns = ", ".join(f"CASE WHEN EXISTS ({sql}) THEN 1 ELSE 0 END AS {name}" for name, sql in checks)
    return f"SELECT {columns}"


async def can_view(session: AsyncSession, viewer_userid: str, person_id: str, *, now: datetime) -> Decision:
    """Whether the staff member `viewer_userid` may see person `person_id` at `now` (naive local)."""
    if now.tzinfo is not None:
        raise ValueError("can_view: `now` is naive local business time, like event.occurred_at")
    staff = await staff_of(session, viewer_userid) if viewer_userid else None
    if staff is None:
        return Decision(False, "unknown_viewer")
    if staff.role in SEE_ALL_ROLES:
        return Decision(True, "role")
    if staff.role not in _STAFF:
        return Decision(False, "unknown_role")
    has_store = bool(staff.store_id)
    statement = text(_statement(staff.role, has_store)).bindparams(
        bindparam("now", now, type_=DateTime()), bindparam("since", now - SCAN_WINDOW, type_=DateTime())
    )
    row = (
        await session.execute(
            statement,
            {
                "p": person_id,
                "viewer": staff.guide_id,
                "store": staff.store_id,
                # A staff member without a store has no store QR: match nothing.
                "store_state": state_for("store", staff.store_id) if has_store else None,
            },
        )
    ).mappings().one()
    for reason, hit in row.items():
        if hit:
            return Decision(True, str(reason))
    return Decision(False, "not_theirs")
