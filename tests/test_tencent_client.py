"""The async Tencent clients against the project's simulator over loopback, on SQLite and PostgreSQL
(the access-token cache lives in the DB)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bot.settings import Settings
from bot.simulator import TencentSimulator
from bot.tencent import OfficialAccountClient, TencentAPIError, TencentNetworkError, WeComClient
from profile_store import tokens
from profile_store.db import Database

GET = "/cgi-bin/externalcontact/get"
GETTOKEN = "/cgi-bin/gettoken"
OA_TOKEN = "/cgi-bin/token"
BACKOFF = 0.02


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.add_staff("guide1")
        simulator.add_external_contact("wmCustomer1", unionid="oUnion1", follow_userid="guide1", state="store42")
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def wecom(http: aiohttp.ClientSession, db: Database, sim: TencentSimulator, **kwargs: Any) -> WeComClient:
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("backoff", BACKOFF)
    kwargs.setdefault("backoff_max", 0.1)
    return WeComClient(
        http,
        db,
        base_url=sim.base_url,
        corp_id=sim.corp_id,
        secret=kwargs.pop("secret", sim.corp_secret),
        agent_id=sim.agent_id,
        **kwargs,
    )


def oa(http: aiohttp.ClientSession, db: Database, sim: TencentSimulator) -> OfficialAccountClient:
    return OfficialAccountClient(
        http,
        db,
        base_url=sim.base_url,
        app_id=sim.oa_app_id,
        secret=sim.oa_app_secret,
        timeout=2.0,
        backoff=BACKOFF,
        backoff_max=0.1,
    )


def errcodes(sim: TencentSimulator, path: str) -> list[int | None]:
    return [c.errcode for c in sim.calls(path)]


# ---------------------------------------------------------------------------------- access token


async def test_twenty_concurrent_calls_fetch_the_token_once(db, http, sim) -> None:
    client = wecom(http, db, sim)
    answers = await asyncio.gather(*(client.get_external_contact("wmCustomer1") for _ in range(20)))
    assert [a["external_contact"]["unionid"] for a in answers] == ["oUnion1"] * 20
    assert answers[0]["follow_user"][0]["userid"] == "guide1"
    assert answers[0]["follow_user"][0]["state"] == "store42"
    assert len(sim.calls(GETTOKEN)) == 1
    assert errcodes(sim, GET) == [0] * 20


async def test_token_is_shared_across_clients_and_processes_through_the_db(db_url, db, http, sim) -> None:
    await wecom(http, db, sim).get_external_contact("wmCustomer1")
    # A second client in this process, and one on its own engine (what another process has).
    await wecom(http, db, sim).get_external_contact("wmCustomer1")
    other_process = Database(db_url)
    try:
        await wecom(http, other_process, sim).get_external_contact("wmCustomer1")
    finally:
        await other_process.dispose()
    assert len(sim.calls(GETTOKEN)) == 1
    assert errcodes(sim, GET) == [0, 0, 0]


async def test_concurrent_processes_needing_a_token_fetch_it_once(db_url, db, http, sim) -> None:
    engines = [db, Database(db_url), Database(db_url)]
    try:
        clients = [wecom(http, engine, sim) for engine in engines]
        await asyncio.gather(*(c.get_external_contact("wmCustomer1") for c in clients for _ in range(5)))
    finally:
        for engine in engines[1:]:
            await engine.dispose()
    assert len(sim.calls(GETTOKEN)) == 1  # the DB lease let one process fetch; the others waited
    assert len(sim.calls(GET)) == 15


async def test_official_account_token_is_shared_too(db_url, db, http, sim) -> None:
    # An OA token fetch retires the previous token: two processes fetching would fight.
    sim.add_oa_follower("oOpen1", unionid="oUnion1")
    other_process = Database(db_url)
    try:
        first = await oa(http, db, sim).get_user_info("oOpen1")
        second = await oa(http, other_process, sim).get_user_info("oOpen1")
    finally:
        await other_process.dispose()
    assert first["unionid"] == second["unionid"] == "oUnion1"
    assert len(sim.calls(OA_TOKEN)) == 1


@pytest.mark.parametrize("how", ["expire", "revoke", "inject42001", "inject40014"])
async def test_token_error_refreshes_and_retries_exactly_once(db, http, sim, how) -> None:
    client = wecom(http, db, sim)
    await client.get_external_contact("wmCustomer1")
    if how == "expire":
        sim.expire_tokens()
    elif how == "revoke":
        sim.revoke_tokens()
    else:
        sim.inject(GET, int(how.removeprefix("inject")))
    answer = await client.get_external_contact("wmCustomer1")
    assert answer["external_contact"]["unionid"] == "oUnion1"
    expected_error = 40014 if how in ("revoke", "inject40014") else 42001
    assert errcodes(sim, GET) == [0, expected_error, 0]
    assert len(sim.calls(GETTOKEN)) == 2
    # The retry really used a new token: the sim answers 40014/42001 for the old one.
    old, new = (c.answer for c in sim.calls(GETTOKEN))
    assert old and new and old["access_token"] != new["access_token"]


async def test_a_second_token_error_is_not_retried_again(db, http, sim) -> None:
    client = wecom(http, db, sim)
    sim.inject(GET, 40014, times=2)
    with pytest.raises(TencentAPIError) as err:
        await client.get_external_contact("wmCustomer1")
    assert err.value.errcode == 40014
    assert errcodes(sim, GET) == [40014, 40014]


async def test_official_account_40001_means_refresh(db, http, sim) -> None:
    sim.add_oa_follower("oOpen1", unionid="oUnion1")
    client = oa(http, db, sim)
    await client.get_user_info("oOpen1")
    sim.revoke_tokens()
    answer = await client.get_user_info("oOpen1")
    assert answer["subscribe"] == 1
    assert errcodes(sim, "/cgi-bin/user/info") == [0, 40001, 0]
    assert len(sim.calls(OA_TOKEN)) == 2


async def test_wecom_40001_is_a_wrong_secret_and_final(db, http, sim) -> None:
    bad = wecom(http, db, sim, secret="not-the-secret")
    with pytest.raises(TencentAPIError) as err:
        await bad.get_external_contact("wmCustomer1")
    assert err.value.errcode == 40001 and err.value.path == GETTOKEN
    assert len(sim.calls(GETTOKEN)) == 1
    assert sim.calls(GET) == []
    # The failed fetch released its refresh lease: a good client gets a token at once.
    started = time.monotonic()
    await wecom(http, db, sim).get_external_contact("wmCustomer1")
    assert time.monotonic() - started < 2.0


# ---------------------------------------------------------------------------------- retries


async def test_system_busy_is_retried_up_to_three_times(db, http, sim) -> None:
    client = wecom(http, db, sim)
    sim.inject(GET, -1, times=3)
    answer = await client.get_external_contact("wmCustomer1")
    assert answer["errcode"] == 0
    assert errcodes(sim, GET) == [-1, -1, -1, 0]


async def test_system_busy_a_fourth_time_is_an_error(db, http, sim) -> None:
    client = wecom(http, db, sim)
    sim.inject(GET, -1, times=4)
    with pytest.raises(TencentAPIError) as err:
        await client.get_external_contact("wmCustomer1")
    assert err.value.errcode == -1
    assert errcodes(sim, GET) == [-1, -1, -1, -1]  # 1 attempt + 3 retries, then no more


@pytest.mark.parametrize("errcode", [45009, 45033])
async def test_rate_limits_back_off_then_succeed(db, http, sim, errcode) -> None:
    client = wecom(http, db, sim)
    sim.inject(GET, errcode, times=2)
    answer = await client.get_external_contact("wmCustomer1")
    assert answer["external_contact"]["external_userid"] == "wmCustomer1"
    calls = sim.calls(GET)
    assert [c.errcode for c in calls] == [errcode, errcode, 0]
    # A quota answer waits at least 4x the base backoff (BACKOFF) before the next attempt.
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap >= 4 * BACKOFF for gap in gaps), gaps


async def test_timeout_is_retried(db, http, sim) -> None:
    client = wecom(http, db, sim, timeout=0.3)
    await client.access_token()
    sim.delay(GET, 1.0)
    started = time.monotonic()
    answer = await client.get_external_contact("wmCustomer1")
    assert answer["external_contact"]["unionid"] == "oUnion1"
    assert len(sim.calls(GET)) == 2
    assert time.monotonic() - started < 1.0  # did not wait for the slow answer


async def test_timeouts_every_time_end_in_a_network_error(db, http, sim) -> None:
    client = wecom(http, db, sim, timeout=0.2, max_retries=2)
    await client.access_token()
    sim.delay(GET, 0.6, times=3)
    with pytest.raises(TencentNetworkError):
        await client.get_external_contact("wmCustomer1")
    assert len(sim.calls(GET)) == 3


async def test_unreachable_tencent_is_a_network_error(db, http, sim) -> None:
    client = wecom(http, db, sim, max_retries=1)
    client.base_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(TencentNetworkError):
        await client.get_external_contact("wmCustomer1")


async def test_welcome_code_used_twice_is_final_41051(db, http, sim) -> None:
    client = wecom(http, db, sim)
    code = sim.issue_welcome_code("guide1", "wmCustomer1")
    await client.send_welcome_msg(code, text="欢迎光临")
    with pytest.raises(TencentAPIError) as err:
        await client.send_welcome_msg(code, text="欢迎光临")
    assert err.value.errcode == 41051
    assert errcodes(sim, "/cgi-bin/externalcontact/send_welcome_msg") == [0, 41051]  # not retried
    assert len(sim.wecom.welcome_messages) == 1


async def test_another_app_sending_41096_is_retried(db, http, sim) -> None:
    client = wecom(http, db, sim)
    code = sim.issue_welcome_code("guide1", "wmCustomer1")
    sim.inject("/cgi-bin/externalcontact/send_welcome_msg", 41096)
    await client.send_welcome_msg(code, text="欢迎")
    assert errcodes(sim, "/cgi-bin/externalcontact/send_welcome_msg") == [41096, 0]


@pytest.mark.parametrize(
    ("call", "errcode"),
    [
        (lambda c: c.mark_tag("nobody", "wmCustomer1", add_tag=["x"]), 60111),
        (lambda c: c.get_external_contact("wmStranger"), 84061),
        (lambda c: c.get_external_contact("not-an-external-id"), 40096),
    ],
)
async def test_final_errors_are_raised_at_once(db, http, sim, call, errcode) -> None:
    client = wecom(http, db, sim)
    with pytest.raises(TencentAPIError) as err:
        await call(client)
    assert err.value.errcode == errcode
    assert [c.errcode for c in sim.calls() if c.path != GETTOKEN] == [errcode]


async def test_retries_send_the_same_body(db, http, sim) -> None:
    client = wecom(http, db, sim)
    sim.inject("/cgi-bin/message/send", -1, times=2)
    payload = {"touser": "guide1", "msgtype": "text", "text": {"content": "顾客到店"}}
    answer = await client.send_app_message(payload)
    bodies = [c.body for c in sim.calls("/cgi-bin/message/send")]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert bodies[0] == {**payload, "agentid": int(sim.agent_id)}
    assert payload == {"touser": "guide1", "msgtype": "text", "text": {"content": "顾客到店"}}  # not mutated
    assert [m.msgid for m in sim.app_messages] == [answer["msgid"]]


# ---------------------------------------------------------------------------------- settings, methods


async def test_base_url_and_limits_come_from_settings(db, http, sim, monkeypatch) -> None:
    for name, value in {
        "WECOM_API_BASE": sim.base_url,
        "WECHAT_API_BASE": sim.base_url,
        "WECOM_CORP_ID": sim.corp_id,
        "WECOM_SECRET": sim.corp_secret,
        "WECOM_AGENT_ID": sim.agent_id,
        "WECHAT_APP_ID": sim.oa_app_id,
        "WECHAT_APP_SECRET": sim.oa_app_secret,
        "WECHAT_TOKEN": "oa-callback-token",
        "QIANMIAN_API_TIMEOUT": "1.5",
        "QIANMIAN_API_MAX_RETRIES": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    client = WeComClient.from_settings(http, db, settings)
    assert (client.base_url, client.timeout, client.max_retries) == (sim.base_url, 1.5, 2)
    await client.get_external_contact("wmCustomer1")
    assert errcodes(sim, GET) == [0]
    sim.add_oa_follower("oOpen1")
    official = OfficialAccountClient.from_settings(http, db, settings, sim.oa_app_id)
    assert (await official.get_user_info("oOpen1"))["subscribe"] == 1


def test_default_base_urls_are_tencents(monkeypatch) -> None:
    for name in ("WECOM_API_BASE", "WECHAT_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    # Only the configured defaults are read here; no request leaves the machine.
    wecom, wechat = urlsplit(settings.wecom_api_base), urlsplit(settings.wechat_api_base)
    assert (wecom.scheme, wecom.hostname) == ("https", "qyapi.weixin.qq.com")
    assert (wechat.scheme, wechat.hostname) == ("https", "api.weixin.qq.com")


async def test_wecom_methods_round_trip(db, http, sim) -> None:
    client = wecom(http, db, sim)
    way = await client.add_contact_way(user=["guide1"], state="s" * 30)
    assert way["config_id"] and way["qr_code"].startswith("http")
    assert sim.wecom.contact_ways[way["config_id"]]["state"] == "s" * 30

    created = await client.add_corp_tag(["高价值", "沉睡"], group_name="千面")
    tag_ids = {t["name"]: t["id"] for t in created["tag_group"]["tag"]}
    listed = await client.get_corp_tag_list()
    assert {t["name"] for g in listed["tag_group"] for t in g["tag"]} == {"高价值", "沉睡"}
    await client.mark_tag("guide1", "wmCustomer1", add_tag=[tag_ids["高价值"]])
    contact = await client.get_external_contact("wmCustomer1")
    assert [t["tag_name"] for t in contact["follow_user"][0]["tags"]] == ["高价值"]

    media = await client.upload_media("image", "portrait.png", b"\x89PNG\r\n\x1a\nfake")
    sent = await client.send_app_message(
        {"touser": "guide1", "msgtype": "image", "image": {"media_id": media["media_id"]}}
    )
    assert sent["invaliduser"] == ""
    for payload in (
        {"touser": "guide1", "msgtype": "markdown", "markdown": {"content": "**到店**"}},
        {
            "touser": "guide1",
            "msgtype": "textcard",
            "textcard": {"title": "客户画像", "description": "张*", "url": "http://127.0.0.1/p/x"},
        },
        {"touser": "guide1", "msgtype": "template_card", "template_card": {"card_type": "text_notice"}},
    ):
        await client.send_app_message(payload)
    assert [m.msgtype for m in sim.app_messages] == ["image", "markdown", "textcard", "template_card"]

    template = await client.add_msg_template(
        sender="guide1", external_userid=["wmCustomer1", "wmStranger"], text="周末新品"
    )
    assert template["fail_list"] == ["wmStranger"]
    result = await client.get_groupmsg_send_result(template["msgid"], "guide1")
    assert result["send_list"] == [{"external_userid": "wmCustomer1", "userid": "guide1", "status": 0}]


async def test_official_account_methods_round_trip(db, http, sim) -> None:
    sim.add_oa_follower("oOpen1", unionid="oUnion1")
    client = oa(http, db, sim)
    temp = await client.create_qrcode("store42", permanent=False, expire_seconds=10**9)
    assert temp["expire_seconds"] == 2_592_000 and temp["ticket"]
    permanent = await client.create_qrcode("store42", permanent=True)
    assert "expire_seconds" not in permanent
    sent = await client.send_template_message(
        "oOpen1", "TPL1", {"first": "您好", "remark": {"value": "欢迎"}}, client_msg_id="coupon-1"
    )
    again = await client.send_template_message(
        "oOpen1", "TPL1", {"first": "您好", "remark": {"value": "欢迎"}}, client_msg_id="coupon-1"
    )
    assert sent["msgid"] == again["msgid"]
    assert len(sim.oa.account(sim.oa_app_id).template_messages) == 1
    await client.send_custom_message("oOpen1", "text", {"content": "您好"})
    sim.advance(48 * 3600 + 1)
    with pytest.raises(TencentAPIError) as err:
        await client.send_custom_message("oOpen1", "text", {"content": "还在吗"})
    assert err.value.errcode == 45015
    # Two days on the token had expired too: refreshed once, then 45015, which is final.
    assert errcodes(sim, "/cgi-bin/message/custom/send") == [0, 42001, 45015]


async def test_token_table_lease_and_discard(db) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(seconds=11)
    async with db.transaction() as session:
        assert await tokens.acquire_lease(session, "wecom:c:1", "A", now, 10)
    async with db.transaction() as session:
        assert not await tokens.acquire_lease(session, "wecom:c:1", "B", now, 10)  # held by A
        assert await tokens.acquire_lease(session, "wechat:x", "B", now, 10)  # another key is free
    async with db.transaction() as session:
        assert await tokens.acquire_lease(session, "wecom:c:1", "B", later, 10)  # A died: expired
        await tokens.release_lease(session, "wecom:c:1", "A")  # A's late release frees nothing
    async with db.transaction() as session:
        assert not await tokens.acquire_lease(session, "wecom:c:1", "C", later, 10)
        await tokens.store_token(session, "wecom:c:1", "T1", now + timedelta(seconds=60))
        await tokens.store_token(session, "wecom:c:1", "T2", now + timedelta(seconds=60))  # replaces
    async with db.transaction() as session:
        assert await tokens.valid_token(session, "wecom:c:1", now) == ("T2", now + timedelta(seconds=60))
        assert await tokens.valid_token(session, "wecom:c:1", now + timedelta(seconds=60)) is None
        await tokens.discard_token(session, "wecom:c:1", "T1", now)  # an older token: no effect
        assert await tokens.valid_token(session, "wecom:c:1", now) is not None
        await tokens.discard_token(session, "wecom:c:1", "T2", now)
        assert await tokens.valid_token(session, "wecom:c:1", now) is None
