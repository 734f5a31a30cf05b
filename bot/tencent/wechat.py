"""WeChat official account (公众号) API client; one instance per appid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.settings import Settings
from bot.tencent.base import TencentClient
from bot.tencent.errors import WECHAT_TOKEN_ERRORS
from profile_store.db import Database

# A temporary QR code lives at most 30 days (Tencent caps larger values).
MAX_QR_EXPIRE_SECONDS = 2_592_000
# QR pictures are served by mp.weixin.qq.com, not by the API host.
TENCENT_API_BASE = "https://api.weixin.qq.com"
TENCENT_MP_BASE = "https://mp.weixin.qq.com"


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
        mp_base: str | None = None,
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
        self.mp_base = (mp_base or mp_base_for(base_url)).rstrip("/")

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
            mp_base=settings.wechat_mp_base,
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

    def qrcode_picture_url(self, ticket: str) -> str:
        """Where the picture of a `create_qrcode` ticket is (no token needed; the ticket is the secret)."""
        return f"{self.mp_base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}"

    async def download_qrcode(self, ticket: str) -> bytes:
        """The picture of a parametric QR code (showqrcode answers an image; 404 for a bad ticket)."""
        return await self.download(self.qrcode_picture_url(ticket))

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

    async def create_card_landing_page(
        self, card_ids: Sequence[str], *, title: str, scene: str = "SCENE_H5", banner: str = "",
        can_share: bool = False,
    ) -> dict[str, Any]:
        """A landing page from which a customer claims the cards in WeChat → `url`, `page_id`.
        40073: a card that is not this account's."""
        body = {
            "banner": banner,
            "page_title": title,
            "can_share": can_share,
            "scene": scene,
            "card_list": [{"card_id": c, "thumb_url": banner} for c in card_ids],
        }
        return await self.post("/card/landingpage/create", body)

    async def send_custom_message(self, openid: str, msgtype: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """A customer-service message; only within 48 h of the customer's last interaction (45015)."""
        body = {"touser": openid, "msgtype": msgtype, msgtype: dict(content)}
        return await self.post("/cgi-bin/message/custom/send", body)


def mp_base_for(api_base: str) -> str:
    """Where QR pictures are when WECHAT_MP_BASE is not set: Tencent's mp host next to Tencent's API,
    otherwise the API base itself (a simulator or a proxy serves both)."""
    return TENCENT_MP_BASE if api_base.rstrip("/") == TENCENT_API_BASE else api_base
