"""`CallbackDriver`: sends callbacks to the bot the way Tencent's servers do.

Messages are Tencent-format XML, encrypted and signed with wechatpy's crypto — an implementation
independent of ours (`bot/crypto.py`), so a shared misreading of the protocol cannot hide.
Delivery is Tencent's: any answer other than HTTP 200 within 5 s is a failure and is retried,
3 attempts in all; a retry carries exactly the same request.

When given the simulator, the driver also makes Tencent's side true: an `add_external_contact`
registers the contact (with its unionid) and issues the welcome code; a follow registers the
follower; a message restarts the 48-hour customer-service window.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from defusedxml import ElementTree
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed
from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.enterprise.crypto import PrpCrypto as WeComPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.utils import WeChatSigner

from bot.settings import Settings
from bot.simulator.common import random_id
from bot.simulator.server import TencentSimulator

TENCENT_ANSWER_TIMEOUT = 5.0
TENCENT_ATTEMPTS = 3


@dataclass(frozen=True)
class OAEndpoint:
    """An official account as its callbacks are sent: appid, Token, EncodingAESKey (None = plain)."""

    app_id: str
    token: str
    aes_key: str | None = None
    original_id: str = "gh_simulated0001"
    path: str | None = None  # default /wechat/callback/{appid}


@dataclass(frozen=True)
class Attempt:
    status: int | None  # None: no answer (timeout, connection refused)
    body: str
    error: str = ""


@dataclass
class DeliveryResult:
    """What happened to one callback: delivered (`ok`), last status and body, every attempt."""

    ok: bool
    status: int | None
    body: str
    attempts: int
    history: list[Attempt] = field(default_factory=list)
    xml: str = ""  # the clear message that was sent


class _Failed(Exception):
    pass


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: Mapping[str, str | int | None]) -> str:
    """Tencent's flat message XML: strings in CDATA, integers bare; None fields are left out."""
    parts = ["<xml>"]
    for name, value in fields.items():
        if value is None:
            continue
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"<{name}>{text}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def _signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


class CallbackDriver:
    def __init__(
        self,
        bot_url: str,
        *,
        corp_id: str,
        agent_id: str,
        wecom_token: str,
        wecom_aes_key: str,
        accounts: list[OAEndpoint] | tuple[OAEndpoint, ...] = (),
        sim: TencentSimulator | None = None,
        attempts: int = TENCENT_ATTEMPTS,
        answer_timeout: float = TENCENT_ANSWER_TIMEOUT,
        retry_interval: float = 0.0,
        http: aiohttp.ClientSession | None = None,
        wecom_path: str = "/wecom/callback",
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.wecom_token = wecom_token
        self.wecom_aes_key = wecom_aes_key
        self.accounts = {a.app_id: a for a in accounts}
        self.sim = sim
        self.attempts = attempts
        self.answer_timeout = answer_timeout
        self.retry_interval = retry_interval
        self.wecom_path = wecom_path
        self._http = http
        self._own_http = http is None
        self.clock = time.time  # what CreateTime and timestamp are taken from

    @classmethod
    def from_settings(
        cls, settings: Settings, bot_url: str, *, sim: TencentSimulator | None = None, **kwargs: Any
    ) -> CallbackDriver:
        accounts = [OAEndpoint(a.app_id, a.token, a.aes_key) for a in settings.official_accounts().values()]
        return cls(
            bot_url,
            corp_id=settings.wecom_corp_id or "",
            agent_id=settings.wecom_agent_id or "",
            wecom_token=settings.wecom_token or "",
            wecom_aes_key=settings.wecom_aes_key or "",
            accounts=accounts,
            sim=sim,
            **kwargs,
        )

    async def __aenter__(self) -> CallbackDriver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # ------------------------------------------------------------------ WeCom

    async def wecom_add_external_contact(
        self,
        userid: str,
        external_userid: str,
        *,
        state: str | None = None,
        unionid: str | None = None,
        name: str = "客户",
        welcome_code: str | None = None,
        half: bool = False,
    ) -> DeliveryResult:
        """A customer added guide `userid`; registered in the simulator (with a welcome code)."""
        if self.sim is not None:
            if userid not in self.sim.wecom.staff:
                self.sim.add_staff(userid)
            self.sim.add_external_contact(
                external_userid, unionid=unionid, name=name, follow_userid=userid, state=state
            )
            if welcome_code is None:
                welcome_code = self.sim.issue_welcome_code(userid, external_userid)
        elif welcome_code is None:
            welcome_code = random_id("wc", 40)
        change = "add_half_external_contact" if half else "add_external_contact"
        return await self._external_contact(change, userid, external_userid, State=state, WelcomeCode=welcome_code)

    async def wecom_edit_external_contact(self, userid: str, external_userid: str) -> DeliveryResult:
        return await self._external_contact("edit_external_contact", userid, external_userid)

    async def wecom_del_external_contact(
        self, userid: str, external_userid: str, *, source: str | None = None
    ) -> DeliveryResult:
        """The guide deleted the customer."""
        if self.sim is not None:
            self.sim.wecom.remove_follow(userid, external_userid)
        return await self._external_contact("del_external_contact", userid, external_userid, Source=source)

    async def wecom_del_follow_user(self, userid: str, external_userid: str) -> DeliveryResult:
        """The customer deleted the guide."""
        if self.sim is not None:
            self.sim.wecom.remove_follow(userid, external_userid)
        return await self._external_contact("del_follow_user", userid, external_userid)

    async def _external_contact(
        self, change: str, userid: str, external_userid: str, **extra: str | None
    ) -> DeliveryResult:
        xml = build_xml(
            {
                "ToUserName": self.corp_id,
                "FromUserName": "sys",  # always "sys" for change_external_contact (doc 96361)
                "CreateTime": int(self.clock()),
                "MsgType": "event",
                "Event": "change_external_contact",
                "ChangeType": change,
                "UserID": userid,
                "ExternalUserID": external_userid,
                **extra,
            }
        )
        return await self.send_wecom(xml)

    async def wecom_text(self, userid: str, content: str, *, msg_id: str | None = None) -> DeliveryResult:
        """Staff member `userid` wrote `content` to the app."""
        xml = build_xml(
            {
                "ToUserName": self.corp_id,
                "FromUserName": userid,
                "CreateTime": int(self.clock()),
                "MsgType": "text",
                "Content": content,
                "MsgId": msg_id or str(secrets.randbits(63)),
                "AgentID": int(self.agent_id) if self.agent_id.isdigit() else self.agent_id,
            }
        )
        return await self.send_wecom(xml)

    async def send_wecom(self, xml: str) -> DeliveryResult:
        """POST one clear WeCom message, encrypted and signed as Tencent does."""
        crypto = WeComCrypto(self.wecom_token, self.wecom_aes_key, self.corp_id)
        timestamp, nonce = str(int(self.clock())), random_id("", 10)
        encrypt, signature = _encrypted(crypto.encrypt_message(xml, nonce, timestamp))
        envelope = build_xml({"ToUserName": self.corp_id, "AgentID": self.agent_id, "Encrypt": encrypt})
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        result = await self._deliver("POST", self.bot_url + self.wecom_path, params, envelope)
        result.xml = xml
        return result

    async def verify_url(self, app_id: str | None = None) -> DeliveryResult:
        """The GET check made when the callback URL is saved: ok when the bot echoes the secret."""
        timestamp, nonce = str(int(self.clock())), random_id("", 10)
        echo = str(secrets.randbits(63))
        if app_id is None:
            echostr = WeComPrpCrypto(_aes_key(self.wecom_aes_key)).encrypt(echo, self.corp_id).decode()
            params = {
                "msg_signature": _signature(self.wecom_token, timestamp, nonce, echostr),
                "timestamp": timestamp,
                "nonce": nonce,
                "echostr": echostr,
            }
            url = self.bot_url + self.wecom_path
        else:
            # An official account sends echostr in clear, signed over token, timestamp and nonce.
            account = self.accounts[app_id]
            params = {
                "signature": _signature(account.token, timestamp, nonce),
                "timestamp": timestamp,
                "nonce": nonce,
                "echostr": echo,
            }
            url = self._oa_url(account)
        result = await self._deliver("GET", url, params, None)
        result.ok = result.ok and result.body == echo
        return result

    # ------------------------------------------------------------------ official accounts

    def _account(self, app_id: str | None) -> OAEndpoint:
        if app_id is None:
            if len(self.accounts) != 1:
                raise ValueError("several official accounts: say which app_id")
            return next(iter(self.accounts.values()))
        return self.accounts[app_id]

    def _oa_url(self, account: OAEndpoint) -> str:
        return self.bot_url + (account.path or f"/wechat/callback/{account.app_id}")

    def _oa_fields(self, account: OAEndpoint, openid: str, msg_type: str) -> dict[str, str | int | None]:
        return {
            "ToUserName": account.original_id,
            "FromUserName": openid,
            "CreateTime": int(self.clock()),
            "MsgType": msg_type,
        }

    async def oa_subscribe(
        self,
        openid: str,
        *,
        scene: str | None = None,
        unionid: str | None = None,
        app_id: str | None = None,
    ) -> DeliveryResult:
        """Follow; from a parametric QR code when `scene` is given (EventKey qrscene_<scene>)."""
        account = self._account(app_id)
        if self.sim is not None:
            self.sim.oa.add_follower(account.app_id, openid, unionid=unionid, scene_str=scene)
        fields = self._oa_fields(account, openid, "event")
        fields["Event"] = "subscribe"
        if scene is not None:
            fields["EventKey"] = f"qrscene_{scene}"
            fields["Ticket"] = random_id("gQ", 40)
        else:
            fields["EventKey"] = ""
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_unsubscribe(self, openid: str, *, app_id: str | None = None) -> DeliveryResult:
        account = self._account(app_id)
        if self.sim is not None:
            self.sim.oa.unsubscribe(account.app_id, openid)
        fields = self._oa_fields(account, openid, "event")
        fields.update(Event="unsubscribe", EventKey="")
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_scan(self, openid: str, scene: str, *, app_id: str | None = None) -> DeliveryResult:
        """A follower scanned a parametric QR code (EventKey is the bare scene)."""
        account = self._account(app_id)
        if self.sim is not None:
            self.sim.oa.touch(account.app_id, openid)
        fields = self._oa_fields(account, openid, "event")
        fields.update(Event="SCAN", EventKey=scene, Ticket=random_id("gQ", 40))
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_text(
        self, openid: str, content: str, *, msg_id: str | None = None, app_id: str | None = None
    ) -> DeliveryResult:
        account = self._account(app_id)
        if self.sim is not None:
            self.sim.oa.touch(account.app_id, openid)
        fields = self._oa_fields(account, openid, "text")
        fields.update(Content=content, MsgId=msg_id or str(secrets.randbits(63)))
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_user_get_card(
        self,
        openid: str,
        card_id: str,
        code: str,
        *,
        unionid: str | None = None,
        outer_str: str = "",
        app_id: str | None = None,
    ) -> DeliveryResult:
        account = self._account(app_id)
        fields = self._oa_fields(account, openid, "event")
        fields.update(
            Event="user_get_card",
            CardId=card_id,
            IsGiveByFriend=0,
            UserCardCode=code,
            FriendUserName="",
            OuterId=0,
            OldUserCardCode="",
            OuterStr=outer_str,
            IsRestoreMemberCard=0,
            UnionId=unionid,
        )
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_user_consume_card(
        self,
        openid: str,
        card_id: str,
        code: str,
        *,
        consume_source: str = "FROM_API",
        location_name: str = "",
        staff_openid: str = "",
        outer_str: str = "",
        app_id: str | None = None,
    ) -> DeliveryResult:
        account = self._account(app_id)
        fields = self._oa_fields(account, openid, "event")
        fields.update(
            Event="user_consume_card",
            CardId=card_id,
            UserCardCode=code,
            ConsumeSource=consume_source,
            LocationName=location_name,
            StaffOpenId=staff_openid,
            VerifyCode="",
            RemarkAmount="",
            OuterStr=outer_str,
        )
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def oa_user_del_card(
        self, openid: str, card_id: str, code: str, *, app_id: str | None = None
    ) -> DeliveryResult:
        account = self._account(app_id)
        fields = self._oa_fields(account, openid, "event")
        fields.update(Event="user_del_card", CardId=card_id, UserCardCode=code)
        return await self.send_oa(build_xml(fields), account.app_id, openid=openid)

    async def send_oa(self, xml: str, app_id: str | None = None, *, openid: str = "") -> DeliveryResult:
        """POST one clear OA message: safe mode (AES) when the account has a key, else plain."""
        account = self._account(app_id)
        timestamp, nonce = str(int(self.clock())), random_id("", 10)
        params = {
            "signature": _signature(account.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }
        if account.aes_key:
            crypto = OACrypto(account.token, account.aes_key, account.app_id)
            encrypt, msg_signature = _encrypted(crypto.encrypt_message(xml, nonce, timestamp))
            body = build_xml({"ToUserName": account.original_id, "Encrypt": encrypt})
            params.update(encrypt_type="aes", msg_signature=msg_signature)
        else:
            body = xml
        result = await self._deliver("POST", self._oa_url(account), params, body)
        result.xml = xml
        return result

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, method: str, url: str, params: dict[str, str], body: str | None) -> DeliveryResult:
        history: list[Attempt] = []
        data = body.encode("utf-8") if body is not None else None
        headers = {"Content-Type": "text/xml; charset=utf-8"} if data is not None else {}

        async def once() -> None:
            try:
                async with self.http.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.answer_timeout),
                ) as resp:
                    text = await resp.text(errors="replace")
                    history.append(Attempt(resp.status, text))
            except TimeoutError:
                history.append(Attempt(None, "", f"no answer within {self.answer_timeout:g} s"))
                raise _Failed from None
            except aiohttp.ClientError as exc:
                history.append(Attempt(None, "", f"{type(exc).__name__}: {exc}"))
                raise _Failed from None
            if history[-1].status != 200:
                raise _Failed

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_fixed(self.retry_interval),
            retry=retry_if_exception_type(_Failed),
            reraise=True,
        )
        try:
            await retrying(once)
            ok = True
        except _Failed:
            ok = False
        last = history[-1]
        return DeliveryResult(ok, last.status, last.body, len(history), history)


def _aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def _encrypted(envelope: str) -> tuple[str, str]:
    """Encrypt and MsgSignature out of wechatpy's reply envelope."""
    root = ElementTree.fromstring(envelope)
    encrypt, signature = root.findtext("Encrypt"), root.findtext("MsgSignature")
    if not encrypt or not signature:
        raise ValueError("wechatpy produced an envelope without Encrypt/MsgSignature")
    return encrypt, signature
