"""A customer scans in: the guide gets the portrait card, the customer a welcome.

On `add_external_contact` the guide named in the event (for a store QR, the one WeCom rotated
to) gets the card, and the event's WelcomeCode is used for a welcome chosen by the customer's
tags. On an OA follow or scan of a `store_<id>` / `guide_<id>` QR, the store's guides (or that
guide) get the card. Only outbox rows are written here, in the callback's own transaction, keyed
by the callback: a Tencent retry or a replay never sends twice, and the sender works after the
commit (the fact, the person and their tags are then in place).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import ChangeExternalContact, ScanEvent, SubscribeEvent
from bot.dispatcher import Router
from handlers.contacts import ADDS
from profile_store import outbox
from profile_store.contact_ways import scene_of
from profile_store.staff import store_guides

router = Router("scans")

WELCOME_CODE_SECONDS = 20  # doc 92599: the code is good for 20 s after the event
@router.event(ChangeExternalContact)
async def on_contact_added(event: ChangeExternalContact, session: AsyncSession) -> None:
    if event.change_type not in ADDS:
        return
    identity = f"external_userid:{event.external_userid}"
    store_id, _guide = scene_of(event.state)
    await outbox.enqueue(
        session,
        key=f"portrait:{event.dedupe_key}",
        kind="portrait",
        payload={"identity": identity, "guide": event.user_id, "store_id": store_id, "scanned": bool(event.state)},
    )
    if event.welcome_code:
        await outbox.enqueue(
            session,
            key=f"welcome:{event.dedupe_key}",
            kind="welcome",
            payload={"identity": identity, "guide": event.user_id, "welcome_code": event.welcome_code},
            expires_at=datetime.fromtimestamp(event.create_time + WELCOME_CODE_SECONDS, UTC),
        )


@router.event(SubscribeEvent, ScanEvent)
async def on_store_scan(event: SubscribeEvent | ScanEvent, session: AsyncSession) -> None:
    store_id, guide_id = scene_of(event.qr_scene)
    if store_id:
        recipients = await store_guides(session, store_id)
    elif guide_id:
        recipients = [guide_id]
    else:
        return  # a follow from search or an article: nobody is waiting at a counter
    identity = f"openid:{event.account}/{event.openid}"
    for guide in recipients:
        await outbox.enqueue(
            session,
            key=f"portrait:{event.dedupe_key}:{guide}",
            kind="portrait",
            payload={"identity": identity, "guide": guide, "store_id": store_id, "scanned": True},
        )
