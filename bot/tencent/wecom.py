"""WeCom (企业微信) API client of the self-built app: customer contact and app messages.

Every method returns Tencent's JSON answer as a dict (errcode 0) or raises `TencentAPIError`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from bot.settings import Settings
from bot.tencent.base import TencentClient, Upload
from bot.tencent.errors import WECOM_TOKEN_ERRORS
from profile_store.db import Database

MEDIA_KINDS = frozenset({"image", "voice", "video", "file"})


class WeComClient(TencentClient):
    token_path = "/cgi-bin/gettoken"
    token_errors = WECOM_TOKEN_ERRORS

    def __init__(
        self,
        http: aiohttp.ClientSession,
        db: Database,
        *,
        base_url: str,
        corp_id: str,
        secret: str,
        agent_id: str,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        # Tokens are per app secret; the key names the app, never the secret.
        super().__init__(
            http,
            db,
            base_url=base_url,
            token_key=f"wecom:{corp_id}:{agent_id}",
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
        )
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._secret = secret

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, db: Database, settings: Settings) -> WeComClient:
        missing = [
            name
            for name, value in (
                ("WECOM_CORP_ID", settings.wecom_corp_id),
                ("WECOM_SECRET", settings.wecom_secret),
                ("WECOM_AGENT_ID", settings.wecom_agent_id),
            )
            if not value
        ]
        if missing:
            raise ValueError("WeCom client needs " + ", ".join(missing))
        return cls(
            http,
            db,
            base_url=settings.wecom_api_base,
            corp_id=settings.wecom_corp_id or "",
            secret=settings.wecom_secret or "",
            agent_id=settings.wecom_agent_id or "",
            timeout=settings.api_timeout_seconds,
            max_retries=settings.api_max_retries,
        )

    def token_params(self) -> dict[str, str]:
        return {"corpid": self.corp_id, "corpsecret": self._secret}

    # ------------------------------------------------------------------ customer contact

    async def get_external_contact(self, external_userid: str, cursor: str | None = None) -> dict[str, Any]:
        """`external_contact` (with `unionid` when the open platform is bound) and `follow_user`."""
        return await self.get("/cgi-bin/externalcontact/get", {"external_userid": external_userid, "cursor": cursor})

    async def add_contact_way(
        self,
        *,
        user: Sequence[str],
        state: str | None = None,
        type: int = 1,
        scene: int = 2,
        remark: str | None = None,
        skip_verify: bool = True,
        style: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a 「联系我」 way (type 1 single / 2 multi; scene 2 = QR) → `config_id`, `qr_code`."""
        body: dict[str, Any] = {"type": type, "scene": scene, "skip_verify": skip_verify, "user": list(user)}
        for key, value in (("state", state), ("remark", remark), ("style", style)):
            if value is not None:
                body[key] = value
        body.update(extra or {})
        return await self.post("/cgi-bin/externalcontact/add_contact_way", body)

    async def send_welcome_msg(
        self,
        welcome_code: str,
        *,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Use a welcome code (20 s, once). 41051 (already used) is final, 41096 is retried."""
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text is not None:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        return await self.post("/cgi-bin/externalcontact/send_welcome_msg", body)

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        *,
        add_tag: Sequence[str] = (),
        remove_tag: Sequence[str] = (),
    ) -> dict[str, Any]:
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add_tag),
            "remove_tag": list(remove_tag),
        }
        return await self.post("/cgi-bin/externalcontact/mark_tag", body)

    async def get_corp_tag_list(self, *, tag_id: Sequence[str] = (), group_id: Sequence[str] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if tag_id:
            body["tag_id"] = list(tag_id)
        if group_id:
            body["group_id"] = list(group_id)
        return await self.post("/cgi-bin/externalcontact/get_corp_tag_list", body)

    async def add_corp_tag(
        self,
        tags: Sequence[str | Mapping[str, Any]],
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
    ) -> dict[str, Any]:
        """Add tags to a group (by id, or by name: created when new) → `tag_group` with ids."""
        body: dict[str, Any] = {"tag": [{"name": t} if isinstance(t, str) else dict(t) for t in tags]}
        for key, value in (("group_id", group_id), ("group_name", group_name), ("order", order)):
            if value is not None:
                body[key] = value
        return await self.post("/cgi-bin/externalcontact/add_corp_tag", body)

    async def add_msg_template(
        self,
        *,
        sender: str,
        external_userid: Sequence[str],
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        allow_select: bool = False,
    ) -> dict[str, Any]:
        """A 1:1 mass send through guide `sender` (confirmed in their client) → `msgid`, `fail_list`."""
        body: dict[str, Any] = {
            "chat_type": "single",
            "external_userid": list(external_userid),
            "sender": sender,
            "allow_select": allow_select,
        }
        if text is not None:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        return await self.post("/cgi-bin/externalcontact/add_msg_template", body)

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"msgid": msgid, "userid": userid}
        if limit is not None:
            body["limit"] = limit
        if cursor:
            body["cursor"] = cursor
        return await self.post("/cgi-bin/externalcontact/get_groupmsg_send_result", body)

    # ------------------------------------------------------------------ OAuth2 (web pages opened in WeCom)

    async def get_user_info(self, code: str) -> dict[str, Any]:
        """Who opened a page: the OAuth2 `code` → `userid` (a member of the corp) or `openid`
        (anyone else). Codes are single-use and live 5 minutes: 40029 otherwise (final)."""
        return await self.get("/cgi-bin/auth/getuserinfo", {"code": code})

    # ------------------------------------------------------------------ app messages and media

    async def send_app_message(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """message/send: `touser` + `msgtype` (text/markdown/textcard/template_card/image) + content.

        `agentid` defaults to this app's. Partial failures come back as `invaliduser`.
        """
        body = dict(payload)
        body.setdefault("agentid", _agent_id(self.agent_id))
        return await self.post("/cgi-bin/message/send", body)

    async def send_text(self, touser: Sequence[str], content: str) -> dict[str, Any]:
        return await self.send_app_message(
            {"touser": "|".join(touser), "msgtype": "text", "text": {"content": content}}
        )

    async def upload_media(
        self, kind: str, filename: str, data: bytes, content_type: str | None = None
    ) -> dict[str, Any]:
        """Temporary media (3 days) → `media_id` for an `image` app message."""
        if kind not in MEDIA_KINDS:
            raise ValueError(f"media kind must be one of {sorted(MEDIA_KINDS)}, not {kind!r}")
        ctype = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return await self.request(
            "POST",
            "/cgi-bin/media/upload",
            params={"type": kind},
            upload=Upload("media", filename, data, ctype),
        )


def _agent_id(agent_id: str) -> int | str:
    # Tencent documents agentid as an integer; keep a non-numeric one as given (Tencent rejects it).
    return int(agent_id) if agent_id.isdigit() else agent_id
