"""Building Tencent-shaped callback requests for tests: event XML, signatures, encryption.

Encryption is done with wechatpy (an independent implementation) or with ours, so both directions
are covered. Signatures are computed here straight from tencent.md (sha1 of the sorted strings).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WorkCrypto

from bot.crypto import MessageCrypto
from bot.settings import Settings
from tests.conftest import TEST_SECRET

WECOM_TOKEN = "wecomCallbackToken"
WECOM_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
OA1 = "wxoaplain0000001"  # plain mode account (the default one)
OA1_TOKEN = "oaPlainToken"
OA2 = "wxoasafe00000002"  # safe-mode account
OA2_TOKEN = "oaSafeToken"
OA2_AES = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
OA_GH = "gh_0123456789ab"  # an OA's original id: ToUserName of its callbacks


def make_settings(db_url: str, *, corp_id: str, secret: str, agent_id: str, api_base: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "QIANMIAN_SECRET_KEY": TEST_SECRET,
        "WECOM_CORP_ID": corp_id,
        "WECOM_AGENT_ID": agent_id,
        "WECOM_SECRET": secret,
        "WECOM_TOKEN": WECOM_TOKEN,
        "WECOM_AES_KEY": WECOM_AES,
        "WECOM_API_BASE": api_base,
        "WECHAT_API_BASE": api_base,
        "WECHAT_APP_ID": OA1,
        "WECHAT_APP_SECRET": "oa1secret",
        "WECHAT_TOKEN": OA1_TOKEN,
        "WECHAT_ACCOUNTS": f"{OA2}:oa2secret:{OA2_TOKEN}:{OA2_AES}",
    }
    values.update(extra)
    return Settings(**values)


def sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def cdata(fields: dict[str, Any]) -> str:
    inner = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>"


# ---------------------------------------------------------------------------- event documents


def wecom_contact(
    change_type: str, user_id: str, external_userid: str, create_time: int, *, corp_id: str, **extra: Any
) -> str:
    return cdata(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": create_time,
            "MsgType": "event",
            "Event": "change_external_contact",
            "ChangeType": change_type,
            "UserID": user_id,
            "ExternalUserID": external_userid,
            **extra,
        }
    )


def wecom_text(user_id: str, msg_id: str, content: str, create_time: int, *, corp_id: str) -> str:
    return cdata(
        {
            "ToUserName": corp_id,
            "FromUserName": user_id,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
            "AgentID": 1000002,
        }
    )


def oa_event(event: str, openid: str, create_time: int, **extra: Any) -> str:
    return cdata(
        {
            "ToUserName": OA_GH,
            "FromUserName": openid,
            "CreateTime": create_time,
            "MsgType": "event",
            "Event": event,
            **extra,
        }
    )


def oa_text(openid: str, msg_id: str, content: str, create_time: int) -> str:
    return cdata(
        {
            "ToUserName": OA_GH,
            "FromUserName": openid,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


# ---------------------------------------------------------------------------- signed requests


@dataclass(frozen=True)
class Signed:
    params: dict[str, str]
    body: bytes


def _encrypt(xml: str, *, token: str, aes: str, receive_id: str, nonce: str, timestamp: str, impl: str) -> str:
    if impl == "wechatpy":
        crypto = WorkCrypto(token, aes, receive_id)
        envelope = crypto.encrypt_message(xml, nonce, timestamp)
        match = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope)
        assert match
        return match.group(1)
    return MessageCrypto(token, aes, receive_id).encrypt(xml)


def wecom_post(
    xml: str, *, corp_id: str, timestamp: int | None = None, nonce: str = "nonce1", impl: str = "wechatpy"
) -> Signed:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    encrypt = _encrypt(xml, token=WECOM_TOKEN, aes=WECOM_AES, receive_id=corp_id, nonce=nonce, timestamp=ts, impl=impl)
    body = cdata({"ToUserName": corp_id, "Encrypt": encrypt, "AgentID": "1000002"})
    return Signed(
        {"msg_signature": sha1_sorted(WECOM_TOKEN, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce},
        body.encode(),
    )


def wecom_echo(echo: str, *, corp_id: str, timestamp: int | None = None, nonce: str = "n") -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    encrypted = _encrypt(
        echo, token=WECOM_TOKEN, aes=WECOM_AES, receive_id=corp_id, nonce=nonce, timestamp=ts, impl="wechatpy"
    )
    return {
        "msg_signature": sha1_sorted(WECOM_TOKEN, ts, nonce, encrypted),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": encrypted,
    }


def oa_plain_post(xml: str, *, timestamp: int | None = None, nonce: str = "oan1", token: str = OA1_TOKEN) -> Signed:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return Signed({"signature": sha1_sorted(token, ts, nonce), "timestamp": ts, "nonce": nonce}, xml.encode())


def oa_safe_post(xml: str, *, timestamp: int | None = None, nonce: str = "oan2", impl: str = "wechatpy") -> Signed:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    if impl == "wechatpy":
        envelope = OACrypto(OA2_TOKEN, OA2_AES, OA2).encrypt_message(xml, nonce, ts)
        match = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope)
        assert match
        encrypt = match.group(1)
    else:
        encrypt = MessageCrypto(OA2_TOKEN, OA2_AES, OA2).encrypt(xml)
    body = cdata({"ToUserName": OA_GH, "Encrypt": encrypt})
    params = {
        "signature": sha1_sorted(OA2_TOKEN, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": sha1_sorted(OA2_TOKEN, ts, nonce, encrypt),
    }
    return Signed(params, body.encode())
