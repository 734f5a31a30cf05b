"""Callback XML → typed events, checked against the documents' fields and (for the official
account) against wechatpy's parser as an independent reading."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy import parse_message

from bot import callback_xml
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
    parse_fields,
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


# ------------------------------------------------------------------------ the expat reader
#
# parse_fields used to build a tree with defusedxml's ElementTree; it now reads expat's events
# itself. The previous reader is kept here as the reference: over documents chosen for the corners
# of XML (CDATA, references, comments, nesting, namespaces, encodings, broken input) both must give
# the same fields in the same order, or the same error text.


def _reference(doc: str | bytes) -> dict[str, str] | str:
    """The previous implementation, verbatim but for returning its error text."""
    try:
        root = SafeET.fromstring(doc, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        return f"forbidden XML construct: {type(exc).__name__}"
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        return f"malformed XML: {exc}"
    if root.tag != "xml":
        return f"root element is <{root.tag}>, not <xml>"
    return {child.tag: (child.text or "").strip() for child in root}


def _ours(doc: str | bytes) -> dict[str, str] | str:
    try:
        return parse_fields(doc)
    except CallbackXmlError as exc:
        return str(exc)


LONG = "长" * 5000 + "x" * 9000  # over expat's 8 KiB text buffer: delivered in several chunks
SAME_AS_BEFORE: dict[str, str | bytes] = {
    "contact": kit.wecom_contact("add_external_contact", "g", "wmA", 9, corp_id=CORP, State="s", WelcomeCode="W"),
    "envelope": kit.wecom_post(kit.wecom_text("g", "1", "hi", 9, corp_id=CORP), corp_id=CORP).body,
    "declaration": '<?xml version="1.0" encoding="UTF-8"?>\n<xml><A>1</A></xml>',
    "declaration-bytes": b'<?xml version="1.0" encoding="utf-8" standalone="yes"?><xml><A>1</A></xml>',
    "utf8-bom": "\ufeff<xml><A>\u4e2d</A></xml>".encode(),
    "utf16": '<?xml version="1.0" encoding="UTF-16"?><xml><A>\u4e2d\U0001f600</A></xml>'.encode("utf-16"),
    "latin1": '<?xml version="1.0" encoding="ISO-8859-1"?><xml><A>caf\xe9</A></xml>'.encode("latin-1"),
    "gbk-declared": '<?xml version="1.0" encoding="GBK"?><xml><A>\u4e2d</A></xml>'.encode("gbk"),
    "not-utf8": b"<xml><A>\xff\xfe</A></xml>",
    "whitespace": "\n<xml>\n  <A>  padded\n </A>\n  <B>\n</B>\n</xml>\n",
    "cdata-split": "<xml><A><![CDATA[ab]]><![CDATA[cd]]></A><B><![CDATA[a]]]]><![CDATA[>b]]></B></xml>",
    "cdata-mixed": "<xml><A> x<![CDATA[<y> & ]]>&amp;&lt;&gt;&quot;&apos;&#x4E2D;&#20013;z </A></xml>",
    "cdata-markup": "<xml><Content><![CDATA[<!DOCTYPE x [<!ENTITY e 'boom'>]>&e;<?pi?>]]></Content></xml>",
    "long-text": f"<xml><A>{LONG}</A><B>{LONG}&amp;{LONG}</B></xml>",
    "long-cdata": f"<xml><A><![CDATA[{LONG}]]>{LONG}<![CDATA[{LONG}]]></A></xml>",
    "comments": "<!--a--><xml><!--b--><A>x<!--c-->y</A><B><!-- only --></B></xml><!--d-->",
    "nested": (
        "<xml><MsgType>event</MsgType><ScanCodeInfo><ScanType>qrcode</ScanType>"
        "<ScanResult>1</ScanResult></ScanCodeInfo><SendPicsInfo><Count>1</Count><PicList><item>"
        "<PicMd5Sum><![CDATA[abc]]></PicMd5Sum></item></PicList></SendPicsInfo><After>ok</After></xml>"
    ),
    "nested-with-text": "<xml><A> lead <B>in</B> tail <C/></A><D>d</D></xml>",
    "deep": "<xml><A>top" + "<n>" * 3000 + "deep" + "</n>" * 3000 + "</A><B>b</B></xml>",
    "duplicates": "<xml><A>1</A><B>2</B><A>3</A><C>4</C><C><x/>5</C></xml>",
    "root-text-and-tails": "<xml>junk<A>x</A>tail<B>y</B>more</xml>",
    "attributes": '<xml a="1"><A b="2" c=\'3\'>x</A><B b="&amp;&#65;"/></xml>',
    "empty": "<xml><A/><B></B><C><![CDATA[]]></C></xml>",
    "empty-root": "<xml/>",
    "default-namespace": '<xml xmlns="urn:x"><A>1</A></xml>',
    "prefixed-child": '<xml xmlns:p="urn:p"><p:A>1</p:A><A>2</A></xml>',
    "unbound-prefix": "<xml><p:A>1</p:A></xml>",
    "wrong-root": "<notxml><A>1</A></notxml>",
    "empty-doc": "",
    "blank-doc": "  \n ",
    "text-only": "hello",
    "json": '{"json": true}',
    "unclosed": "<xml><A>1</A>",
    "truncated": kit.wecom_text("g", "1", "hi", 9, corp_id=CORP)[:-10],
    "truncated-cdata": "<xml><A><![CDATA[abc</A></xml>",
    "mismatched": "<xml><A>1</B></xml>",
    "two-roots": "<xml/><xml/>",
    "junk-after-root": "<xml><A>1</A></xml>junk",
    "undefined-entity": "<xml><A>&nbsp;</A></xml>",
    "bad-char-ref": "<xml><A>&#0;</A></xml>",
    "duplicate-attribute": '<xml><A b="1" b="2">x</A></xml>',
    "lone-surrogate": "<xml><A>\ud800</A></xml>",
    "nul": "<xml><A>\x00</A></xml>",
    "doctype": '<!DOCTYPE xml [<!ENTITY e "x">]><xml><ToUserName>&e;</ToUserName></xml>',
    "doctype-external": '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml/>',
}


@pytest.mark.parametrize("doc", list(SAME_AS_BEFORE.values()), ids=list(SAME_AS_BEFORE))
def test_reads_exactly_like_the_previous_parser(doc: str | bytes) -> None:
    ours, before = _ours(doc), _reference(doc)
    assert ours == before
    if isinstance(ours, dict) and isinstance(before, dict):
        assert list(ours) == list(before)  # document order of first occurrence, too


def test_reader_corners_read_as_intended() -> None:
    """The differential test says "same as before"; these say what "before" is."""
    assert parse_fields(SAME_AS_BEFORE["cdata-split"]) == {"A": "abcd", "B": "a]]>b"}
    assert parse_fields(SAME_AS_BEFORE["cdata-mixed"]) == {"A": "x<y> & &<>\"'中中z"}
    # markup inside CDATA is only text: nothing is declared, expanded or refused
    assert parse_fields(SAME_AS_BEFORE["cdata-markup"])["Content"] == "<!DOCTYPE x [<!ENTITY e 'boom'>]>&e;<?pi?>"
    assert parse_fields(SAME_AS_BEFORE["long-text"]) == {"A": LONG, "B": f"{LONG}&{LONG}"}
    assert parse_fields(SAME_AS_BEFORE["long-cdata"]) == {"A": LONG * 3}
    assert parse_fields(SAME_AS_BEFORE["comments"]) == {"A": "xy", "B": ""}
    nested = parse_fields(SAME_AS_BEFORE["nested"])
    assert nested == {"MsgType": "event", "ScanCodeInfo": "", "SendPicsInfo": "", "After": "ok"}
    assert parse_fields(SAME_AS_BEFORE["nested-with-text"]) == {"A": "lead", "D": "d"}
    assert parse_fields(SAME_AS_BEFORE["deep"]) == {"A": "top", "B": "b"}
    assert list(parse_fields(SAME_AS_BEFORE["duplicates"]).items()) == [("A", "3"), ("B", "2"), ("C", "")]
    assert parse_fields(SAME_AS_BEFORE["root-text-and-tails"]) == {"A": "x", "B": "y"}
    assert parse_fields(SAME_AS_BEFORE["attributes"]) == {"A": "x", "B": ""}  # attributes are ignored
    assert parse_fields(SAME_AS_BEFORE["prefixed-child"]) == {"{urn:p}A": "1", "A": "2"}
    assert parse_fields(SAME_AS_BEFORE["utf16"]) == {"A": "中😀"}
    assert parse_fields(SAME_AS_BEFORE["empty-root"]) == {}


def test_very_deep_nesting_is_read_without_recursion() -> None:
    depth = 200_000  # about 1 MiB of tags, the most a callback body may carry
    doc = "<xml><A>a</A><B>" + "<n>" * depth + "</n>" * depth + "</B><C>c</C></xml>"
    assert parse_fields(doc) == {"A": "a", "B": "", "C": "c"}
    with pytest.raises(CallbackXmlError, match="malformed"):
        parse_fields(doc[:-20])


@pytest.mark.parametrize(
    "doc",
    [
        "<!DOCTYPE xml><xml><A>1</A></xml>",  # no subset, no external id: still refused
        "<!DOCTYPE xml []><xml/>",
        "<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml/>",
        '<!DOCTYPE xml PUBLIC "-//x//y" "http://127.0.0.1:9/x.dtd"><xml/>',
        '<!DOCTYPE xml [<!ENTITY e "x">]><xml><A>&e;</A></xml>',
        '<!DOCTYPE xml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><xml/>',
        '<!DOCTYPE xml [<!ENTITY u SYSTEM "x.gif" NDATA gif>]><xml/>',
        b'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml><xml/>'.decode().encode("utf-16"),
    ],
    ids=["bare", "empty-subset", "element-decl", "public", "internal-entity", "param-entity", "unparsed", "utf16"],
)
def test_any_doctype_is_forbidden(doc: str | bytes) -> None:
    with pytest.raises(CallbackXmlError, match=r"^forbidden XML construct: DTDForbidden$"):
        parse_fields(doc)


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 30))
    doc = f'<!DOCTYPE xml [<!ENTITY l0 "lol">{levels}]><xml><A>&l29;</A></xml>'
    started = time.perf_counter()
    with pytest.raises(CallbackXmlError, match="forbidden"):
        parse_fields(doc)
    assert time.perf_counter() - started < 1  # 10**29 * 3 characters were never built


def test_second_fence_refuses_entities_even_if_a_doctype_got_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declarations only live in a DTD, so the DOCTYPE refusal hides these; lift it to test them."""
    monkeypatch.setattr(callback_xml, "_refuse_doctype", lambda *_: None)
    with pytest.raises(CallbackXmlError, match=r"^forbidden XML construct: EntitiesForbidden$"):
        parse_fields('<!DOCTYPE xml [<!ENTITY e "x">]><xml><A>&e;</A></xml>')
    with pytest.raises(CallbackXmlError, match=r"^forbidden XML construct: EntitiesForbidden$"):
        parse_fields('<!DOCTYPE xml [<!NOTATION gif SYSTEM "g"><!ENTITY u SYSTEM "x.gif" NDATA gif>]><xml/>')
    monkeypatch.setattr(callback_xml, "_refuse_entity", lambda *_: None)
    with pytest.raises(CallbackXmlError, match=r"^forbidden XML construct: ExternalReferenceForbidden$"):
        parse_fields('<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><A>&x;</A></xml>')


@pytest.mark.parametrize(
    "doc",
    [
        '<?xml-stylesheet href="x.xsl"?><xml/>',
        "<xml><A>1<?php echo 1; ?></A></xml>",
        "<xml/><?after?>",
    ],
    ids=["before-root", "in-a-field", "after-root"],
)
def test_processing_instructions_are_forbidden(doc: str) -> None:
    """A deliberate change: the previous parser skipped them; no Tencent callback carries one."""
    assert isinstance(_reference(doc), dict)
    with pytest.raises(CallbackXmlError, match=r"^forbidden XML construct: ProcessingInstructionForbidden$"):
        parse_fields(doc)


def test_error_texts_sort_into_the_edge_reasons() -> None:
    """callbacks.py answers `forbidden_xml` when "forbidden" is in the text, else `malformed_xml`."""
    for doc in ("<!DOCTYPE xml><xml/>", "<?pi?><xml/>"):
        with pytest.raises(CallbackXmlError, match="forbidden"):
            oa(doc)
    broken: list[str | bytes] = ["", "<xml>", "<xml><A>&e;</A></xml>", "<notxml/>", b"<xml>\xff</xml>"]
    for bad in broken:
        with pytest.raises(CallbackXmlError) as caught:
            parse_fields(bad)
        assert "forbidden" not in str(caught.value)


# ------------------------------------------------------------------ the fast path for flat documents
#
# parse_fields reads flat documents (leaf children of CDATA or plain text) with two patterns and
# hands everything else to expat. Whatever the document, the answer must be expat's.

_NAMES = st.sampled_from(["A", "B", "xml", "To_User.Name-1", "p:A", "A b", "1A", "中"])
_PIECES = [*"ab 中\t\n\r]>&<;#x", "]]>", "&amp;", "&lt;", "\x00", "\x0b", "\ufffe", "\x85", "\u3000", "\ud800"]
_TEXTS = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)


@st.composite
def _documents(draw: st.DrawFn) -> str:
    children = []
    for _ in range(draw(st.integers(0, 4))):
        name, value = draw(_NAMES), draw(_TEXTS)
        form = draw(st.sampled_from(["cdata", "text", "empty", "two-cdata", "nested"]))
        inner = {
            "cdata": f"<![CDATA[{value}]]>",
            "text": value,
            "empty": "",
            "two-cdata": f"<![CDATA[{value}]]><![CDATA[{value}]]>",
            "nested": f"<![CDATA[{value}]]><x>{value}</x>",
        }[form]
        close = name if draw(st.integers(0, 9)) else draw(_NAMES)  # sometimes mismatched
        children.append(draw(st.sampled_from(["", " ", "\n", "\r\n"])) + f"<{name}>{inner}</{close}>")
    before = draw(st.sampled_from(["", " \n", "\ufeff", '<?xml version="1.0"?>']))
    after = draw(st.sampled_from(["", "\n", "x"]))
    root = draw(st.sampled_from(["xml", "xml", "xml", "XML"]))
    return f"{before}<{root}>{''.join(children)}</{root}>{after}"


def _expat(doc: str | bytes) -> dict[str, str] | str:
    try:
        return callback_xml._expat_fields(doc)
    except CallbackXmlError as exc:
        return str(exc)


@settings(max_examples=600, deadline=None)
@given(_documents())
def test_fast_path_reads_every_document_as_expat_does(doc: str) -> None:
    assert _ours(doc) == _expat(doc)
    encoded = doc.encode("utf-8", "surrogatepass")
    assert _ours(encoded) == _expat(encoded)
    if isinstance(_ours(doc), dict):
        assert list(parse_fields(doc)) == list(callback_xml._expat_fields(doc))


def test_tencent_documents_take_the_fast_path() -> None:
    """The envelope and the events Tencent sends are flat: read without expat."""
    contact = kit.wecom_contact("add_external_contact", "g", "wmA", 9, corp_id=CORP, State="s", WelcomeCode="W")
    envelope = kit.wecom_post(kit.wecom_text("g", "1", "hi", 9, corp_id=CORP), corp_id=CORP).body
    for doc in (contact, envelope, "<xml><Content><![CDATA[你好 <b> & ]] ]>]]></Content><N>1</N>\n</xml>"):
        assert callback_xml._flat_fields(doc if isinstance(doc, str) else doc.decode()) is not None
    for doc in ("<xml><A>&amp;</A></xml>", "<xml><A>x\r\ny</A></xml>", '<xml><A b="1">x</A></xml>', "<xml><A/></xml>",
                "<!DOCTYPE xml><xml/>", "<xml><A><![CDATA[a\x00]]></A></xml>"):
        assert callback_xml._flat_fields(doc) is None, doc
