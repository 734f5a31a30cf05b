"""Official-account follow, unfollow and parametric-QR scans → `follow` / `unfollow` / `scan`.

An OA callback names only the follower's openid. Their unionid (what joins them to the WeCom
contact, the mini-program and the member card) comes from `user/info`, fetched before the
transaction, as the contact handler does with `externalcontact/get`. When that call fails, or
the account is not bound to the open platform, the follow is recorded with its openid alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import ScanEvent, SubscribeEvent, UnsubscribeEvent
from bot.dispatcher import Router
from bot.settings import Settings
from bot.tencent.errors import TencentError
from profile_store.campaigns import opt_out_follower
from profile_store.identity import IdentityGraph
from profile_store.live import LiveFact, record_fact

log = logging.getLogger(__name__)
router = Router("followers")


class FollowerLookup(Protocol):
    async def get_user_info(self, openid: str) -> dict[str, Any]: ...


@router.prefetch(SubscribeEvent, ScanEvent)
async def fetch_unionid(
    event: SubscribeEvent | ScanEvent, wechat: Mapping[str, FollowerLookup] | None = None
) -> dict[str, Any]:
    """The follower's unionid, or None when the account cannot tell it now."""
    client = (wechat or {}).get(event.account)
    if client is None:
        return {"unionid": None}
    try:
        info = await client.get_user_info(event.openid)
    except TencentError as exc:
        log.warning("unionid of %s not fetched (follow recorded anyway): %s", event.openid, exc)
        return {"unionid": None}
    return {"unionid": info.get("unionid") or None}


@router.event(SubscribeEvent, UnsubscribeEvent, ScanEvent)
async def on_follow_change(
    event: SubscribeEvent | UnsubscribeEvent | ScanEvent,
    session: AsyncSession,
    graph: IdentityGraph,
    settings: Settings,
    unionid: str | None = None,
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
            unionid=unionid,
            qr_state=qr_state,
        ),
    )
    if kind == "unfollow":  # nothing more from the official account, for good, even after a re-follow
        await opt_out_follower(session, graph, event.account, event.openid, reason="unsubscribe")
