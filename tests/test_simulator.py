"""The simulator behaves as Tencent documents, and the callback driver delivers like Tencent:
raw HTTP against the simulator (no client of ours in between), and a receiver that checks the
driver's callbacks with OUR crypto (bot/crypto.py) while the driver encrypts with wechatpy."""

from __future__ import annotations

import asyncio
import base64
import calendar
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from defusedxml import ElementTree

from bot.crypto import MessageCrypto, check_plain_signature
from bot.simulator import CallbackDriver, OAEndpoint, TencentSimulator

WECOM_TOKEN = "wecomCallbackToken"
WECOM_AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")
OA_TOKEN = "oaCallbackToken"
OA_AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.add_staff("guide1")
        simulator.add_staff("guide2")
        simulator.add_external_contact("wmCustomer1", unionid="oUnion1", follow_userid="guide1")
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """Raw calls to the simulator, the way any HTTP client would make them."""

    def __init__(self, http: aiohttp.ClientSession, sim: TencentSimulator) -> None:
        self.http, self.sim = http, sim

    async def call(self, method: str, path: str, body: Any = None, **query: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": query}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.sim.base_url + path, **kwargs) as resp:
            assert resp.status == 200  # Tencent reports errors in the body, with HTTP 200
            data: dict[str, Any] = await resp.json()
            return data

    async def wecom_token(self) -> str:
        data = await self.call("GET", "/cgi-bin/gettoken", corpid=self.sim.corp_id, corpsecret=self.sim.corp_secret)
        return str(data["access_token"])

    async def oa_token(self) -> str:
        data = await self.call(
            "GET",
            "/cgi-bin/token",
            grant_type="client_credential",
            appid=self.sim.oa_app_id,
            secret=self.sim.oa_app_secret,
        )
        return str(data["access_token"])

    async def wecom(self, path: str, body: Any = None, method: str = "POST", **query: str) -> dict[str, Any]:
        return await self.call(method, path, body, access_token=await self.wecom_token(), **query)

    async def oa(self, path: str, body: Any = None, method: str = "POST", **query: str) -> dict[str, Any]:
        return await self.call(method, path, body, access_token=await self.oa_token(), **query)


@pytest.fixture
def api(http: aiohttp.ClientSession, sim: TencentSimulator) -> Api:
    return Api(http, sim)


def error(errcode: int) -> Any:
    """Matches Tencent's error answer exactly: the two keys and nothing else."""

    class _Error:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, dict) and set(other) == {"errcode", "errmsg"} and other["errcode"] == errcode

        def __repr__(self) -> str:
            return f"<errcode {errcode}>"

    return _Error()


# ---------------------------------------------------------------------------------- tokens


async def test_gettoken_checks_its_parameters(api, sim) -> None:
    assert await api.call("GET", "/cgi-bin/gettoken", corpsecret=sim.corp_secret) == error(41002)
    assert await api.call("GET", "/cgi-bin/gettoken", corpid="wwOther", corpsecret=sim.corp_secret) == error(40013)
    assert await api.call("GET", "/cgi-bin/gettoken", corpid=sim.corp_id) == error(41004)
    assert await api.call("GET", "/cgi-bin/gettoken", corpid=sim.corp_id, corpsecret="wrong") == error(40001)
    good = await api.call("GET", "/cgi-bin/gettoken", corpid=sim.corp_id, corpsecret=sim.corp_secret)
    assert good["errcode"] == 0 and good["expires_in"] == 7200 and good["access_token"]


async def test_oa_token_checks_its_parameters(api, sim) -> None:
    creds = {"appid": sim.oa_app_id, "secret": sim.oa_app_secret}
    assert await api.call("GET", "/cgi-bin/token", **creds) == error(40002)
    assert await api.call("GET", "/cgi-bin/token", grant_type="client_credential", secret="x") == error(41002)
    bad_app = {"appid": "wxnobody", "secret": "x"}
    assert await api.call("GET", "/cgi-bin/token", grant_type="client_credential", **bad_app) == error(40013)
    no_secret = {"appid": sim.oa_app_id}
    assert await api.call("GET", "/cgi-bin/token", grant_type="client_credential", **no_secret) == error(41004)
    wrong = {"appid": sim.oa_app_id, "secret": "wrong"}
    assert await api.call("GET", "/cgi-bin/token", grant_type="client_credential", **wrong) == error(40125)


async def test_access_token_is_checked_on_every_call(api, sim) -> None:
    path, q = "/cgi-bin/externalcontact/get", {"external_userid": "wmCustomer1"}
    assert await api.call("GET", path, **q) == error(41001)
    assert await api.call("GET", path, access_token="forged", **q) == error(40014)
    token = await api.wecom_token()
    assert (await api.call("GET", path, access_token=token, **q))["errcode"] == 0
    # An official account's token is not a WeCom token, and the other way round.
    assert await api.call("GET", path, access_token=await api.oa_token(), **q) == error(40014)
    assert await api.call("GET", "/cgi-bin/user/info", access_token=token, openid="o1") == error(40001)


async def test_tokens_expire_after_expires_in(api, sim) -> None:
    sim.token_ttl = 60
    token = await api.wecom_token()
    path, q = "/cgi-bin/externalcontact/get", {"external_userid": "wmCustomer1"}
    sim.advance(59)
    assert (await api.call("GET", path, access_token=token, **q))["errcode"] == 0
    assert await api.wecom_token() == token  # WeCom: the same token while it is valid
    sim.advance(1)
    assert await api.call("GET", path, access_token=token, **q) == error(42001)
    assert await api.wecom_token() != token


async def test_expire_and_revoke_all_tokens(api, sim) -> None:
    path, q = "/cgi-bin/externalcontact/get", {"external_userid": "wmCustomer1"}
    token = await api.wecom_token()
    sim.expire_tokens()
    assert await api.call("GET", path, access_token=token, **q) == error(42001)
    token = await api.wecom_token()
    sim.revoke_tokens()
    assert await api.call("GET", path, access_token=token, **q) == error(40014)


async def test_a_new_oa_token_retires_the_old_one_after_five_minutes(api, sim) -> None:
    sim.add_oa_follower("oOpen1")
    old = await api.oa_token()
    new = await api.oa_token()
    assert old != new
    assert (await api.call("GET", "/cgi-bin/user/info", access_token=old, openid="oOpen1"))["subscribe"] == 1
    sim.advance(300)
    assert await api.call("GET", "/cgi-bin/user/info", access_token=old, openid="oOpen1") == error(40001)
    assert (await api.call("GET", "/cgi-bin/user/info", access_token=new, openid="oOpen1"))["subscribe"] == 1


# ---------------------------------------------------------------------------------- WeCom endpoints


async def test_external_contact_lookup(api, sim) -> None:
    path = "/cgi-bin/externalcontact/get"
    found = await api.wecom(path, method="GET", external_userid="wmCustomer1")
    assert found["external_contact"]["unionid"] == "oUnion1"
    assert [f["userid"] for f in found["follow_user"]] == ["guide1"]
    assert await api.wecom(path, method="GET") == error(41035)
    assert await api.wecom(path, method="GET", external_userid="zzNotAnId") == error(40096)
    assert await api.wecom(path, method="GET", external_userid="wmNeverAdded") == error(84061)
    sim.add_external_contact("wmNoUnion")  # no open platform bound: no unionid key at all
    sim.wecom.add_external_contact("wmNoUnion", follow_userid="guide2")
    plain = await api.wecom(path, method="GET", external_userid="wmNoUnion")
    assert "unionid" not in plain["external_contact"]
    sim.wecom.remove_follow("guide1", "wmCustomer1")
    assert await api.wecom(path, method="GET", external_userid="wmCustomer1") == error(84061)


async def test_contact_way_state_is_at_most_30_characters(api, sim) -> None:
    path = "/cgi-bin/externalcontact/add_contact_way"
    ok = await api.wecom(path, {"type": 1, "scene": 2, "user": ["guide1"], "state": "s" * 30})
    assert ok["errcode"] == 0 and ok["config_id"] and ok["qr_code"]
    assert await api.wecom(path, {"type": 1, "scene": 2, "user": ["guide1"], "state": "s" * 31}) == error(40058)
    assert await api.wecom(path, {"type": 1, "scene": 2, "user": ["ghost"]}) == error(60111)
    assert await api.wecom(path, {"scene": 2, "user": ["guide1"]}) == error(41037)
    assert await api.wecom(path, {"type": 1, "user": ["guide1"]}) == error(41038)
    assert await api.wecom(path, {"type": 1, "scene": 2, "user": ["guide1", "guide2"]}) == error(40058)
    no_qr = await api.wecom(path, {"type": 2, "scene": 1, "user": ["guide1", "guide2"]})
    assert "qr_code" not in no_qr
    assert len(sim.wecom.contact_ways) == 2


async def test_welcome_code_works_once_within_20_seconds(api, sim) -> None:
    path = "/cgi-bin/externalcontact/send_welcome_msg"
    code = sim.issue_welcome_code("guide1", "wmCustomer1")
    text = {"content": "欢迎"}
    sim.advance(19.5)  # (plus the real milliseconds this test takes)
    assert (await api.wecom(path, {"welcome_code": code, "text": text}))["errcode"] == 0
    assert await api.wecom(path, {"welcome_code": code, "text": text}) == error(41051)
    late = sim.issue_welcome_code("guide1", "wmCustomer1")
    sim.advance(20.5)
    assert await api.wecom(path, {"welcome_code": late, "text": text}) == error(41050)
    assert await api.wecom(path, {"welcome_code": "never-issued", "text": text}) == error(41050)
    assert await api.wecom(path, {"text": text}) == error(41049)
    assert len(sim.wecom.welcome_messages) == 1


async def test_corp_tags_and_marking(api, sim) -> None:
    added = await api.wecom("/cgi-bin/externalcontact/add_corp_tag", {"group_name": "千面", "tag": [{"name": "复购"}]})
    group = added["tag_group"]
    tag_id = group["tag"][0]["id"]
    dup = {"group_id": group["group_id"], "tag": [{"name": "复购"}]}
    assert await api.wecom("/cgi-bin/externalcontact/add_corp_tag", dup) == error(40071)
    more = await api.wecom("/cgi-bin/externalcontact/add_corp_tag", {"group_name": "千面", "tag": [{"name": "沉睡"}]})
    assert more["tag_group"]["group_id"] == group["group_id"]  # same name: same group
    listed = await api.wecom("/cgi-bin/externalcontact/get_corp_tag_list", {"tag_id": [tag_id]})
    assert [[t["name"] for t in g["tag"]] for g in listed["tag_group"]] == [["复购"]]

    mark = "/cgi-bin/externalcontact/mark_tag"
    body = {"userid": "guide1", "external_userid": "wmCustomer1", "add_tag": [tag_id]}
    assert (await api.wecom(mark, body))["errcode"] == 0
    assert await api.wecom(mark, {**body, "add_tag": ["etUnknown"]}) == error(40068)
    assert await api.wecom(mark, {**body, "userid": "ghost"}) == error(60111)
    assert await api.wecom(mark, {**body, "userid": "guide2"}) == error(84061)
    assert await api.wecom(mark, {**body, "external_userid": ""}) == error(41035)
    assert await api.wecom(mark, {**body, "add_tag": []}) == error(40058)
    contact = await api.wecom("/cgi-bin/externalcontact/get", method="GET", external_userid="wmCustomer1")
    assert contact["follow_user"][0]["tags"] == [
        {"group_name": "千面", "tag_name": "复购", "tag_id": tag_id, "type": 1}
    ]


async def test_app_messages_are_checked_and_recorded(api, sim) -> None:
    path = "/cgi-bin/message/send"
    agent = int(sim.agent_id)
    text = {"msgtype": "text", "text": {"content": "到店提醒"}}
    sent = await api.wecom(path, {"touser": "guide1|ghost", "agentid": agent, **text})
    assert sent["errcode"] == 0 and sent["invaliduser"] == "ghost"
    assert await api.wecom(path, {"touser": "guide1", **text}) == error(41011)
    assert await api.wecom(path, {"touser": "guide1", "agentid": 999, **text}) == error(40056)
    assert await api.wecom(path, {"touser": "ghost", "agentid": agent, **text}) == error(81013)
    assert await api.wecom(path, {"agentid": agent, **text}) == error(82001)
    empty = {"touser": "guide1", "agentid": agent, "msgtype": "text", "text": {"content": " "}}
    assert await api.wecom(path, empty) == error(44004)
    assert await api.wecom(path, {"touser": "guide1", "agentid": agent, "msgtype": "voice"}) == error(40008)
    card = {"touser": "guide1", "agentid": agent, "msgtype": "textcard", "textcard": {"title": "t", "url": "u"}}
    assert await api.wecom(path, card) == error(41033)
    image = {"touser": "guide1", "agentid": agent, "msgtype": "image", "image": {"media_id": "nope"}}
    assert await api.wecom(path, image) == error(40007)
    assert [(m.touser, m.body["text"]["content"]) for m in sim.app_messages] == [(["guide1"], "到店提醒")]


async def test_duplicate_app_messages_are_dropped_within_their_interval(api, sim) -> None:
    """WeCom's enable_duplicate_check: the same message to the same users within the interval
    is answered with the first one's msgid and not sent again; after it, or changed, it is sent."""
    path = "/cgi-bin/message/send"
    agent = int(sim.agent_id)
    message = {"touser": "guide1", "agentid": agent, "msgtype": "text", "text": {"content": "到店提醒"},
               "enable_duplicate_check": 1, "duplicate_check_interval": 600}
    first = await api.wecom(path, message)
    assert (await api.wecom(path, message))["msgid"] == first["msgid"]
    assert len(sim.app_messages) == 1
    other_user = await api.wecom(path, {**message, "touser": "guide2"})
    other_text = await api.wecom(path, {**message, "text": {"content": "再次提醒"}})
    unchecked = await api.wecom(path, {**message, "enable_duplicate_check": 0})
    assert len({first["msgid"], other_user["msgid"], other_text["msgid"], unchecked["msgid"]}) == 4
    sim.clock.advance(599)
    assert (await api.wecom(path, message))["msgid"] == unchecked["msgid"]  # the latest identical one
    sim.clock.advance(2)
    later = await api.wecom(path, message)
    assert later["msgid"] not in {first["msgid"], unchecked["msgid"]}
    assert len(sim.app_messages) == 5


async def test_media_upload(http, api, sim) -> None:
    token = await api.wecom_token()
    form = aiohttp.FormData()
    form.add_field("media", b"\x89PNG data", filename="a.png", content_type="image/png")
    url = f"{sim.base_url}/cgi-bin/media/upload"
    async with http.post(url, params={"access_token": token, "type": "image"}, data=form) as resp:
        uploaded = await resp.json()
    assert uploaded["errcode"] == 0 and uploaded["type"] == "image"
    assert sim.wecom.media[uploaded["media_id"]][1].data == b"\x89PNG data"
    form = aiohttp.FormData()
    form.add_field("media", b"x", filename="a.exe")
    async with http.post(url, params={"access_token": token, "type": "exe"}, data=form) as resp:
        assert await resp.json() == error(40005)


async def test_mass_send_results_and_monthly_quota(api, sim) -> None:
    path = "/cgi-bin/externalcontact/add_msg_template"
    body = {"sender": "guide1", "external_userid": ["wmCustomer1", "wmNeverAdded"], "text": {"content": "新品"}}
    created = await api.wecom(path, body)
    assert created["fail_list"] == ["wmNeverAdded"]
    result_path = "/cgi-bin/externalcontact/get_groupmsg_send_result"
    before = await api.wecom(result_path, {"msgid": created["msgid"], "userid": "guide1"})
    assert before["send_list"] == [{"external_userid": "wmCustomer1", "userid": "guide1", "status": 0}]
    sim.wecom.confirm_group_msg(created["msgid"])
    after = await api.wecom(result_path, {"msgid": created["msgid"], "userid": "guide1"})
    assert after["send_list"][0]["status"] == 1 and after["send_list"][0]["send_time"] > 0
    assert await api.wecom(result_path, {"userid": "guide1"}) == error(41046)
    assert await api.wecom(result_path, {"msgid": "msgNope", "userid": "guide1"}) == error(41047)
    assert await api.wecom(path, {**body, "external_userid": ["wmNeverAdded"]}) == error(41048)
    assert await api.wecom(path, {**body, "text": {"content": ""}}) == error(44004)
    # Quota: as many mass messages a month as the month has days (computed independently here).
    now = datetime.fromtimestamp(sim.clock.now(), timezone(timedelta(hours=8)))
    days = calendar.monthrange(now.year, now.month)[1]
    single = {**body, "external_userid": ["wmCustomer1"]}
    for _ in range(days - 1):  # one already sent above
        assert (await api.wecom(path, single))["fail_list"] == []
    assert await api.wecom(path, single) == error(41048)  # over quota: nobody left to send to


# ---------------------------------------------------------------------------------- OA endpoints


async def test_oa_user_info(api, sim) -> None:
    sim.add_oa_follower("oOpen1", unionid="oUnion1", scene_str="store42")
    sim.add_oa_follower("oGone", unionid="oUnion2", subscribe=False)
    info = await api.oa("/cgi-bin/user/info", method="GET", openid="oOpen1")
    assert (info["subscribe"], info["unionid"], info["qr_scene_str"]) == (1, "oUnion1", "store42")
    assert "errcode" not in info  # OA success answers carry no errcode
    gone = await api.oa("/cgi-bin/user/info", method="GET", openid="oGone")
    assert gone == {"subscribe": 0, "openid": "oGone", "tagid_list": []}
    assert await api.oa("/cgi-bin/user/info", method="GET", openid="oStranger") == error(40003)
    assert await api.oa("/cgi-bin/user/info", method="GET") == error(41009)


async def test_oa_qrcodes(api, sim) -> None:
    path = "/cgi-bin/qrcode/create"
    scene = {"scene": {"scene_str": "s" * 64}}
    temp = await api.oa(path, {"action_name": "QR_STR_SCENE", "action_info": scene})
    assert temp["expire_seconds"] == 60 and temp["ticket"] and temp["url"]
    forever = await api.oa(path, {"action_name": "QR_LIMIT_STR_SCENE", "action_info": scene})
    assert "expire_seconds" not in forever
    too_long = {"scene": {"scene_str": "s" * 65}}
    assert await api.oa(path, {"action_name": "QR_STR_SCENE", "action_info": too_long}) == error(40053)
    assert await api.oa(path, {"action_name": "QR_NOPE", "action_info": scene}) == error(40052)


async def test_oa_template_and_custom_messages(api, sim) -> None:
    sim.add_oa_follower("oOpen1")
    sim.add_oa_follower("oGone", subscribe=False)
    tpl = "/cgi-bin/message/template/send"
    body = {"touser": "oOpen1", "template_id": "TPL", "data": {"first": {"value": "您好"}}}
    sent = await api.oa(tpl, body)
    assert sent["errcode"] == 0 and isinstance(sent["msgid"], int)
    assert await api.oa(tpl, {**body, "touser": "oGone"}) == error(43004)
    assert await api.oa(tpl, {**body, "touser": "oStranger"}) == error(40003)
    assert await api.oa(tpl, {**body, "template_id": ""}) == error(40037)

    custom = "/cgi-bin/message/custom/send"
    text = {"touser": "oOpen1", "msgtype": "text", "text": {"content": "在吗"}}
    sim.advance(48 * 3600 - 60)  # following opened the window 48 h minus a minute ago
    assert (await api.oa(custom, text))["errcode"] == 0
    sim.advance(61)
    assert await api.oa(custom, text) == error(45015)
    sim.oa.touch(sim.oa_app_id, "oOpen1")  # the customer wrote again
    assert (await api.oa(custom, text))["errcode"] == 0
    assert await api.oa(custom, {**text, "touser": "oGone"}) == error(45015)


# ---------------------------------------------------------------------------------- faults, records


async def test_inject_delay_and_calls(api, sim) -> None:
    path, q = "/cgi-bin/externalcontact/get", {"external_userid": "wmCustomer1"}
    token = await api.wecom_token()
    sim.inject(path, -1, times=2)
    answers = [await api.call("GET", path, access_token=token, **q) for _ in range(3)]
    assert answers[:2] == [error(-1), error(-1)] and answers[2]["errcode"] == 0
    sim.delay(path, 0.3)
    started = asyncio.get_running_loop().time()
    await api.call("GET", path, access_token=token, **q)
    assert asyncio.get_running_loop().time() - started >= 0.3
    calls = sim.calls(path)
    assert [c.errcode for c in calls] == [-1, -1, 0, 0]
    assert all(c.query == q for c in calls)  # recorded without the access token
    assert await api.call("GET", path, access_token=token, body=None, **q)  # injections are used up


async def test_malformed_json_body(http, api, sim) -> None:
    token = await api.wecom_token()
    url = f"{sim.base_url}/cgi-bin/message/send"
    async with http.post(url, params={"access_token": token}, data=b"{not json") as resp:
        assert await resp.json() == error(47001)


# ---------------------------------------------------------------------------------- callback driver


class Receiver:
    """A stand-in bot endpoint that checks callbacks with OUR crypto and records what it read."""

    def __init__(self, corp_id: str, oa_app_id: str) -> None:
        self.wecom = MessageCrypto(WECOM_TOKEN, WECOM_AES, corp_id)
        self.oa = MessageCrypto(OA_TOKEN, OA_AES, oa_app_id)
        self.received: list[dict[str, str]] = []
        self.fail_next = 0
        self.slow_next = 0.0
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        q = request.query
        if self.slow_next:
            delay, self.slow_next = self.slow_next, 0.0
            await asyncio.sleep(delay)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500)
        if request.method == "GET":
            if request.path.startswith("/wecom"):
                echo = self.wecom.verify_and_decrypt(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
            else:
                check_plain_signature(OA_TOKEN, q["signature"], q["timestamp"], q["nonce"])
                echo = q["echostr"]
            return web.Response(text=echo)
        raw = await request.text()
        if request.path.startswith("/wecom"):
            envelope = ElementTree.fromstring(raw)
            xml = self.wecom.verify_and_decrypt(
                q["msg_signature"], q["timestamp"], q["nonce"], envelope.findtext("Encrypt") or ""
            )
        elif q.get("encrypt_type") == "aes":
            check_plain_signature(OA_TOKEN, q["signature"], q["timestamp"], q["nonce"])
            envelope = ElementTree.fromstring(raw)
            xml = self.oa.verify_and_decrypt(
                q["msg_signature"], q["timestamp"], q["nonce"], envelope.findtext("Encrypt") or ""
            )
        else:
            check_plain_signature(OA_TOKEN, q["signature"], q["timestamp"], q["nonce"])
            xml = raw
        self.received.append({child.tag: child.text or "" for child in ElementTree.fromstring(xml)})
        return web.Response(text="success")


@pytest.fixture
async def receiver(sim) -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver(sim.corp_id, sim.oa_app_id)
    app = web.Application()
    app.router.add_route("*", "/wecom/callback", rec.handle)
    app.router.add_route("*", "/wechat/callback/{appid}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield rec, f"http://{host}:{port}"
    await runner.cleanup()


def driver_for(sim: TencentSimulator, url: str, *, aes: bool = True, **kwargs: Any) -> CallbackDriver:
    return CallbackDriver(
        url,
        corp_id=sim.corp_id,
        agent_id=sim.agent_id,
        wecom_token=WECOM_TOKEN,
        wecom_aes_key=WECOM_AES,
        accounts=[OAEndpoint(sim.oa_app_id, OA_TOKEN, OA_AES if aes else None)],
        sim=sim,
        **kwargs,
    )


async def test_add_external_contact_callback_registers_the_contact(api, sim, receiver) -> None:
    rec, url = receiver
    async with driver_for(sim, url) as driver:
        result = await driver.wecom_add_external_contact("guide2", "wmNew1", state="store42", unionid="oUnion9")
    assert (result.ok, result.status, result.attempts, result.body) == (True, 200, 1, "success")
    [fields] = rec.received
    assert fields["Event"] == "change_external_contact" and fields["ChangeType"] == "add_external_contact"
    assert (fields["FromUserName"], fields["ToUserName"]) == ("sys", sim.corp_id)
    assert (fields["UserID"], fields["ExternalUserID"], fields["State"]) == ("guide2", "wmNew1", "store42")
    # Tencent's side is true now: the contact exists with its unionid; the welcome code works once.
    contact = await api.wecom("/cgi-bin/externalcontact/get", method="GET", external_userid="wmNew1")
    assert contact["external_contact"]["unionid"] == "oUnion9"
    assert contact["follow_user"][0]["state"] == "store42"
    welcome = {"welcome_code": fields["WelcomeCode"], "text": {"content": "欢迎"}}
    assert (await api.wecom("/cgi-bin/externalcontact/send_welcome_msg", welcome))["errcode"] == 0


async def test_driver_retries_like_tencent(sim, receiver) -> None:
    rec, url = receiver
    async with driver_for(sim, url) as driver:
        rec.fail_next = 2
        result = await driver.wecom_text("guide1", "查 13800000000")
        assert (result.ok, result.attempts, [a.status for a in result.history]) == (True, 3, [500, 500, 200])
        rec.fail_next = 3
        failed = await driver.wecom_text("guide1", "再试")
        assert (failed.ok, failed.attempts, failed.status) == (False, 3, 500)
    # Every attempt carried the same message (same MsgId): one message, delivered once here.
    assert [f["Content"] for f in rec.received] == ["查 13800000000"]


async def test_driver_treats_a_slow_answer_as_a_failure(sim, receiver) -> None:
    rec, url = receiver
    async with driver_for(sim, url, answer_timeout=0.3) as driver:
        rec.slow_next = 0.6
        result = await driver.wecom_del_follow_user("guide1", "wmCustomer1")
    assert result.ok and result.attempts == 2 and result.history[0].status is None
    assert rec.hits == 2
    # The customer deleted the guide: Tencent's side knows it too.
    assert "guide1" not in sim.wecom.contacts["wmCustomer1"].follow


async def test_driver_oa_events_in_safe_and_plain_mode(sim, receiver) -> None:
    rec, url = receiver
    for aes in (True, False):
        async with driver_for(sim, url, aes=aes) as driver:
            assert (await driver.oa_subscribe("oOpen1", scene="store42", unionid="oUnion1")).ok
            assert (await driver.oa_scan("oOpen1", "store43")).ok
            assert (await driver.oa_text("oOpen1", "你好")).ok
            assert (await driver.oa_user_get_card("oOpen1", "pCard1", "CODE1", unionid="oUnion1")).ok
            assert (await driver.oa_user_consume_card("oOpen1", "pCard1", "CODE1", location_name="静安店")).ok
            assert (await driver.oa_user_del_card("oOpen1", "pCard1", "CODE1")).ok
            assert (await driver.oa_unsubscribe("oOpen1")).ok
    events = [(f.get("Event") or f["MsgType"], f.get("EventKey")) for f in rec.received]
    assert events[:7] == [
        ("subscribe", "qrscene_store42"),
        ("SCAN", "store43"),
        ("text", None),
        ("user_get_card", None),
        ("user_consume_card", None),
        ("user_del_card", None),
        ("unsubscribe", ""),
    ]
    assert events[7:] == events[:7]
    assert rec.received[3]["UnionId"] == "oUnion1" and rec.received[4]["LocationName"] == "静安店"
    follower = sim.oa.account(sim.oa_app_id).users["oOpen1"]
    assert follower.unionid == "oUnion1" and not follower.subscribe


async def test_verify_url(sim, receiver) -> None:
    _, url = receiver
    async with driver_for(sim, url) as driver:
        assert (await driver.verify_url()).ok
        assert (await driver.verify_url(sim.oa_app_id)).ok
    async with driver_for(sim, url, attempts=1) as wrong:
        wrong.wecom_token = "not-the-token"  # our crypto must refuse it
        result = await wrong.verify_url()
        assert not result.ok
