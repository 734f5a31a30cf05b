"""Coupon claim links (`GET /c/{token}`): how a campaign's WeChat card reaches customers whom no
customer-service message can carry the card itself — WeCom 1:1 mass sends (a link attachment),
OA template messages (the message's `url`) and SMS (the link in the text).

A link names the campaign, its variant and the card, and expires `QIANMIAN_CLAIM_LINK_DAYS` days
after its message is sent (`QIANMIAN_SECRET_KEY`-derived key of its own, HKDF info
"coupon-claim", signed by itsdangerous like the portrait links): nothing is stored per link, any
`serve` process can honour any link, and one link serves a whole WeCom batch (one message to up
to 10 000 customers). Tapped, it redirects to the card's landing page at WeChat (`POST
/card/landingpage/create` of the official account that owns the card; made once per card and
process, then reused), where the customer claims the card in WeChat itself — WeChat then tells
us with its `user_get_card` event, which handlers/cards.py already records.

Answers: a forged link 404, an expired one 410, a link of a campaign since cancelled 410 (a
retailer cancels a campaign to stop its coupon, e.g. a wrong amount: links already in customers'
hands stop with it; a paused campaign's links keep working, its messages were sent), a card no
configured account owns 404, WeChat busy or unreachable 503 (try again: nothing is cached on
failure).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from bot import texts
from bot.metrics import Metrics
from bot.portrait_links import link_key
from bot.settings import Settings
from bot.tencent.errors import TencentAPIError, TencentError
from profile_store.campaigns import get_campaign
from profile_store.db import Database

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
DEFAULT_DAYS = 7  # QIANMIAN_CLAIM_LINK_DAYS when nothing says otherwise
INVALID_CARD_ID = 40073  # WeChat: the card is not this account's (or does not exist)
ROUTE = "/c/{token}"
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class ClaimLink:
    campaign_id: int
    variant: str
    card_id: str
    expires_at: int  # epoch seconds


class ClaimRefused(Exception):
    """reason: forged | expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ClaimLinks:
    def __init__(
        self, secret_key: str, public_url: str, *, ttl_seconds: float = DEFAULT_DAYS * DAY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ValueError("QIANMIAN_SECRET_KEY is empty: claim links cannot be signed")
        self._serializer = URLSafeSerializer(link_key(secret_key, b"coupon-claim"), salt="claim")
        self.public_url = public_url.rstrip("/")
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> ClaimLinks:
        """Links signed with QIANMIAN_SECRET_KEY, under QIANMIAN_PUBLIC_URL, valid
        QIANMIAN_CLAIM_LINK_DAYS days from the time their message is sent."""
        return cls(settings.secret_key or "", settings.public_url, ttl_seconds=settings.claim_link_days * DAY_SECONDS,
                   clock=clock)

    def url(self, campaign_id: int, variant: str, card_id: str, *, sent_from: float) -> str:
        """The link for a message sent at `sent_from` (epoch seconds), valid `ttl_seconds` from then."""
        expires = int(sent_from + self.ttl_seconds)
        token = self._serializer.dumps({"c": campaign_id, "v": variant, "k": card_id, "e": expires})
        return f"{self.public_url}/c/{token}"

    def read(self, token: str) -> ClaimLink:
        try:
            data: Any = self._serializer.loads(token)
            link = ClaimLink(int(data["c"]), str(data["v"]), str(data["k"]), int(data["e"]))
        except (BadSignature, KeyError, TypeError, ValueError) as exc:
            raise ClaimRefused("forged") from exc
        if self.clock() >= link.expires_at:
            raise ClaimRefused("expired")
        return link


class ClaimPage:
    """`GET /c/{token}` → 302 to the card's landing page at WeChat. `accounts` gives the official
    account clients (appid → OfficialAccountClient) once the app has made them."""

    def __init__(
        self, links: ClaimLinks, database: Database, metrics: Metrics, accounts: Callable[[], Mapping[str, Any]]
    ) -> None:
        self.links = links
        self.database = database
        self.taps = metrics.claim_link_taps  # every tap counted by its answer: what the links did
        self.accounts = accounts
        self._landing: dict[str, str] = {}  # card_id → landing page URL (a page per card is enough)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        outcome, answer = await self._answer(request.match_info["token"])
        self.taps.labels(outcome=outcome).inc()
        if isinstance(answer, str):  # the landing page's URL
            raise web.HTTPFound(answer, headers=HEADERS)
        return answer

    async def _answer(self, token: str) -> tuple[str, web.Response | str]:
        """How this tap is answered (its outcome for the metric): a page, or where to redirect."""
        try:
            link = self.links.read(token)
        except ClaimRefused as exc:
            if exc.reason == "expired":
                return "expired", _page(410, texts.CLAIM_PAGE_EXPIRED)
            return "forged", _page(404, texts.CLAIM_PAGE_FORGED)
        # Read at every tap (taps are few): a cancel in any serve process stops the link in all.
        async with self.database.read() as session:
            campaign = await get_campaign(session, link.campaign_id)
        if campaign is not None and campaign.status == "cancelled":
            log.info("claim link of cancelled campaign %s tapped", link.campaign_id)
            return "cancelled", _page(410, texts.CLAIM_PAGE_CANCELLED)
        try:
            url = await self.landing_page(link.card_id)
        except TencentError as exc:
            log.warning("claim link of campaign %s: landing page of %s: %s", link.campaign_id, link.card_id, exc)
            return "busy", _page(503, texts.CLAIM_PAGE_BUSY)
        if url is None:
            return "no_card", _page(404, texts.CLAIM_PAGE_NO_CARD)
        return "redirected", url

    async def landing_page(self, card_id: str) -> str | None:
        """The card's landing page URL, made by the first configured account that owns the card;
        None when none does. Other WeChat errors raise (nothing is remembered)."""
        known = self._landing.get(card_id)
        if known is not None:
            return known
        for appid, client in sorted(self.accounts().items()):
            try:
                answer = await client.create_card_landing_page(
                    [card_id], title=texts.CLAIM_LANDING_TITLE, scene="SCENE_H5"
                )
            except TencentAPIError as exc:
                if exc.errcode == INVALID_CARD_ID:
                    continue  # another account's card
                raise
            url = str(answer.get("url") or "")
            if url:
                log.info("landing page %s of card %s (official account %s)", answer.get("page_id"), card_id, appid)
                self._landing[card_id] = url
                return url
        return None


def _page(status: int, message: str) -> web.Response:
    body = (
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(texts.CLAIM_PAGE_TITLE)}</title></head>"
        f"<body><h1 style=\"font-size:1.2em;margin:2em 1em\">{html.escape(message)}</h1></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html", headers=HEADERS)
