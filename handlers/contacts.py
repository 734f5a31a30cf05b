"""WeCom customer contact changes → `add_contact` / `del_contact`.

- add_external_contact / add_half_external_contact (the customer added a guide; "half": without
  the guide's confirmation yet) → `add_contact`, with the contact way's `State` as qr_state.
- del_external_contact (the guide deleted the customer) and del_follow_user (the customer deleted
  the guide) → `del_contact`: both end the relation between this customer and this guide.
- edit_external_contact (the guide edited remarks/tags) is not a customer event: the raw callback
  stays the record, and a unionid learned from it still links the contact.

The contact's unionid comes from `externalcontact/get`, fetched before the transaction (no DB
lock is held while WeCom answers). When that call fails the event is recorded anyway: the unionid
joins later (a later event, an import, or a replay).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import ChangeExternalContact
from bot.dispatcher import Router
from bot.settings import Settings
from bot.tencent.errors import TencentError
from profile_store.identity import IdentityGraph
from profile_store.live import LiveFact, link_identifiers, record_fact
from profile_store.normalize import identifiers_of

log = logging.getLogger(__name__)
router = Router("contacts")

ADDS = frozenset({"add_external_contact", "add_half_external_contact"})
DELETES = frozenset({"del_external_contact", "del_follow_user"})
NEEDS_LOOKUP = ADDS | {"edit_external_contact"}


class ContactLookup(Protocol):
    async def get_external_contact(self, external_userid: str) -> dict[str, Any]: ...


@router.prefetch(ChangeExternalContact)
async def fetch_unionid(event: ChangeExternalContact, wecom: ContactLookup | None = None) -> dict[str, Any]:
    """`unionid` of the contact, or None when WeCom has none for it or cannot answer now."""
    if event.change_type not in NEEDS_LOOKUP or wecom is None:
        return {"unionid": None}
    try:
        data = await wecom.get_external_contact(event.external_userid)
    except TencentError as exc:
        log.warning("unionid of %s not fetched (event recorded anyway): %s", event.external_userid, exc)
        return {"unionid": None}
    contact = data.get("external_contact") or {}
    unionid = contact.get("unionid") if isinstance(contact, dict) else None
    return {"unionid": unionid or None}


@router.event(ChangeExternalContact)
async def on_contact_change(
    event: ChangeExternalContact,
    session: AsyncSession,
    graph: IdentityGraph,
    settings: Settings,
    unionid: str | None = None,
) -> None:
    if event.change_type in ADDS or event.change_type in DELETES:
        await record_fact(
            session,
            graph,
            LiveFact(
                dedupe_key=event.dedupe_key,
                type="add_contact" if event.change_type in ADDS else "del_contact",
                occurred_at=event.occurred_at(settings.tz),
                channel="wecom",
                external_userid=event.external_userid,
                unionid=unionid,
                guide_id=event.user_id,
                qr_state=event.state if event.change_type in ADDS else None,
            ),
        )
    elif unionid:
        await link_identifiers(
            session,
            graph,
            event.dedupe_key,
            identifiers_of(external_userid=event.external_userid, unionid=unionid),
        )
    else:
        log.info("contact %s edited by %s: nothing to link", event.external_userid, event.user_id)
