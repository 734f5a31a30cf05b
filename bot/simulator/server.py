"""`TencentSimulator`: a real aiohttp server on 127.0.0.1 that answers like Tencent's WeCom and
official-account APIs, for tests and `qianmian demo`.

Like Tencent it answers HTTP 200 with `{"errcode": N, "errmsg": "..."}` on errors, checks the
access token on every call (missing 41001, unknown/revoked 40014 — 40001 for an official account —,
expired 42001), and checks required parameters. Faults can be injected per path (`inject`,
`delay`) and every call is recorded (`calls`).

Token behaviour as documented: WeCom's gettoken returns the same token while it is valid; an
official account's /cgi-bin/token issues a new token each time and the previous one stays valid
for 5 more minutes only — which is why tokens must be shared between processes.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web

from bot.simulator.common import Clock, Ctx, SimError, UploadedFile, random_id
from bot.simulator.oa_api import LANDING_PAGE_PATH, Follower, OfficialAccount, OfficialAccounts
from bot.simulator.oauth import AUTHORIZE_PATH, WeComOAuth
from bot.simulator.sms import GROUPMSG_LIST_V2, SMS_PATH, SmsGateway, groupmsg_list_v2
from bot.simulator.wecom_api import ExternalContact, WeComCorp

log = logging.getLogger(__name__)

WECOM_TOKEN_PATH = "/cgi-bin/gettoken"
OA_TOKEN_PATH = "/cgi-bin/token"
# QR pictures: the official account's (on mp.weixin.qq.com in production) and WeCom's contact ways'.
OA_SHOWQRCODE_PATH = "/cgi-bin/showqrcode"
CONTACT_WAY_QR_PATH = "/sim/qr/contact_way/"
MAX_BODY = 25 << 20


@dataclass
class SimCall:
    """One request the simulator received (access_token removed from `query`)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float
    errcode: int | None = None  # None until answered
    answer: dict[str, Any] | None = None


@dataclass
class _Token:
    value: str
    realm: str  # "wecom" | "oa"
    owner: str  # corp id or appid
    agent_id: str | None
    expires_at: float
    revoked: bool = False
    replaced_at: float | None = None  # OA: a newer token was issued; this one dies at this time


@dataclass
class _Faults:
    errors: deque[tuple[int, str]] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)


class TencentSimulator:
    """Usage: `async with TencentSimulator() as sim:` then point WECOM_API_BASE and
    WECHAT_API_BASE at `sim.base_url`."""

    def __init__(
        self,
        *,
        corp_id: str = "wwsimcorp0000000001",
        corp_secret: str | None = None,
        agent_id: str = "1000002",
        oa_app_id: str = "wxsimoa000000001",
        oa_app_secret: str | None = None,
        token_ttl: int = 7200,
        oa_token_grace: float = 300.0,
    ) -> None:
        self.clock = Clock()
        self.corp_id = corp_id
        self.corp_secret = corp_secret or random_id("", 43)
        self.agent_id = agent_id
        self.token_ttl = token_ttl
        self.oa_token_grace = oa_token_grace
        self.wecom = WeComCorp(self.clock, corp_id, agent_id, lambda: self.base_url)
        self.oa = OfficialAccounts(self.clock)
        self.oa.base_url = lambda: self.base_url
        account = self.oa.add_account(oa_app_id, oa_app_secret)
        self.oa_app_id, self.oa_app_secret = account.app_id, account.secret
        self._tokens: dict[str, _Token] = {}
        self._calls: list[SimCall] = []
        self._faults: defaultdict[str, _Faults] = defaultdict(_Faults)
        self.oauth = WeComOAuth(self.clock, corp_id, agent_id)
        self._wecom_routes = {**self.wecom.routes(), **self.oauth.routes()}
        self._wecom_routes.setdefault(GROUPMSG_LIST_V2, lambda ctx: groupmsg_list_v2(self.wecom, ctx))
        self._oa_routes = self.oa.routes()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.sms = SmsGateway()  # POST {base_url}/sim/sms/send (campaigns.sms.SimulatorSms)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        # Picture URLs first: showqrcode lives under /cgi-bin/ but takes no access token.
        app.router.add_get(OA_SHOWQRCODE_PATH, self._showqrcode)
        app.router.add_get(CONTACT_WAY_QR_PATH + "{config_id}.png", self._contact_way_qr)
        app.router.add_route("*", "/cgi-bin/{tail:.*}", self._handle)
        app.router.add_route("*", "/card/{tail:.*}", self._handle)  # the card API (api.weixin.qq.com/card/…)
        app.router.add_get(LANDING_PAGE_PATH, self._landing_page)
        app.router.add_get(AUTHORIZE_PATH, self._authorize)  # open.weixin.qq.com in production
        app.router.add_post(SMS_PATH, self.sms.handle)  # an SMS provider in production
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TencentSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test controls

    def inject(self, path: str, errcode: int, times: int = 1, errmsg: str | None = None) -> None:
        """The next `times` calls of `path` answer `errcode` (a token error also kills that token)."""
        msg = errmsg or {-1: "system busy", 45009: "api freq out of limit", 45033: "api concurrent out of limit"}.get(
            errcode, "injected error"
        )
        self._faults[path].errors.extend([(errcode, msg)] * times)

    def delay(self, path: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `path` are answered only after `seconds` (client timeouts)."""
        self._faults[path].delays.extend([seconds] * times)

    def clear_faults(self) -> None:
        """Forget injected errors and delays not used yet."""
        self._faults.clear()

    def calls(self, path: str | None = None) -> list[SimCall]:
        return [c for c in self._calls if path is None or c.path == path]

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (tokens, welcome codes, 48-hour windows age)."""
        self.clock.advance(seconds)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired now (→ 42001)."""
        now = self.clock.now()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)

    def revoke_tokens(self) -> None:
        """Every token issued so far is invalid now (→ 40014 / 40001)."""
        for token in self._tokens.values():
            token.revoked = True

    # ------------------------------------------------------------------ state helpers

    def add_staff(self, userid: str, name: str | None = None) -> None:
        self.wecom.add_staff(userid, name)

    def add_external_contact(
        self,
        external_userid: str,
        *,
        unionid: str | None = None,
        name: str = "客户",
        follow_userid: str | None = None,
        state: str | None = None,
    ) -> ExternalContact:
        return self.wecom.add_external_contact(
            external_userid, unionid=unionid, name=name, follow_userid=follow_userid, state=state
        )

    def issue_welcome_code(self, userid: str, external_userid: str) -> str:
        return self.wecom.issue_welcome_code(userid, external_userid)

    def add_official_account(self, app_id: str | None = None, secret: str | None = None) -> OfficialAccount:
        return self.oa.add_account(app_id, secret)

    def add_oa_follower(
        self,
        openid: str,
        *,
        unionid: str | None = None,
        app_id: str | None = None,
        subscribe: bool = True,
        scene_str: str | None = None,
    ) -> Follower:
        return self.oa.add_follower(
            app_id or self.oa_app_id, openid, unionid=unionid, subscribe=subscribe, scene_str=scene_str
        )

    @property
    def app_messages(self) -> list[Any]:
        return self.wecom.app_messages

    @property
    def oauth_user(self) -> str | None:
        """The WeCom member using the "browser" that OAuth2 pages are opened in."""
        return self.oauth.current_user

    @oauth_user.setter
    def oauth_user(self, userid: str | None) -> None:
        self.oauth.current_user = userid

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = dict(request.query)
        token = query.pop("access_token", None)
        body, parse_error = await self._read_body(request)
        call = SimCall(request.method, path, query, body, self.clock.now())
        self._calls.append(call)
        faults = self._faults.get(path)
        if faults is not None and faults.delays:
            await asyncio.sleep(faults.delays.popleft())
        try:
            answer = self._answer(path, query, token, body, parse_error)
        except SimError as exc:
            answer = exc.body()
        except _NotFound:
            call.errcode = 404
            raise web.HTTPNotFound() from None
        call.errcode = int(answer.get("errcode", 0))
        call.answer = answer
        return web.json_response(answer, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _showqrcode(self, request: web.Request) -> web.StreamResponse:
        # Like mp.weixin.qq.com: a plain GET with the ticket, no token; the picture or nothing.
        ticket = request.query.get("ticket", "")
        return await self._picture(request, lambda: self.oa.qrcode_picture(ticket) if ticket else None)

    async def _contact_way_qr(self, request: web.Request) -> web.StreamResponse:
        config_id = request.match_info["config_id"]
        return await self._picture(request, lambda: self.wecom.contact_way_picture(config_id))

    async def _picture(self, request: web.Request, render: Callable[[], bytes | None]) -> web.StreamResponse:
        call = SimCall(request.method, request.path, dict(request.query), None, self.clock.now())
        self._calls.append(call)
        faults = self._faults.get(request.path)
        if faults is not None and faults.delays:  # `delay` works here too (download timeouts)
            await asyncio.sleep(faults.delays.popleft())
        png = render()
        call.errcode = 0 if png is not None else 404
        if png is None:
            raise web.HTTPNotFound()
        return web.Response(body=png, content_type="image/png")

    async def _landing_page(self, request: web.Request) -> web.StreamResponse:
        # Like mp.weixin.qq.com: the page of a landing page id, its cards each with a claim button.
        self._calls.append(SimCall(request.method, request.path, dict(request.query), None, self.clock.now()))
        try:
            page = self.oa.landing_page(int(request.query.get("page_id", "")))
        except ValueError:
            page = None
        if page is None:
            raise web.HTTPNotFound()
        cards = "".join(f"<li data-card-id=\"{html.escape(c)}\">{html.escape(c)}</li>" for c in page["card_ids"])
        title = html.escape(str(page["title"]))
        return web.Response(text=f"<html><body><h1>{title}</h1><ul>{cards}</ul></body></html>",
                            content_type="text/html")

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        self._calls.append(SimCall(request.method, request.path, dict(request.query), None, self.clock.now()))
        return await self.oauth.authorize(request)

    async def _read_body(self, request: web.Request) -> tuple[Any, bool]:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.name == "media":
                    data = bytes(await part.read())
                    return UploadedFile(part.filename or "", part.headers.get("Content-Type", ""), data), False
            return None, False
        raw = await request.read()
        if not raw.strip():
            return None, False
        try:
            return json.loads(raw), False
        except ValueError:
            return raw, True

    def _answer(
        self, path: str, query: dict[str, str], token: str | None, body: Any, parse_error: bool
    ) -> dict[str, Any]:
        known = path in (WECOM_TOKEN_PATH, OA_TOKEN_PATH) or path in self._wecom_routes or path in self._oa_routes
        if not known:
            raise _NotFound
        faults = self._faults.get(path)
        if faults is not None and faults.errors:
            errcode, errmsg = faults.errors.popleft()
            self._spoil(token, errcode)
            return {"errcode": errcode, "errmsg": errmsg}
        if path == WECOM_TOKEN_PATH:
            return self._wecom_gettoken(query)
        if path == OA_TOKEN_PATH:
            return self._oa_token(query)
        realms = [r for r, routes in (("wecom", self._wecom_routes), ("oa", self._oa_routes)) if path in routes]
        info = self._check_token(token, realms)
        if parse_error:
            raise SimError(47001, "data format error")
        handler: Callable[[Ctx], dict[str, Any]]
        handler = self._wecom_routes[path] if info.realm == "wecom" else self._oa_routes[path]
        result = handler(Ctx(query=query, body=body, owner=info.owner, agent_id=info.agent_id))
        if info.realm == "wecom":
            return {"errcode": 0, "errmsg": "ok", **result}
        return result  # official-account success answers carry no errcode unless documented

    def _spoil(self, token: str | None, errcode: int) -> None:
        # An injected token error is made true, so the client really has to fetch a new token.
        info = self._tokens.get(token or "")
        if info is None:
            return
        if errcode == 42001:
            info.expires_at = min(info.expires_at, self.clock.now())
        elif errcode in (40001, 40014):
            info.revoked = True

    def _check_token(self, token: str | None, realms: list[str]) -> _Token:
        invalid = (
            (40014, "invalid access_token")
            if "wecom" in realms
            else (
                40001,
                "invalid credential, access_token is invalid or not latest",
            )
        )
        if not token:
            raise SimError(41001, "access_token missing")
        info = self._tokens.get(token)
        now = self.clock.now()
        if info is None or info.revoked or info.realm not in realms:
            raise SimError(*invalid)
        if info.replaced_at is not None and info.replaced_at <= now:
            raise SimError(*invalid)  # "access_token is invalid or not latest"
        if info.expires_at <= now:
            raise SimError(42001, "access_token expired")
        return info

    def _issue(self, realm: str, owner: str, agent_id: str | None) -> _Token:
        info = _Token(random_id("", 64), realm, owner, agent_id, self.clock.now() + self.token_ttl)
        self._tokens[info.value] = info
        return info

    def _wecom_gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        corp_id, secret = query.get("corpid", ""), query.get("corpsecret", "")
        if not corp_id:
            raise SimError(41002, "corpid missing")
        if corp_id != self.corp_id:
            raise SimError(40013, "invalid corpid")
        if not secret:
            raise SimError(41004, "corpsecret missing")
        if secret != self.corp_secret:
            raise SimError(40001, "invalid secret")
        now = self.clock.now()
        current = next(
            (
                t
                for t in self._tokens.values()
                if t.realm == "wecom" and t.owner == corp_id and not t.revoked and t.expires_at > now
            ),
            None,
        )
        # WeCom: "repeated calls within the validity return the same token".
        info = current or self._issue("wecom", corp_id, self.agent_id)
        return {"errcode": 0, "errmsg": "ok", "access_token": info.value, "expires_in": int(info.expires_at - now)}

    def _oa_token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            raise SimError(40002, "invalid grant_type")
        app_id, secret = query.get("appid", ""), query.get("secret", "")
        if not app_id:
            raise SimError(41002, "appid missing")
        account = self.oa.accounts.get(app_id)
        if account is None:
            raise SimError(40013, "invalid appid")
        if not secret:
            raise SimError(41004, "appsecret missing")
        if secret != account.secret:
            raise SimError(40125, "invalid appsecret")
        now = self.clock.now()
        # An OA token fetch replaces the previous token, which stays usable for a grace period only.
        for t in self._tokens.values():
            if t.realm == "oa" and t.owner == app_id and t.replaced_at is None:
                t.replaced_at = now + self.oa_token_grace
        info = self._issue("oa", app_id, None)
        return {"access_token": info.value, "expires_in": self.token_ttl}


class _NotFound(Exception):
    pass
