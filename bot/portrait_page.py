"""`GET /p/{token}`: the customer's portrait page on a guide's phone.

Thin on purpose: read the signed link, learn who is looking (WeCom OAuth2 when
QIANMIAN_WECOM_OAUTH is on), check the access rules (profile_store/access.py) *at view time* —
a guide who lost the customer loses the page, however young the link —, write one audit row
(`portrait_view`) for every view, shown or refused, then render (bot/portrait_view.py).

Without OAuth the link's binding is the guide its signature names; with OAuth the page asks WeCom
for the viewer's userid and refuses anyone else ("foreign"). A redirect to WeCom's authorize page
is not a view yet: the view is audited when the browser comes back with its code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.portrait_links import LinkRefused, PortraitLink, PortraitLinks
from bot.portrait_view import render_portrait, render_refusal
from bot.settings import Settings
from bot.tencent.errors import TencentAPIError, TencentError
from profile_store.access import can_view
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.pii import mask_name
from profile_store.portrait import portrait
from profile_store.portrait_views import record_view
from profile_store.staff import staff_of

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/connect/oauth2/authorize"
RETRY_MARK = "again"  # on the redirect_uri of a second authorize round: never a third
HEADERS = {
    # Personal data: never cached, never framed, the token in the URL never sent on as a referrer;
    # the policy also proves the page fetches nothing (no scripts at all, styles inline).
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class Refusal:
    outcome: str  # the audit outcome: expired | forged | foreign | denied
    status: int
    message: str
    hint: str = ""


FORGED = Refusal("forged", 403, texts.PAGE_FORGED)
EXPIRED = Refusal("expired", 410, texts.PAGE_EXPIRED)
AUTH_FAILED = Refusal("denied", 403, texts.PAGE_AUTH_FAILED)
AUTH_UNAVAILABLE = Refusal("denied", 503, texts.PAGE_AUTH_UNAVAILABLE)
NO_PERSON = Refusal("denied", 404, texts.PAGE_NO_PERSON)


class PortraitPage:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        graph: IdentityGraph,
        links: PortraitLinks,
        wecom: Callable[[], Any | None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.graph = graph
        self.links = links
        self._wecom = wecom  # the WeCom client is made in the app's lifecycle, after create_app

    def now(self) -> datetime:
        """Naive local business time, as event.occurred_at (models.py)."""
        return datetime.now(ZoneInfo(self.settings.tz)).replace(tzinfo=None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or ""  # behind a proxy: the proxy's address (X-Forwarded-For can be forged)
        token = request.match_info["token"]
        try:
            link = self.links.read(token)
        except LinkRefused as exc:
            refusal = FORGED if exc.reason == "forged" else EXPIRED
            async with self.db.transaction() as session:
                await self._audit(session, refusal.outcome, ip, exc.link)
            return self._refused(refusal)
        viewer = ""
        if self.settings.wecom_oauth:
            viewer, refused = await self._oauth_viewer(request, token, link)
            if refused is not None:
                async with self.db.transaction() as session:
                    await self._audit(session, refused.outcome, ip, link, viewer)
                return self._refused(refused)
        return await self._show(link, viewer, ip)

    async def _oauth_viewer(self, request: web.Request, token: str, link: PortraitLink) -> tuple[str, Refusal | None]:
        """(viewer, refusal): who WeCom says is looking, and why they may not (None: they may
        go on to the access rules). Raises the redirect to WeCom's authorize page when needed."""
        code = request.query.get("code")
        if not code:
            raise web.HTTPFound(self.authorize_url(token, link))
        found = await self._identify(code, request.query.get("state", ""), link)
        if found is None:
            if RETRY_MARK not in request.query:
                # A reload brings back a used code (single-use): ask WeCom once more, never twice.
                raise web.HTTPFound(self.authorize_url(token, link, again=True))
            return "", AUTH_FAILED
        if isinstance(found, Refusal):
            return "", found
        if found != link.guide_id:
            return found, await self._foreign(link)
        return found, None

    def authorize_url(self, token: str, link: PortraitLink, *, again: bool = False) -> str:
        back = self.links.url(token) + (f"?{RETRY_MARK}=1" if again else "")
        query = urlencode(
            {
                "appid": self.settings.wecom_corp_id or "",
                "redirect_uri": back,
                "response_type": "code",
                "scope": "snsapi_base",  # the userid is all we need: no consent screen
                "state": link.link_id,
                "agentid": self.settings.wecom_agent_id or "",
            }
        )
        return f"{self.settings.wecom_oauth_base.rstrip('/')}{AUTHORIZE_PATH}?{query}#wechat_redirect"

    async def _identify(self, code: str, state: str, link: PortraitLink) -> str | Refusal | None:
        """The viewer's userid ("openid:…" for someone outside the corp), a refusal, or None when
        WeCom did not take the code (used or expired)."""
        wecom = self._wecom()
        if wecom is None:
            log.error("portrait page: QIANMIAN_WECOM_OAUTH is on but the WeCom API is not configured")
            return AUTH_UNAVAILABLE
        if state != link.link_id:
            return AUTH_FAILED  # a code obtained for another link
        try:
            answer = await wecom.get_user_info(code)
        except TencentAPIError as exc:
            log.info("portrait page: getuserinfo refused the code: %s", exc)
            return None
        except TencentError as exc:
            log.warning("portrait page: getuserinfo failed: %s", exc)
            return AUTH_UNAVAILABLE
        if answer.get("userid"):
            return str(answer["userid"])
        if answer.get("openid"):
            return f"openid:{answer['openid']}"
        return AUTH_FAILED

    async def _foreign(self, link: PortraitLink) -> Refusal:
        async with self.db.transaction() as session:
            staff = await staff_of(session, link.guide_id)
        guide = mask_name(staff.name) if staff is not None and staff.name else link.guide_id
        return Refusal("foreign", 403, texts.PAGE_FOREIGN.format(guide=guide))

    async def _show(self, link: PortraitLink, viewer: str, ip: str) -> web.StreamResponse:
        now = self.now()
        async with self.db.transaction() as session:
            person = await self.graph.canonical(session, link.person_id)  # merges keep links working
            if person is None:
                await self._audit(session, NO_PERSON.outcome, ip, link, viewer)
                return self._refused(NO_PERSON)
            decision = await can_view(session, link.guide_id, person, now=now)
            if not decision.allowed:
                await self._audit(session, "denied", ip, link, viewer, person)
                hint = texts.PAGE_DENIED_HINTS.get(decision.reason, "")
                return self._refused(Refusal("denied", 403, texts.PAGE_DENIED, hint))
            found = await portrait(session, self.graph, person, now.date(), details=True)
            await self._audit(session, "shown", ip, link, viewer, person)
        if found is None:  # pragma: no cover - canonical() above said the person exists
            return self._refused(NO_PERSON)
        return web.Response(text=render_portrait(found), content_type="text/html", charset="utf-8", headers=HEADERS)

    async def _audit(
        self,
        session: AsyncSession,
        outcome: str,
        ip: str,
        link: PortraitLink | None,
        viewer: str = "",
        person: str | None = None,
    ) -> None:
        await record_view(
            session,
            outcome=outcome,
            ip=ip,
            link_id=link.link_id if link else "",
            guide_id=link.guide_id if link else "",
            viewer=viewer,
            person_id=person or (link.person_id if link else ""),
        )

    def _refused(self, refusal: Refusal) -> web.Response:
        return web.Response(
            status=refusal.status,
            text=render_refusal(refusal.message, refusal.hint),
            content_type="text/html",
            charset="utf-8",
            headers=HEADERS,
        )
