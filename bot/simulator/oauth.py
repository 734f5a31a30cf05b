"""Simulated WeCom OAuth2 for web pages opened inside WeCom (doc 91022, 91023).

`GET /connect/oauth2/authorize` (open.weixin.qq.com in production) stands for the WeCom client:
it knows who is using the "browser" — a test sets `current_user` (a member's userid) or
`current_openid` (someone outside the corp) — and redirects to `redirect_uri` with a fresh
`code` and the caller's `state`. `/cgi-bin/auth/getuserinfo` turns a code into that identity, once,
within 5 minutes; a used, expired or unknown code is 40029, as Tencent answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.simulator.common import Clock, Ctx, SimError, random_id

CODE_TTL = 300.0  # seconds (doc 91023: "code 只能使用一次，5分钟未被使用自动过期")
SCOPES = frozenset({"snsapi_base", "snsapi_privateinfo"})
GETUSERINFO_PATH = "/cgi-bin/auth/getuserinfo"
AUTHORIZE_PATH = "/connect/oauth2/authorize"


@dataclass
class _Code:
    userid: str | None
    openid: str | None
    issued_at: float
    used: bool = False


class WeComOAuth:
    def __init__(self, clock: Clock, corp_id: str, agent_id: str) -> None:
        self.clock = clock
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.current_user: str | None = None  # the member using the WeCom client now
        self.current_openid: str | None = None  # or someone outside the corp
        self.codes: dict[str, _Code] = {}

    def routes(self) -> dict[str, Callable[[Ctx], dict[str, Any]]]:
        return {GETUSERINFO_PATH: self.getuserinfo}

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        """The redirect the WeCom client does; errors are a plain page, as Tencent shows one."""
        query = request.query
        if query.get("appid") != self.corp_id:
            return web.Response(status=400, text="appid 参数错误")
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return web.Response(status=400, text="redirect_uri 参数错误")
        if query.get("response_type") != "code" or query.get("scope") not in SCOPES:
            return web.Response(status=400, text="参数错误")
        agent = query.get("agentid")
        if (agent is not None and agent != self.agent_id) or (query.get("scope") != "snsapi_base" and not agent):
            return web.Response(status=400, text="agentid 参数错误")
        if self.current_user is None and self.current_openid is None:
            return web.Response(status=403, text="请在企业微信客户端打开链接")
        code = random_id("", 32)
        self.codes[code] = _Code(self.current_user, self.current_openid, self.clock.now())
        params = {"code": code, "state": query.get("state", "")}
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + separator + urlencode(params))

    def getuserinfo(self, ctx: Ctx) -> dict[str, Any]:
        value = ctx.query.get("code", "")
        if not value:
            raise SimError(41008, "missing code")
        code = self.codes.get(value)
        if code is None or code.used or self.clock.now() - code.issued_at > CODE_TTL:
            raise SimError(40029, "invalid code")
        code.used = True
        if code.userid is not None:
            return {"userid": code.userid}
        return {"openid": code.openid}
