"""Official-account card (coupon) events → `coupon_get` / `coupon_consume` / `coupon_delete`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback_xml import CardConsumeEvent, CardDeleteEvent, CardEvent, CardGetEvent
from bot.dispatcher import Router
from bot.settings import Settings
from profile_store.identity import IdentityGraph
from profile_store.live import LiveFact, record_fact

router = Router("cards")

_TYPES: dict[type[CardEvent], str] = {
    CardGetEvent: "coupon_get",
    CardConsumeEvent: "coupon_consume",
    CardDeleteEvent: "coupon_delete",
}


@router.event(CardGetEvent, CardConsumeEvent, CardDeleteEvent)
async def on_card_event(event: CardEvent, session: AsyncSession, graph: IdentityGraph, settings: Settings) -> None:
    await record_fact(
        session,
        graph,
        LiveFact(
            dedupe_key=event.dedupe_key,
            type=_TYPES[type(event)],
            occurred_at=event.occurred_at(settings.tz),
            channel="oa",
            appid=event.account,
            openid=event.openid,
            unionid=event.unionid,  # user_get_card carries UnionId when the OA is on the open platform
            card_id=event.card_id,
            coupon_code=event.user_card_code,
        ),
    )
