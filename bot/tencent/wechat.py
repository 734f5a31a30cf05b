"""WeChat official account (公众号) API client; one instance per appid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.settings import Settings
from bot.tencent.base import TencentClient
from bot.tencent.errors import WECHAT_TOKEN_ERRORS
from profile_store.db import Database

# A temporary QR code lives at most 30 days (Tencent caps larger values).
MAX_QR_EXPIRE_SECONDS = 2_592_000


class OfficialAccountClient(TencentClient):
    token_path = "/cgi-bin/token"
    token_errors = WECHAT_TOKEN_ERRORS

    def __init__(
        self,
        http: aiohttp.ClientSession,
        db: Database,
        *,
        base_url: str,
        app_id: str,
        secret: str,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        super().__init__(
            http,
            db,
            base_url=base_url,
            token_key=f"wechat:{app_id}",
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
        )
        self.app_id = app_id
        self._secret = secret

    @classmethod
    def from_settings(
        cls, http: aiohttp.ClientSession, db: Database, settings: Settings, app_id: str
    ) -> OfficialAccountClient:
        account = settings.official_accounts().get(app_id)
        if account is None or not account.app_secret:
            raise ValueError(f"official account {app_id} is not configured with a secret")
        return cls(
            http,
            db,
            base_url=settings.wechat_api_base,
            app_id=app_id,
            secret=account.app_secret,
            timeout=settings.api_timeout_seconds,
            max_retries=settings.api_max_retries,
        )

    def token_params(self) -> dict[str, str]:
        return {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}

    async def get_user_info(self, openid: str, lang: str = "zh_CN") -> dict[str, Any]:
        """`subscribe` (1/0) and, for a follower, `unionid` (when bound to the open platform)."""
        return await self.get("/cgi-bin/user/info", {"openid": openid, "lang": lang})

    async def create_qrcode(self, scene_str: str, permanent: bool, expire_seconds: int | None = None) -> dict[str, Any]:
        """A parametric QR code (`QR_STR_SCENE` / `QR_LIMIT_STR_SCENE`) → `ticket`, `url`."""
        body: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}},
        }
        if not permanent:
            body["expire_seconds"] = min(expire_seconds or MAX_QR_EXPIRE_SECONDS, MAX_QR_EXPIRE_SECONDS)
        return await self.post("/cgi-bin/qrcode/create", body)

    async def send_template_message(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> dict[str, Any]:
        """A template message → `msgid`. `client_msg_id` makes Tencent send it once (10 min)."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: v if isinstance(v, Mapping) else {"value": v} for k, v in data.items()},
        }
        if url is not None:
            body["url"] = url
        if miniprogram is not None:
            body["miniprogram"] = dict(miniprogram)
        if client_msg_id is not None:
            body["client_msg_id"] = client_msg_id
        return await self.post("/cgi-bin/message/template/send", body)

    async def send_custom_message(self, openid: str, msgtype: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """A customer-service message; only within 48 h of the customer's last interaction (45015)."""
        body = {"touser": openid, "msgtype": msgtype, msgtype: dict(content)}
        return await self.post("/cgi-bin/message/custom/send", body)
