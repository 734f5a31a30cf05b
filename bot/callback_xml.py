"""Callback XML → typed events.

Everything Tencent posts is parsed here with defusedxml: a DTD, an entity declaration or an
external reference is an error (HTTP 400), never expanded. The edge only needs the envelope
(ToUserName, FromUserName, CreateTime, MsgType) to compute the dedupe key; a known type with a
missing field, or a type we do not handle, becomes an `UnknownEvent` carrying the reason, so it is
recorded and dead-lettered instead of being lost to Tencent's retries.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import defusedxml
import defusedxml.ElementTree as SafeET

WECOM = "wecom"
WECHAT = "wechat"


class CallbackXmlError(ValueError):
    """The body is not a usable callback document (→ HTTP 400)."""


def parse_fields(xml_text: str | bytes) -> dict[str, str]:
    """Top-level `<xml>` children as tag → text (nested structures keep no text)."""
    try:
        root = SafeET.fromstring(xml_text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise CallbackXmlError(f"forbidden XML construct: {type(exc).__name__}") from exc
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise CallbackXmlError(f"malformed XML: {exc}") from exc
    if root.tag != "xml":
        raise CallbackXmlError(f"root element is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


# ---------------------------------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class CallbackEvent:
    """What every callback has: who it is for, from whom, when; and its dedupe key."""

    channel: str  # wecom | wechat
    account: str  # corp id (WeCom) or appid (official account)
    to_user: str
    from_user: str
    create_time: int  # unix seconds
    dedupe_key: str
    fields: dict[str, str] = field(repr=False, compare=False)

    def occurred_at(self, tz: str) -> datetime:
        """Naive local business time (models.py convention), from Tencent's unix seconds."""
        return datetime.fromtimestamp(self.create_time, ZoneInfo(tz)).replace(tzinfo=None)


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(CallbackEvent):
    """A callback we cannot use (yet): dead-lettered with `reason`, replayable later."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class SubscribeEvent(CallbackEvent):
    """OA follow; from a parametric QR code EventKey is `qrscene_<scene>` and Ticket is set."""

    openid: str
    qr_scene: str | None
    ticket: str | None


@dataclass(frozen=True, kw_only=True)
class UnsubscribeEvent(CallbackEvent):
    openid: str


@dataclass(frozen=True, kw_only=True)
class ScanEvent(CallbackEvent):
    """OA parametric QR scanned by someone already following: EventKey is the scene itself."""

    openid: str
    qr_scene: str
    ticket: str | None


@dataclass(frozen=True, kw_only=True)
class TextMessage(CallbackEvent):
    """A customer wrote to the official account."""

    openid: str
    msg_id: str
    content: str


@dataclass(frozen=True, kw_only=True)
class CardEvent(CallbackEvent):
    openid: str
    card_id: str
    user_card_code: str
    unionid: str | None
    outer_str: str | None


@dataclass(frozen=True, kw_only=True)
class CardGetEvent(CardEvent):
    """user_get_card."""

    is_give_by_friend: bool
    old_user_card_code: str | None


@dataclass(frozen=True, kw_only=True)
class CardConsumeEvent(CardEvent):
    """user_consume_card."""

    consume_source: str | None
    location_name: str | None
    staff_openid: str | None


@dataclass(frozen=True, kw_only=True)
class CardDeleteEvent(CardEvent):
    """user_del_card."""


@dataclass(frozen=True, kw_only=True)
class ChangeExternalContact(CallbackEvent):
    """WeCom customer contact change. FromUserName is always `sys` (doc 96361)."""

    CHANGE_TYPES: ClassVar[frozenset[str]] = frozenset(
        {
            "add_external_contact",
            "add_half_external_contact",
            "edit_external_contact",
            "del_external_contact",
            "del_follow_user",
        }
    )
    change_type: str
    user_id: str  # the guide (WeCom userid)
    external_userid: str
    state: str | None
    welcome_code: str | None
    source: str | None
    fail_reason: str | None


@dataclass(frozen=True, kw_only=True)
class WeComTextMessage(CallbackEvent):
    """A staff member wrote to our WeCom app (a command; FromUserName is their userid)."""

    user_id: str
    msg_id: str
    content: str
    agent_id: str


# ------------------------------------------------------------------------------------- parsing


def dedupe_key(fields: dict[str, str], channel: str, account: str) -> str:
    """The identity of one callback across Tencent's retries (tencent.md §Callbacks)."""
    msg_type = fields.get("MsgType", "")
    if msg_type != "event" and fields.get("MsgId"):
        return f"{channel}:{account}:msg:{fields['MsgId']}"
    event = fields.get("Event", "")
    if event == "change_external_contact":
        parts = [fields.get(k, "") for k in ("ChangeType", "UserID", "ExternalUserID", "CreateTime")]
        return ":".join([channel, fields.get("ToUserName", ""), event, *parts])
    key = fields.get("EventKey") or fields.get("UserCardCode") or ""
    parts = [fields.get("ToUserName", ""), fields.get("FromUserName", ""), msg_type, event, key]
    return ":".join([channel, *parts, fields.get("CreateTime", "")])


def parse_event(xml_text: str | bytes, *, channel: str, account: str) -> CallbackEvent:
    """A typed event; CallbackXmlError when even the envelope is unusable."""
    fields = parse_fields(xml_text)
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        if not fields.get(name):
            raise CallbackXmlError(f"missing <{name}>")
    try:
        create_time = int(fields["CreateTime"])
    except ValueError as exc:
        raise CallbackXmlError("CreateTime is not an integer") from exc
    if create_time < 0:
        raise CallbackXmlError("CreateTime is negative")
    base: dict[str, Any] = {
        "channel": channel,
        "account": account,
        "to_user": fields["ToUserName"],
        "from_user": fields["FromUserName"],
        "create_time": create_time,
        "dedupe_key": dedupe_key(fields, channel, account),
        "fields": fields,
    }
    try:
        return _typed(fields, channel, base)
    except _Missing as missing:
        return UnknownEvent(reason=f"{_describe(fields)}: missing <{missing.args[0]}>", **base)


class _Missing(Exception):
    pass


def _req(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise _Missing(name)
    return value


def _opt(fields: dict[str, str], name: str) -> str | None:
    return fields.get(name) or None


def _describe(fields: dict[str, str]) -> str:
    if fields.get("MsgType") == "event":
        detail = fields.get("ChangeType") or ""
        return f"event {fields.get('Event', '')}" + (f"/{detail}" if detail else "")
    return f"message {fields.get('MsgType', '')}"


def _typed(fields: dict[str, str], channel: str, base: dict[str, Any]) -> CallbackEvent:
    msg_type = fields["MsgType"]
    event = fields.get("Event", "")
    kind = event.lower()
    if channel == WECHAT and msg_type == "text":
        return TextMessage(
            openid=fields["FromUserName"],
            msg_id=_req(fields, "MsgId"),
            content=fields.get("Content", ""),
            **base,
        )
    if channel == WECOM and msg_type == "text":
        return WeComTextMessage(
            user_id=fields["FromUserName"],
            msg_id=_req(fields, "MsgId"),
            content=fields.get("Content", ""),
            agent_id=fields.get("AgentID", ""),
            **base,
        )
    if msg_type != "event":
        return UnknownEvent(reason=f"unhandled {_describe(fields)}", **base)
    if channel == WECOM and event == "change_external_contact":
        change = _req(fields, "ChangeType")
        if change not in ChangeExternalContact.CHANGE_TYPES:
            return UnknownEvent(reason=f"unhandled {_describe(fields)}", **base)
        return ChangeExternalContact(
            change_type=change,
            user_id=_req(fields, "UserID"),
            external_userid=_req(fields, "ExternalUserID"),
            state=_opt(fields, "State"),
            welcome_code=_opt(fields, "WelcomeCode"),
            source=_opt(fields, "Source"),
            fail_reason=_opt(fields, "FailReason"),
            **base,
        )
    if channel == WECHAT:
        openid = fields["FromUserName"]
        if kind == "subscribe":
            key = fields.get("EventKey", "")
            scene = key[len("qrscene_") :] if key.startswith("qrscene_") else None
            return SubscribeEvent(openid=openid, qr_scene=scene or None, ticket=_opt(fields, "Ticket"), **base)
        if kind == "unsubscribe":
            return UnsubscribeEvent(openid=openid, **base)
        if kind == "scan":
            return ScanEvent(
                openid=openid,
                qr_scene=_req(fields, "EventKey"),
                ticket=_opt(fields, "Ticket"),
                **base,
            )
        if kind in ("user_get_card", "user_consume_card", "user_del_card"):
            card: dict[str, Any] = {
                "openid": openid,
                "card_id": _req(fields, "CardId"),
                "user_card_code": _req(fields, "UserCardCode"),
                "unionid": _opt(fields, "UnionId"),
                "outer_str": _opt(fields, "OuterStr"),
            }
            if kind == "user_get_card":
                return CardGetEvent(
                    is_give_by_friend=fields.get("IsGiveByFriend") == "1",
                    old_user_card_code=_opt(fields, "OldUserCardCode"),
                    **card,
                    **base,
                )
            if kind == "user_consume_card":
                return CardConsumeEvent(
                    consume_source=_opt(fields, "ConsumeSource"),
                    location_name=_opt(fields, "LocationName"),
                    staff_openid=_opt(fields, "StaffOpenId"),
                    **card,
                    **base,
                )
            return CardDeleteEvent(**card, **base)
    return UnknownEvent(reason=f"unhandled {_describe(fields)}", **base)
