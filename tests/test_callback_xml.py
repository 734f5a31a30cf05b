"""Callback XML → typed events, checked against the documents' fields and (for the official
account) against wechatpy's parser as an independent reading."""

from __future__ import annotations

import pytest
from wechatpy import parse_message

from bot.callback_xml import (
    CallbackEvent,
    CallbackXmlError,
    CardConsumeEvent,
    CardDeleteEvent,
    CardGetEvent,
    ChangeExternalContact,
    ScanEvent,
    SubscribeEvent,
    TextMessage,
    UnknownEvent,
    UnsubscribeEvent,
    WeComTextMessage,
    parse_event,
)
from tests import callback_kit as kit

CORP = "wwcorp"


def oa(xml: str) -> CallbackEvent:
    return parse_event(xml, channel="wechat", account=kit.OA1)


def test_subscribe_from_parametric_qr_agrees_with_wechatpy() -> None:
    xml = kit.oa_event("subscribe", "oA", 1_700_000_000, EventKey="qrscene_store_9", Ticket="TICKET")
    event = oa(xml)
    theirs = parse_message(xml)
    assert isinstance(event, SubscribeEvent)
    assert (event.openid, event.qr_scene, event.ticket) == (theirs.source, theirs.scene_id, theirs.ticket)
    assert event.create_time == 1_700_000_000
    assert event.dedupe_key == f"wechat:{kit.OA_GH}:oA:event:subscribe:qrscene_store_9:1700000000"


def test_plain_subscribe_has_no_scene() -> None:
    event = oa(kit.oa_event("subscribe", "oA", 1_700_000_000, EventKey=""))
    assert isinstance(event, SubscribeEvent) and event.qr_scene is None and event.ticket is None


def test_scan_and_unsubscribe() -> None:
    xml = kit.oa_event("SCAN", "oA", 1_700_000_001, EventKey="store_9", Ticket="T")
    scan = oa(xml)
    assert isinstance(scan, ScanEvent) and scan.qr_scene == parse_message(xml).scene_id == "store_9"
    assert isinstance(oa(kit.oa_event("unsubscribe", "oA", 1)), UnsubscribeEvent)
    # a SCAN without its scene is not usable: dead-lettered with the reason
    broken = oa(kit.oa_event("SCAN", "oA", 1))
    assert isinstance(broken, UnknownEvent) and "EventKey" in broken.reason


def test_text_message_agrees_with_wechatpy() -> None:
    xml = kit.oa_text("oA", "1234567890123456", "你好 <b>", 1_700_000_002)
    event = oa(xml)
    theirs = parse_message(xml)
    assert isinstance(event, TextMessage)
    assert (event.openid, event.msg_id, event.content) == (theirs.source, str(theirs.id), theirs.content)
    assert event.dedupe_key == f"wechat:{kit.OA1}:msg:1234567890123456"


def test_card_events() -> None:
    got = oa(
        kit.oa_event(
            "user_get_card",
            "oA",
            5,
            CardId="pC",
            UserCardCode="123",
            UnionId="uA",
            OuterStr="src",
            IsGiveByFriend=1,
            OldUserCardCode="9",
        )
    )
    assert isinstance(got, CardGetEvent)
    assert (
        got.card_id,
        got.user_card_code,
        got.unionid,
        got.outer_str,
        got.is_give_by_friend,
        got.old_user_card_code,
    ) == ("pC", "123", "uA", "src", True, "9")
    used = oa(
        kit.oa_event(
            "user_consume_card",
            "oA",
            6,
            CardId="pC",
            UserCardCode="123",
            ConsumeSource="FROM_MOBILE_HELPER",
            LocationName="店",
            StaffOpenId="oS",
        )
    )
    assert isinstance(used, CardConsumeEvent)
    assert (used.consume_source, used.location_name, used.staff_openid, used.unionid) == (
        "FROM_MOBILE_HELPER",
        "店",
        "oS",
        None,
    )
    deleted = oa(kit.oa_event("user_del_card", "oA", 7, CardId="pC", UserCardCode="123"))
    assert isinstance(deleted, CardDeleteEvent)
    # the card code keys the dedupe (one user may get two cards in one second)
    other = oa(kit.oa_event("user_del_card", "oA", 7, CardId="pC", UserCardCode="124"))
    assert deleted.dedupe_key != other.dedupe_key
    missing = oa(kit.oa_event("user_get_card", "oA", 5, CardId="pC"))
    assert isinstance(missing, UnknownEvent) and "UserCardCode" in missing.reason


@pytest.mark.parametrize(
    "change",
    [
        "add_external_contact",
        "add_half_external_contact",
        "edit_external_contact",
        "del_external_contact",
        "del_follow_user",
    ],
)
def test_change_external_contact(change: str) -> None:
    xml = kit.wecom_contact(
        change,
        "guide1",
        "wmX",
        1_700_000_003,
        corp_id=CORP,
        State="s1",
        WelcomeCode="WC",
        Source="DELETE_BY_TRANSFER",
        FailReason="customer_refused",
    )
    event = parse_event(xml, channel="wecom", account=CORP)
    assert isinstance(event, ChangeExternalContact)
    assert (
        event.change_type,
        event.user_id,
        event.external_userid,
        event.state,
        event.welcome_code,
        event.source,
        event.fail_reason,
    ) == (change, "guide1", "wmX", "s1", "WC", "DELETE_BY_TRANSFER", "customer_refused")
    assert event.from_user == "sys"
    assert event.dedupe_key == f"wecom:{CORP}:change_external_contact:{change}:guide1:wmX:1700000003"


def test_contact_dedupe_ignores_from_user_sys() -> None:
    """Two different contacts in one second must not collide although FromUserName is `sys`."""
    a = parse_event(
        kit.wecom_contact("add_external_contact", "g", "wmA", 9, corp_id=CORP), channel="wecom", account=CORP
    )
    b = parse_event(
        kit.wecom_contact("add_external_contact", "g", "wmB", 9, corp_id=CORP), channel="wecom", account=CORP
    )
    c = parse_event(
        kit.wecom_contact("add_external_contact", "g2", "wmA", 9, corp_id=CORP), channel="wecom", account=CORP
    )
    assert len({a.dedupe_key, b.dedupe_key, c.dedupe_key}) == 3


def test_unknown_contact_change_and_wecom_text() -> None:
    odd = parse_event(
        kit.wecom_contact("msg_audit_approved", "g", "wmA", 9, corp_id=CORP), channel="wecom", account=CORP
    )
    assert isinstance(odd, UnknownEvent) and "msg_audit_approved" in odd.reason
    text = parse_event(kit.wecom_text("marketer", "42", "本周新客", 9, corp_id=CORP), channel="wecom", account=CORP)
    assert isinstance(text, WeComTextMessage)
    assert (text.user_id, text.msg_id, text.content, text.agent_id) == ("marketer", "42", "本周新客", "1000002")
    assert text.dedupe_key == f"wecom:{CORP}:msg:42"
    image = parse_event(
        kit.cdata(
            {
                "ToUserName": CORP,
                "FromUserName": "u",
                "CreateTime": 9,
                "MsgType": "image",
                "MsgId": "43",
                "PicUrl": "http://x",
            }
        ),
        channel="wecom",
        account=CORP,
    )
    assert isinstance(image, UnknownEvent) and image.dedupe_key == f"wecom:{CORP}:msg:43"


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "<xml>",
        "<notxml><a>1</a></notxml>",
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType></xml>",
        "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>-5</CreateTime>"
        "<MsgType>event</MsgType></xml>",
        '<!DOCTYPE xml [<!ENTITY e "x">]><xml><ToUserName>&e;</ToUserName></xml>',
    ],
    ids=["empty", "unclosed", "wrong-root", "no-createtime", "negative-time", "entity"],
)
def test_unusable_documents_raise(doc: str) -> None:
    with pytest.raises(CallbackXmlError):
        oa(doc)
