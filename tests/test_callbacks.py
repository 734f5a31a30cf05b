"""The callback edge end to end: a real aiohttp server (pytest-aiohttp), the real database on both
back-ends, the project's Tencent simulator for the WeCom API. Every bad input of runtime.md is a
test, and none of them may write anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text

from bot.app import DISPATCHER, create_app
from bot.callbacks import CallbackVerifier, Rejected
from bot.dispatcher import Dispatcher
from bot.settings import Settings
from bot.simulator.server import TencentSimulator
from profile_store import raw_events
from profile_store.db import Database
from profile_store.models import Event
from tests import callback_kit as kit

SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def local(create_time: int) -> datetime:
    return datetime.fromtimestamp(create_time, SHANGHAI).replace(tzinfo=None)


@dataclass
class Bot:
    client: TestClient
    app: Any
    settings: Settings
    db: Database
    sim: TencentSimulator

    @property
    def corp(self) -> str:
        return self.sim.corp_id

    async def post(self, path: str, signed: kit.Signed) -> tuple[int, str]:
        resp = await self.client.post(path, params=signed.params, data=signed.body)
        return resp.status, await resp.text()

    async def settle(self) -> None:
        """Wait until background processing of everything answered is over."""
        dispatcher = self.app[DISPATCHER]
        while dispatcher.tasks:
            await asyncio.gather(*list(dispatcher.tasks), return_exceptions=True)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.transaction() as session:
            return list((await session.execute(text(sql), params)).all())

    async def count(self, table: str) -> int:
        return (await self.rows(f"SELECT COUNT(*) FROM {table}"))[0][0]

    async def nothing_written(self) -> None:
        for table in ("raw_event", "event", "dead_letter", "link", "identity_node"):
            assert await self.count(table) == 0, table


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        yield simulator


def _settings(db_url: str, sim: TencentSimulator, **extra: Any) -> Settings:
    return kit.make_settings(
        db_url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id, api_base=sim.base_url, **extra
    )


@pytest.fixture
async def bot(db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any) -> Bot:
    settings = _settings(db_url, sim)
    app = create_app(settings, db=db, sweep_interval=3600)
    client = await aiohttp_client(app)
    return Bot(client, app, settings, db, sim)


# ============================================================================ URL verification


async def test_wecom_url_verification_answers_decrypted_echostr(bot: Bot) -> None:
    params = kit.wecom_echo("echo-1234567890", corp_id=bot.corp)
    resp = await bot.client.get("/wecom/callback", params=params)
    assert resp.status == 200 and await resp.text() == "echo-1234567890"
    params["msg_signature"] = "0" * 40
    resp = await bot.client.get("/wecom/callback", params=params)
    assert resp.status == 403
    await bot.nothing_written()


async def test_oa_url_verification_plain(bot: Bot) -> None:
    ts, nonce = str(int(time.time())), "abc"
    params = {"signature": kit.sha1_sorted(kit.OA1_TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": "e1"}
    resp = await bot.client.get("/wechat/callback", params=params)
    assert (resp.status, await resp.text()) == (200, "e1")
    signed = {**params, "signature": kit.sha1_sorted(kit.OA2_TOKEN, ts, nonce)}
    resp = await bot.client.get(f"/wechat/callback/{kit.OA2}", params=signed)
    assert (resp.status, await resp.text()) == (200, "e1")
    resp = await bot.client.get(f"/wechat/callback/{kit.OA2}", params=params)  # OA1's token: forged
    assert resp.status == 403
    resp = await bot.client.get("/wechat/callback", params={k: v for k, v in params.items() if k != "echostr"})
    assert resp.status == 400
    resp = await bot.client.get("/wechat/callback/wxunknownaccount", params=params)
    assert resp.status == 404


# ============================================================================ bad requests


async def test_forged_signature_is_403_and_writes_nothing(bot: Bot) -> None:
    xml = kit.oa_event("subscribe", "oOPENID1", int(time.time()))
    signed = kit.wecom_post(
        kit.wecom_contact("add_external_contact", "g1", "wmX", int(time.time()), corp_id=bot.corp), corp_id=bot.corp
    )
    forged = kit.Signed(
        {**signed.params, "msg_signature": kit.sha1_sorted("wrong-token", signed.params["timestamp"], "nonce1")},
        signed.body,
    )
    assert (await bot.post("/wecom/callback", forged))[0] == 403
    plain = kit.oa_plain_post(xml, token="not-the-token")
    assert (await bot.post("/wechat/callback", plain))[0] == 403
    safe = kit.oa_safe_post(xml)
    tampered = kit.Signed({**safe.params, "msg_signature": "f" * 40}, safe.body)
    assert (await bot.post(f"/wechat/callback/{kit.OA2}", tampered))[0] == 403
    await bot.nothing_written()


async def test_stale_or_future_timestamp_is_403(bot: Bot) -> None:
    skew = bot.settings.callback_max_skew_seconds
    xml = kit.oa_event("subscribe", "oOPENID1", int(time.time()))
    for ts in (int(time.time()) - skew - 5, int(time.time()) + skew + 5):
        status, _ = await bot.post("/wechat/callback", kit.oa_plain_post(xml, timestamp=ts))
        assert status == 403
        wecom = kit.wecom_post(xml, corp_id=bot.corp, timestamp=ts)
        assert (await bot.post("/wecom/callback", wecom))[0] == 403
    await bot.nothing_written()
    status, _ = await bot.post("/wechat/callback", kit.oa_plain_post(xml, timestamp=int(time.time()) - skew + 5))
    assert status == 200


def test_timestamp_skew_boundary(db_url: str) -> None:
    settings = kit.make_settings(db_url, corp_id="ww1", secret="s", agent_id="1", api_base="http://127.0.0.1:9")
    now = 1_700_000_000.0
    verifier = CallbackVerifier(settings, clock=lambda: now)
    limit = settings.callback_max_skew_seconds
    verifier._check_time(str(int(now) - limit))  # exactly the limit: accepted
    verifier._check_time(str(int(now) + limit))
    for off in (limit + 1, -(limit + 1)):
        with pytest.raises(Rejected) as info:
            verifier._check_time(str(int(now) - off))
        assert info.value.status == 403
    with pytest.raises(Rejected) as info:
        verifier._check_time("17e8")
    assert info.value.status == 400


@pytest.mark.parametrize("missing", ["msg_signature", "timestamp", "nonce"])
async def test_missing_parameter_is_400(bot: Bot, missing: str) -> None:
    signed = kit.wecom_post(kit.wecom_text("g1", "m1", "hi", int(time.time()), corp_id=bot.corp), corp_id=bot.corp)
    params = {k: v for k, v in signed.params.items() if k != missing}
    assert (await bot.post("/wecom/callback", kit.Signed(params, signed.body)))[0] == 400
    await bot.nothing_written()


async def test_malformed_and_truncated_xml_is_400(bot: Bot) -> None:
    now = int(time.time())
    good = kit.wecom_post(kit.wecom_text("g1", "m1", "hi", now, corp_id=bot.corp), corp_id=bot.corp)
    # the envelope cut short
    assert (await bot.post("/wecom/callback", kit.Signed(good.params, good.body[: len(good.body) // 2])))[0] == 400
    # not XML at all, and an empty body
    assert (await bot.post("/wecom/callback", kit.Signed(good.params, b'{"json": true}')))[0] == 400
    assert (await bot.post("/wecom/callback", kit.Signed(good.params, b"")))[0] == 400
    # a well-signed envelope whose decrypted document is truncated
    inner = kit.wecom_text("g1", "m2", "hi", now, corp_id=bot.corp)
    assert (await bot.post("/wecom/callback", kit.wecom_post(inner[:-10], corp_id=bot.corp)))[0] == 400
    # a plain OA document without the fields every callback has
    no_time = "<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType></xml>"
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(no_time)))[0] == 400
    bad_time = kit.oa_event("subscribe", "o1", 0).replace("<CreateTime>0</CreateTime>", "<CreateTime>soon</CreateTime>")
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(bad_time)))[0] == 400
    # an envelope without <Encrypt>
    no_encrypt = kit.Signed(good.params, b"<xml><ToUserName>x</ToUserName></xml>")
    assert (await bot.post("/wecom/callback", no_encrypt))[0] == 400
    await bot.nothing_written()


async def test_bad_base64_and_foreign_receiver_is_400(bot: Bot) -> None:
    ts, nonce, encrypt = str(int(time.time())), "n9", "!!!not-base64!!!"
    params = {"msg_signature": kit.sha1_sorted(kit.WECOM_TOKEN, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
    body = kit.cdata({"ToUserName": bot.corp, "Encrypt": encrypt}).encode()
    assert (await bot.post("/wecom/callback", kit.Signed(params, body)))[0] == 400
    # well signed and well encrypted, but for another corp (receive id)
    other = kit.wecom_post(kit.wecom_text("g1", "m1", "hi", int(time.time()), corp_id="wwother"), corp_id="wwother")
    assert (await bot.post("/wecom/callback", other))[0] == 400
    # safe mode on an account configured for plain mode only
    safe = kit.oa_safe_post(kit.oa_event("subscribe", "o1", int(time.time())))
    assert (await bot.post("/wechat/callback", safe))[0] == 400
    await bot.nothing_written()


BOMB = """<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>
<MsgType>text</MsgType><MsgId>1</MsgId><Content>&f;</Content></xml>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>
<MsgType>text</MsgType><MsgId>2</MsgId><Content>&xxe;</Content></xml>"""

DTD_ONLY = """<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">
<xml><ToUserName>gh</ToUserName></xml>"""


@pytest.mark.parametrize("doc", [BOMB, EXTERNAL, DTD_ONLY], ids=["billion-laughs", "external-entity", "external-dtd"])
async def test_xml_bombs_and_entities_are_400_never_expanded(bot: Bot, doc: str) -> None:
    started = time.perf_counter()
    status, answer = await bot.post("/wechat/callback", kit.oa_plain_post(doc))  # plain: the body itself
    assert status == 400 and "root:" not in answer and "aaaa" not in answer
    status, answer = await bot.post("/wecom/callback", kit.wecom_post(doc, corp_id=bot.corp))  # inside AES
    assert status == 400 and "root:" not in answer
    envelope = kit.wecom_post("<xml/>", corp_id=bot.corp)  # in the envelope itself
    assert (await bot.post("/wecom/callback", kit.Signed(envelope.params, doc.encode())))[0] == 400
    assert time.perf_counter() - started < 5  # 20**5 * 64 bytes were never built
    await bot.nothing_written()


async def test_body_over_one_mib_is_413(bot: Bot) -> None:
    signed = kit.oa_plain_post(kit.oa_event("subscribe", "o1", int(time.time())))
    padding = b" " * (1024 * 1024 + 1 - len(signed.body))
    assert (await bot.post("/wechat/callback", kit.Signed(signed.params, signed.body + padding)))[0] == 413
    huge = kit.wecom_post("<xml/>", corp_id=bot.corp)
    assert (await bot.post("/wecom/callback", kit.Signed(huge.params, b"<xml>" + b"x" * (2 << 20) + b"</xml>")))[
        0
    ] == 413
    await bot.nothing_written()
    # just under the limit is read (and then judged on its content)
    ok = kit.Signed(signed.params, signed.body + b" " * (1024 * 1024 - len(signed.body)))
    assert (await bot.post("/wechat/callback", ok))[0] == 200


async def test_rejections_are_counted_in_metrics(bot: Bot) -> None:
    signed = kit.oa_plain_post(kit.oa_event("subscribe", "o1", int(time.time())), token="bad")
    await bot.post("/wechat/callback", signed)
    resp = await bot.client.get("/metrics")
    body = await resp.text()
    assert resp.status == 200
    assert 'qianmian_callbacks_rejected_total{channel="wechat",reason="bad_signature"} 1.0' in body
    assert (await (await bot.client.get("/healthz")).text()) == "ok"


# ============================================================================ duplicates


@pytest.mark.parametrize("impl", ["wechatpy", "ours"])
async def test_duplicate_is_answered_alike_recorded_and_processed_once(bot: Bot, impl: str) -> None:
    now = int(time.time())
    xml = kit.wecom_contact("del_external_contact", "guide01", "wmCustomer1", now, corp_id=bot.corp)
    first = await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp, nonce="a", impl=impl))
    await bot.settle()
    retry = await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp, nonce="b", impl=impl))
    # and a burst of concurrent retries
    burst = await asyncio.gather(
        *(
            bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp, nonce=f"c{i}", impl=impl))
            for i in range(5)
        )
    )
    await bot.settle()
    assert first == retry == (200, "success")
    assert all(answer == first for answer in burst)
    assert await bot.count("raw_event") == 1
    assert await bot.count("event") == 1
    assert (await bot.rows("SELECT status FROM raw_event"))[0][0] == "done"
    metrics = await (await bot.client.get("/metrics")).text()
    assert 'qianmian_callbacks_duplicate_total{channel="wecom"} 6.0' in metrics


async def test_same_create_time_different_contacts_are_not_duplicates(bot: Bot) -> None:
    """FromUserName is always `sys`: two contacts added in the same second are two callbacks."""
    now = int(time.time())
    for ext in ("wmA", "wmB"):
        xml = kit.wecom_contact("del_follow_user", "guide01", ext, now, corp_id=bot.corp)
        assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()
    assert await bot.count("raw_event") == 2
    assert await bot.count("event") == 2


# ============================================================================ dead letters


async def test_unknown_event_is_200_dead_lettered_and_replayable(bot: Bot) -> None:
    now = int(time.time())
    xml = kit.oa_event("LOCATION", "oLoc", now, Latitude="23.1", Longitude="113.3", Precision="119")
    assert await bot.post("/wechat/callback", kit.oa_plain_post(xml)) == (200, "success")
    await bot.settle()
    async with bot.db.transaction() as session:
        letters = await raw_events.list_dead_letters(session)
    assert len(letters) == 1 and "LOCATION" in letters[0].reason
    assert letters[0].raw_status == "dead" and letters[0].channel == "wechat" and letters[0].account == kit.OA1
    assert await bot.count("event") == 0
    async with bot.db.transaction() as session:
        replayed = await raw_events.replay(session, [letters[0].id])
    assert replayed == [letters[0].raw_event_id]
    assert (await bot.rows("SELECT status FROM raw_event"))[0][0] == "pending"
    outcomes = await bot.app[DISPATCHER].sweep()
    assert outcomes == {"dead": 1}  # still unknown to this version: dead again, with a new letter
    async with bot.db.transaction() as session:
        assert await raw_events.list_dead_letters(session) != []
        everything = await raw_events.list_dead_letters(session, include_replayed=True)
        assert await raw_events.replay(session, [letters[0].id]) == []  # a letter is replayed once
    assert len(everything) == 2 and everything[0].replayed_at is not None


async def test_replay_after_a_handler_is_deployed(
    db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any
) -> None:
    """A version without the follow handler dead-letters follows; after an upgrade, replay makes
    them facts."""
    settings = _settings(db_url, sim)
    old = create_app(settings, db=db, routers=[], sweep_interval=3600)
    client = await aiohttp_client(old)
    now = int(time.time())
    signed = kit.oa_plain_post(kit.oa_event("subscribe", "oLate", now, EventKey="qrscene_s1", Ticket="t"))
    resp = await client.post("/wechat/callback", params=signed.params, data=signed.body)
    assert resp.status == 200
    while old[DISPATCHER].tasks:
        await asyncio.gather(*list(old[DISPATCHER].tasks))
    async with db.transaction() as session:
        letters = await raw_events.list_dead_letters(session)
        assert [letter.reason for letter in letters] == ["no handler for SubscribeEvent"]
        await raw_events.replay(session, None)
    new = create_app(settings, db=db, sweep_interval=3600)
    assert await new[DISPATCHER].sweep() == {"done": 1}
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT type, openid, qr_state, person_id FROM event"))).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("follow", "oLate", "s1")] and rows[0][3]


async def test_handler_errors_retry_then_dead_letter(db: Database, db_url: str, sim: TencentSimulator) -> None:
    from bot.callback_xml import SubscribeEvent
    from bot.dispatcher import Router

    router = Router()
    calls = []

    @router.event(SubscribeEvent)
    async def broken(event: SubscribeEvent, session: Any) -> None:
        calls.append(event.dedupe_key)
        await session.execute(text("INSERT INTO store (store_id, name, city, region) VALUES ('half', '', '', '')"))
        raise RuntimeError("handler bug")

    settings = _settings(db_url, sim)
    dispatcher = Dispatcher(db, [router], {"settings": settings}, max_attempts=3)
    new = await raw_events.record_once(
        db,
        [
            raw_events.NewRawEvent(
                "k1", "wechat", kit.OA1, kit.oa_event("subscribe", "o1", 1_700_000_000), datetime.now(SHANGHAI)
            )
        ],
    )
    raw_id = new["k1"]
    assert [await dispatcher.process(raw_id) for _ in range(3)] == ["failed", "failed", "dead"]
    assert len(calls) == 3
    async with db.transaction() as session:
        assert (await session.execute(text("SELECT COUNT(*) FROM store"))).scalar_one() == 0  # rolled back
        letters = await raw_events.list_dead_letters(session)
    assert "handler failed 3 times" in letters[0].reason and "handler bug" in letters[0].reason
    assert await dispatcher.process(raw_id) == "skipped"


async def test_quiet_is_judged_after_requests_the_busy_loop_held_back(db: Database) -> None:
    """Processing asks the recorder whether answering is quiet before each batch. A request that
    arrived while the loop was busy reaches `record` a few turns of the loop later (read, parsed,
    verified): it must be seen before quiet is reported, or processing takes a full batch in the
    middle of a flood."""
    from bot.recorder import Recorder

    recorder = Recorder(db)
    await recorder.start()
    loop = asyncio.get_running_loop()

    def event(i: int) -> raw_events.NewRawEvent:
        body = kit.oa_event("subscribe", f"oq{i}", 1_700_000_000 + i)
        return raw_events.NewRawEvent(f"q{i}", "wechat", kit.OA1, body, datetime.now(SHANGHAI))

    recorded: list[float] = []

    async def held_back_request() -> None:
        await recorder.record(event(1))
        recorded.append(loop.time())

    try:
        await recorder.record(event(0))
        # The request is three turns of the loop away from `record`, and the loop is busy now.
        loop.call_soon(loop.call_soon, loop.call_soon, lambda: loop.create_task(held_back_request()))
        time.sleep(0.02)  # noqa: ASYNC251 -- blocking on purpose: the loop is busy processing
        asked = loop.time()
        assert await recorder.wait_idle(1.0) is True
        assert recorded and recorded[0] >= asked  # quiet only after that request was recorded
        # A steady trickle, one every 2 ms, is never quiet at 5 ms; it ends, and quiet follows.
        async def trickle() -> None:
            for i in range(2, 40):
                await recorder.record(event(i))
                await asyncio.sleep(0.002)

        stream = asyncio.create_task(trickle())
        await asyncio.sleep(0.01)
        assert await recorder.wait_idle(0.05) is False
        await stream
        assert await recorder.wait_idle(1.0) is True
    finally:
        await recorder.stop()


async def _subscribes(db: Database, first: int, count: int) -> list[raw_events.StoredRawEvent]:
    """`count` OA subscribe callbacks recorded as the edge records them, oldest first."""
    new = await raw_events.record_once(
        db,
        [
            raw_events.NewRawEvent(
                f"k{i}",
                "wechat",
                kit.OA1,
                kit.oa_event("subscribe", f"o{i:02d}", 1_700_000_000 + i),
                datetime.now(SHANGHAI),
            )
            for i in range(first, first + count)
        ],
    )
    async with db.read() as session:
        return await raw_events.get_many(session, sorted(new.values()))


async def _until_none_pending(db: Database, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while True:
            async with db.read() as session:
                if (await raw_events.counts_by_status(session)).get("pending", 0) == 0:
                    return
            await asyncio.sleep(0.02)


def _noting_dispatcher(db: Database, db_url: str, sim: TencentSimulator, seen: list[str]) -> Dispatcher:
    """A dispatcher whose memory queue holds 3 callbacks, noting each subscriber it processes."""
    from bot.callback_xml import SubscribeEvent
    from bot.dispatcher import Router

    router = Router()

    @router.event(SubscribeEvent)
    async def note(event: SubscribeEvent) -> None:
        seen.append(event.openid)

    return Dispatcher(db, [router], {"settings": _settings(db_url, sim)}, max_queued=3, batch_size=4)


async def test_a_backlog_past_the_memory_queue_waits_in_the_database(
    db: Database, db_url: str, sim: TencentSimulator
) -> None:
    """A flood: the first `max_queued` callbacks wait as tasks, the rest only in the database;
    every one is processed once, oldest first, and afterwards callbacks queue in memory again."""
    seen: list[str] = []
    dispatcher = _noting_dispatcher(db, db_url, sim, seen)
    flood = await _subscribes(db, 0, 11)
    spawned = [dispatcher.spawn(raw) for raw in flood]  # all at once, before any is processed
    assert sum(task is not None for task in spawned) == 3 and len(dispatcher.tasks) == 3
    await _until_none_pending(db)
    assert seen == [f"o{i:02d}" for i in range(11)]  # each once, oldest first
    later = dispatcher.spawn((await _subscribes(db, 11, 1))[0])
    assert later is not None and await later == "done"  # the memory queue is back in use
    assert seen[-1] == "o11" and len(seen) == 12
    await dispatcher.drain()


async def test_a_backlog_the_database_could_not_give_is_read_again(
    db: Database, db_url: str, sim: TencentSimulator
) -> None:
    """The database is away (here: the inbox table is) while a flood's backlog is read: the
    backlog is read again once it is back, by the dispatcher itself; no sweeper runs here."""
    seen: list[str] = []
    dispatcher = _noting_dispatcher(db, db_url, sim, seen)
    flood = await _subscribes(db, 0, 11)
    async with db.transaction() as session:
        await session.execute(text("ALTER TABLE raw_event RENAME TO raw_event_away"))
    try:
        for raw in flood:
            dispatcher.spawn(raw)
        await asyncio.sleep(0.3)  # the queued batch, then the backlog's read, fail
        assert seen == []
    finally:
        async with db.transaction() as session:
            await session.execute(text("ALTER TABLE raw_event_away RENAME TO raw_event"))
    await _until_none_pending(db)
    assert sorted(seen) == [f"o{i:02d}" for i in range(11)]  # each once
    await dispatcher.drain()


# ============================================================================ each event type → fact and person


async def _events(bot: Bot) -> list[dict[str, Any]]:
    table = Event.__table__  # type: ignore[attr-defined]  # typed columns: datetimes come back as datetimes on SQLite too
    async with bot.db.transaction() as session:
        rows = (await session.execute(select(table).order_by(table.c.occurred_at, table.c.type))).mappings().all()
    return [dict(row) for row in rows]


async def _person_of(bot: Bot, kind: str, value: str) -> str | None:
    rows = await bot.rows("SELECT person_id FROM identity_node WHERE kind = :k AND value = :v", k=kind, v=value)
    return rows[0][0] if rows else None


async def test_official_account_events_become_facts(bot: Bot) -> None:
    t = int(time.time()) - 100
    posts = [
        kit.oa_event("subscribe", "oAlice", t, EventKey="qrscene_store_042", Ticket="gQH47"),
        kit.oa_event("SCAN", "oAlice", t + 1, EventKey="store_007", Ticket="gQH48"),
        kit.oa_text("oAlice", "23456789012345", "有新款吗", t + 2),
        kit.oa_event(
            "user_get_card",
            "oAlice",
            t + 3,
            CardId="pCard50",
            UserCardCode="12312312",
            IsGiveByFriend=0,
            OuterStr="s",
            UnionId="uAlice",
        ),
        kit.oa_event(
            "user_consume_card",
            "oAlice",
            t + 4,
            CardId="pCard50",
            UserCardCode="12312312",
            ConsumeSource="FROM_API",
            LocationName="一号店",
            StaffOpenId="oStaff",
            OuterStr="s",
        ),
        kit.oa_event("user_del_card", "oAlice", t + 5, CardId="pCard50", UserCardCode="99999999"),
        kit.oa_event("unsubscribe", "oAlice", t + 6),
        kit.oa_event("subscribe", "oBob", t + 7),  # a plain follow: no scene
    ]
    for xml in posts:
        assert await bot.post("/wechat/callback", kit.oa_plain_post(xml)) == (200, "success")
    await bot.settle()
    events = await _events(bot)
    alice = await _person_of(bot, "openid", f"{kit.OA1}/oAlice")
    assert alice and alice == await _person_of(bot, "unionid", "uAlice")  # the card linked them
    bob = await _person_of(bot, "openid", f"{kit.OA1}/oBob")
    assert bob and bob != alice
    expected = [
        ("follow", local(t), "oAlice", None, "store_042", None, None, alice),
        ("scan", local(t + 1), "oAlice", None, "store_007", None, None, alice),
        ("message", local(t + 2), "oAlice", None, None, None, None, alice),
        ("coupon_get", local(t + 3), "oAlice", "uAlice", None, "pCard50", "12312312", alice),
        ("coupon_consume", local(t + 4), "oAlice", None, None, "pCard50", "12312312", alice),
        ("coupon_delete", local(t + 5), "oAlice", None, None, "pCard50", "99999999", alice),
        ("unfollow", local(t + 6), "oAlice", None, None, None, None, alice),
        ("follow", local(t + 7), "oBob", None, None, None, None, bob),
    ]
    got = [
        (
            e["type"],
            e["occurred_at"],
            e["openid"],
            e["unionid"],
            e["qr_state"],
            e["card_id"],
            e["coupon_code"],
            e["person_id"],
        )
        for e in events
    ]
    assert got == expected
    assert {(e["appid"], e["channel"], e["origin"]) for e in events} == {(kit.OA1, "oa", "callback")}
    assert {r[0] for r in await bot.rows("SELECT status FROM raw_event")} == {"done"}


async def test_safe_mode_account_by_appid(bot: Bot) -> None:
    t = int(time.time())
    for impl, openid in (("wechatpy", "oSafe1"), ("ours", "oSafe2")):
        signed = kit.oa_safe_post(kit.oa_event("subscribe", openid, t), impl=impl)
        assert await bot.post(f"/wechat/callback/{kit.OA2}", signed) == (200, "success")
    await bot.settle()
    events = await _events(bot)
    assert {(e["type"], e["appid"], e["openid"]) for e in events} == {
        ("follow", kit.OA2, "oSafe1"),
        ("follow", kit.OA2, "oSafe2"),
    }


async def test_wecom_contact_events_become_facts_with_unionid(bot: Bot) -> None:
    bot.sim.add_staff("guide01")
    bot.sim.add_external_contact("wmCarol", unionid="uCarol", follow_userid="guide01", state="store_042")
    t = int(time.time()) - 50
    posts = [
        kit.wecom_contact(
            "add_external_contact", "guide01", "wmCarol", t, corp_id=bot.corp, State="store_042", WelcomeCode="WC1"
        ),
        kit.wecom_contact("add_half_external_contact", "guide02", "wmCarol", t + 1, corp_id=bot.corp),
        kit.wecom_contact("edit_external_contact", "guide01", "wmCarol", t + 2, corp_id=bot.corp),
        kit.wecom_contact(
            "del_external_contact", "guide01", "wmCarol", t + 3, corp_id=bot.corp, Source="DELETE_BY_TRANSFER"
        ),
        kit.wecom_contact("del_follow_user", "guide02", "wmCarol", t + 4, corp_id=bot.corp),
    ]
    for xml in posts:
        assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()
    # the same person on the official account (a card event carrying the unionid)
    card = kit.oa_event("user_get_card", "oCarol", t + 5, CardId="pC", UserCardCode="777", UnionId="uCarol")
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(card)))[0] == 200
    await bot.settle()
    carol = await _person_of(bot, "external_userid", "wmCarol")
    assert carol and carol == await _person_of(bot, "unionid", "uCarol") == await _person_of(
        bot, "openid", f"{kit.OA1}/oCarol"
    )
    got = [
        (e["type"], e["occurred_at"], e["external_userid"], e["guide_id"], e["qr_state"], e["unionid"], e["channel"])
        for e in await _events(bot)
        if e["channel"] == "wecom"
    ]
    assert got == [
        ("add_contact", local(t), "wmCarol", "guide01", "store_042", "uCarol", "wecom"),
        ("add_contact", local(t + 1), "wmCarol", "guide02", None, "uCarol", "wecom"),
        ("del_contact", local(t + 3), "wmCarol", "guide01", None, None, "wecom"),
        ("del_contact", local(t + 4), "wmCarol", "guide02", None, None, "wecom"),
    ]
    assert {r[0] for r in await bot.rows("SELECT status FROM raw_event")} == {"done"}
    assert len(bot.sim.calls("/cgi-bin/externalcontact/get")) == 3  # two adds and the edit


async def test_contact_recorded_when_unionid_lookup_fails(bot: Bot) -> None:
    bot.sim.add_staff("guide01")  # wmStranger is unknown to WeCom: externalcontact/get fails
    t = int(time.time())
    xml = kit.wecom_contact("add_external_contact", "guide01", "wmStranger", t, corp_id=bot.corp, State="s9")
    assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()
    events = await _events(bot)
    assert [(e["type"], e["external_userid"], e["unionid"], e["qr_state"]) for e in events] == [
        ("add_contact", "wmStranger", None, "s9")
    ]
    assert events[0]["person_id"] == await _person_of(bot, "external_userid", "wmStranger") is not None


async def test_staff_text_is_recorded_as_command_without_fact(bot: Bot) -> None:
    xml = kit.wecom_text("marketer01", "1234567", "本周新客有多少", int(time.time()), corp_id=bot.corp)
    assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()
    assert await bot.rows("SELECT status, channel FROM raw_event") == [("done", "wecom")]
    assert await bot.count("event") == 0
    assert bot.sim.app_messages == []  # nothing answered: the command language is a later issue


async def test_live_fact_already_imported_stays_one_row(bot: Bot) -> None:
    from profile_store.facts import fact_key

    t = int(time.time()) - 10
    occurred = local(t)
    key = fact_key("follow", occurred, appid=kit.OA1, openid="oDan", event_id="E1")
    async with bot.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO event (event_id, fact_key, type, occurred_at, channel, appid, openid, origin)"
                " VALUES ('E1', :k, 'follow', :at, 'oa', :a, 'oDan', 'import')"
            ),
            {"k": key, "at": occurred, "a": kit.OA1},
        )
    xml = kit.oa_event("subscribe", "oDan", t)
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(xml)))[0] == 200
    await bot.settle()
    rows = await bot.rows("SELECT event_id, origin FROM event")
    assert rows == [("E1", "import")]
    person = await _person_of(bot, "openid", f"{kit.OA1}/oDan")
    assert person and (await bot.rows("SELECT person_id FROM event"))[0][0] == person


async def test_one_failing_callback_does_not_sink_its_batch(db: Database, db_url: str, sim: TencentSimulator) -> None:
    from bot.app import default_routers
    from bot.callback_xml import SubscribeEvent
    from bot.dispatcher import Router
    from profile_store.identity import IdentityGraph
    from profile_store.pii import PiiVault
    from tests.conftest import TEST_SECRET

    picky = Router()

    @picky.event(SubscribeEvent)
    async def refuse_bad(event: SubscribeEvent) -> None:
        if event.openid == "oBad":
            raise ValueError("bad subscriber")

    settings = _settings(db_url, sim)
    graph = IdentityGraph(PiiVault(TEST_SECRET))
    dispatcher = Dispatcher(db, [*default_routers(), picky], {"settings": settings, "graph": graph})
    t = 1_700_000_000
    ids = await raw_events.record_once(
        db,
        [
            raw_events.NewRawEvent(
                f"k{o}", "wechat", kit.OA1, kit.oa_event("subscribe", o, t), datetime.now(SHANGHAI)
            )
            for o in ("oGood1", "oBad", "oGood2")
        ],
    )
    async with db.read() as session:
        raws = await raw_events.get_many(session, list(ids.values()))
    outcomes = await dispatcher.process_batch(raws)
    assert {key: outcomes[raw_id] for key, raw_id in ids.items()} == {
        "koGood1": "done",
        "koBad": "failed",
        "koGood2": "done",
    }
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT openid, person_id FROM event ORDER BY openid"))).all()
        statuses: dict[str, str] = dict((await session.execute(text("SELECT dedupe_key, status FROM raw_event"))).all())
    assert [r[0] for r in rows] == ["oGood1", "oGood2"] and all(r[1] for r in rows)  # bad one rolled back alone
    assert statuses == {"koGood1": "done", "koBad": "pending", "koGood2": "done"}


async def test_two_workers_each_claim_a_batch_of_their_own(db: Database, db_url: str, sim: TencentSimulator) -> None:
    """PostgreSQL workers claim before they prefetch: while one worker waits for WeCom's
    lookups, a second takes the next callbacks instead of the same ones (which it would only find
    taken after prefetching them all). Every callback is processed once, by one of them."""
    if not db.is_postgres:
        pytest.skip("claims by row lock are PostgreSQL's (on SQLite one write lock serialises workers)")
    from bot.app import default_routers
    from bot.callback_xml import ChangeExternalContact
    from bot.dispatcher import Router
    from profile_store.identity import IdentityGraph
    from profile_store.pii import PiiVault
    from tests.conftest import TEST_SECRET

    lookups_open = asyncio.Event()
    release = asyncio.Event()
    slow = Router()

    @slow.prefetch(ChangeExternalContact)
    async def slow_lookup(event: ChangeExternalContact) -> dict[str, Any]:
        lookups_open.set()
        await release.wait()  # WeCom is slow today: the first worker's claim stays open meanwhile
        return {}

    settings = _settings(db_url, sim)
    graph = IdentityGraph(PiiVault(TEST_SECRET))
    services = {"settings": settings, "graph": graph}
    first, second = (Dispatcher(db, [*default_routers(), slow], services) for _ in range(2))
    t = 1_700_000_000
    ids = await raw_events.record_once(
        db,
        [
            raw_events.NewRawEvent(
                f"k{i}", "wecom", sim.corp_id,
                kit.wecom_contact("add_external_contact", "guide1", f"wmclaim{i:02d}", t + i, corp_id=sim.corp_id),
                datetime.now(SHANGHAI),
            )
            for i in range(10)
        ],
    )
    first_batch = asyncio.create_task(first.process_fresh(4))
    await lookups_open.wait()
    second_batch = asyncio.create_task(second.process_fresh(4))
    await asyncio.sleep(0.2)  # the second claims and prefetches while the first's claim is open
    release.set()
    a, b = await first_batch, await second_batch
    assert len(a) == len(b) == 4 and not a.keys() & b.keys(), (a, b)
    assert set(a.values()) == set(b.values()) == {"done"}
    order = sorted(ids.values())
    assert sorted(a) == order[:4] and sorted(b) == order[4:8]  # oldest first, each its own
    async with db.read() as session:
        statuses = dict((await session.execute(text("SELECT status, COUNT(*) FROM raw_event GROUP BY status"))).all())
        facts = (await session.execute(text("SELECT COUNT(*) FROM event WHERE type = 'add_contact'"))).scalar_one()
    assert statuses == {"done": 8, "pending": 2} and facts == 8
