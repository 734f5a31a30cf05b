"""Official-account follow, unfollow and parametric-QR scans → `follow` / `unfollow` / `scan`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import ScanEvent, SubscribeEvent, UnsubscribeEvent
from bot.dispatcher import Router
from bot.settings import Settings
from profile_store.identity import IdentityGraph
from profile_store.live import LiveFact, record_fact

router = Router("followers")


@router.event(SubscribeEvent, UnsubscribeEvent, ScanEvent)
async def on_follow_change(
    event: SubscribeEvent | UnsubscribeEvent | ScanEvent,
    session: AsyncSession,
    graph: IdentityGraph,
    settings: Settings,
) -> None:
    if isinstance(event, SubscribeEvent):
        kind, qr_state = "follow", event.qr_scene  # qr_scene: EventKey without "qrscene_"
    elif isinstance(event, ScanEvent):
        kind, qr_state = "scan", event.qr_scene
    else:
        kind, qr_state = "unfollow", None
    await record_fact(
        session,
        graph,
        LiveFact(
            dedupe_key=event.dedupe_key,
            type=kind,
            occurred_at=event.occurred_at(settings.tz),
            channel="oa",
            appid=event.account,
            openid=event.openid,
            qr_state=qr_state,
        ),
    )
