"""A customer scans a store QR; the guide gets the portrait card, the customer a welcome — through
the real app, both databases, and the Tencent simulator, with callbacks encrypted by wechatpy."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import texts
from bot.app import LINKS, OUTBOX, create_app
from bot.welcome import TemplateError, check_text
from profile_store import outbox
from profile_store.welcome import Template, save_template
from tests import callback_kit as kit
from tests.tag_kit import Retailer, person_of
from tests.test_callbacks import Bot, _settings, bot, sim  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PHONE = "13912345678"


@pytest.fixture
async def impatient(db: Any, db_url: str, sim: Any, aiohttp_client: Any) -> Bot:  # noqa: F811
    """A bot whose Tencent client gives up fast: the outbox's own retry is what is tested."""
    settings = _settings(db_url, sim, QIANMIAN_API_TIMEOUT="0.5", QIANMIAN_API_MAX_RETRIES="0")
    app = create_app(settings, db=db, sweep_interval=3600)
    return Bot(await aiohttp_client(app), app, settings, db, sim)


async def delivered(bot: Bot, within: float = 15.0) -> dict[str, int]:  # noqa: F811
    """Wait until the outbox has nothing pending that is due now; returns the counts."""
    await bot.settle()
    deadline = time.monotonic() + within
    while True:
        async with bot.db.transaction() as session:
            counts = await outbox.counts(session)
            due = await session.execute(
                text("SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts = 0")
            )
            fresh = int(due.scalar_one())
        if not fresh or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.05)


def cards(bot: Bot, userid: str | None = None) -> list[dict[str, Any]]:  # noqa: F811
    return [
        m.body for m in bot.sim.wecom.app_messages
        if m.msgtype == "template_card" and (userid is None or userid in m.touser)
    ]


def everything_sent(bot: Bot) -> str:  # noqa: F811
    return json.dumps(
        [m.body for m in bot.sim.wecom.app_messages] + bot.sim.wecom.welcome_messages, ensure_ascii=False
    )


def card_rows(card: dict[str, Any]) -> dict[str, str]:
    return {row["keyname"]: row["value"] for row in card["template_card"]["horizontal_content_list"]}


async def shop_with_loyal_member(bot: Bot, tmp_path: Path) -> str:  # noqa: F811
    """A V3 member who bought dresses often this year (lifecycle 忠诚), with a phone on file."""
    shop = Retailer()
    shop.guide("guide01", "王芳")
    shop.guide("guide02", "李娜")
    shop.member("M1", unionid="uLoyal", level="V3", phone=PHONE, name="赵敏")
    today = date.today()
    for days in (20, 60, 100, 150):
        paid = (today - timedelta(days=days)).isoformat()
        shop.order("M1", f"{paid} 15:00:00", "800", items=[("SKU0", 2, "400")])
    await shop.load(bot.db, tmp_path)
    for userid in ("guide01", "guide02"):
        bot.sim.add_staff(userid)
    from profile_store.tagging.refresh import refresh_all

    await refresh_all(bot.db, bot.settings.today())
    return await person_of(bot.db, "member_id:M1")


async def scan(bot: Bot, external: str, guide: str, *, unionid: str | None, state: str = "store_S001",  # noqa: F811
               impl: str = "wechatpy") -> tuple[int, str, kit.Signed]:
    bot.sim.add_external_contact(external, unionid=unionid, follow_userid=guide, state=state)
    code = bot.sim.issue_welcome_code(guide, external)
    xml = kit.wecom_contact(
        "add_external_contact", guide, external, int(time.time()), corp_id=bot.corp, State=state, WelcomeCode=code
    )
    signed = kit.wecom_post(xml, corp_id=bot.corp, impl=impl)
    status, body = await bot.post("/wecom/callback", signed)
    return status, body, signed


async def test_known_member_scans_and_the_right_guide_gets_their_portrait(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    person = await shop_with_loyal_member(bot, tmp_path)
    status, body, _ = await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    assert (status, body) == (200, "success")
    counts = await delivered(bot)
    assert counts == {"sent": 2}, counts

    [card] = cards(bot)
    assert card["touser"] == "guide02" and cards(bot, "guide01") == []
    rows = card_rows(card)
    assert rows[texts.CARD_KEYS["lifecycle"]] == "忠诚"
    assert rows[texts.CARD_KEYS["level"]] == "V3"
    assert "连衣裙" in rows[texts.CARD_KEYS["preferences"]]
    assert rows[texts.CARD_KEYS["phone"]] == "139****5678"
    assert "上海一店" in card["template_card"]["main_title"]["desc"]
    assert "赵*" in card["template_card"]["main_title"]["title"]
    # The link is ours, bound to this guide and this person.
    url = card["template_card"]["card_action"]["url"]
    link = bot.app[LINKS].read(url.rsplit("/p/", 1)[1])
    assert (link.person_id, link.guide_id) == (person, "guide02")
    # The welcome went out with the contact's code, in the loyal customer's words.
    [welcome] = bot.sim.wecom.welcome_messages
    assert welcome["external_userid"] == "wmLoyal"
    assert welcome["text"]["content"] == texts.WELCOME_DEFAULTS["loyal"].format(store="上海一店", guide="李娜")
    # No raw phone, no full name anywhere in what Tencent received.
    sent = everything_sent(bot)
    assert PHONE not in sent and "赵敏" not in sent


async def test_unknown_new_contact_gets_a_new_customer_card_and_the_new_welcome(
    bot: Bot, tmp_path: Path  # noqa: F811
) -> None:
    await shop_with_loyal_member(bot, tmp_path)
    status, _, _ = await scan(bot, "wmStranger", "guide01", unionid=None, impl="ours")
    assert status == 200
    assert await delivered(bot) == {"sent": 2}
    [card] = cards(bot, "guide01")
    assert card["template_card"]["main_title"]["title"] == texts.CARD_TITLE_NEW_SCANNED
    assert card_rows(card)[texts.CARD_KEYS["lifecycle"]] == texts.CARD_NEW_CUSTOMER
    [welcome] = bot.sim.wecom.welcome_messages
    assert welcome["text"]["content"] == texts.WELCOME_DEFAULTS["new"].format(store="上海一店", guide="王芳")


async def test_a_duplicated_callback_pushes_once(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    _, _, signed = await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    for _ in range(3):  # WeCom retries the very same request
        assert await bot.post("/wecom/callback", signed) == (200, "success")
    assert await delivered(bot) == {"sent": 2}
    assert len(cards(bot)) == 1 and len(bot.sim.wecom.welcome_messages) == 1
    assert len(bot.sim.calls("/cgi-bin/message/send")) == 1


async def test_tencent_errors_delay_the_push_but_it_arrives_exactly_once(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    bot.sim.inject("/cgi-bin/message/send", -1, times=1)  # the client retries system-busy itself
    bot.sim.expire_tokens()  # 42001 on the next call: refresh and retry once
    bot.sim.inject("/cgi-bin/externalcontact/send_welcome_msg", 41096, times=2)  # another app busy: retry
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    assert await delivered(bot, within=20) == {"sent": 2}
    assert len(cards(bot)) == 1 and len(bot.sim.wecom.welcome_messages) == 1


async def test_rate_limited_beyond_the_clients_patience_the_outbox_retries(impatient: Bot, tmp_path: Path) -> None:
    bot = impatient  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    sender = bot.app[OUTBOX]
    await sender.stop()  # drive it by hand: the retry must come from the row, not from luck
    bot.sim.inject("/cgi-bin/message/send", 45009, times=50)
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    await bot.settle()
    await sender.run_once()
    async with bot.db.transaction() as session:
        [row] = await outbox.items(session, kind="portrait")
    assert row["status"] == "pending" and row["attempts"] == 1 and "45009" in row["last_error"]
    assert cards(bot) == []
    bot.sim.clear_faults()
    async with bot.db.transaction() as session:  # as if the backoff had passed
        await session.execute(text("UPDATE outbox SET next_attempt_at = created_at"))
    await sender.drain()
    assert len(cards(bot)) == 1
    async with bot.db.transaction() as session:
        assert (await outbox.items(session, kind="portrait"))[0]["status"] == "sent"


async def test_a_send_that_timed_out_but_arrived_is_not_doubled(impatient: Bot, tmp_path: Path) -> None:
    """The answer is lost, Tencent did send: the retry carries the same card and WeCom's duplicate
    check drops it, so the guide sees it once."""
    bot = impatient  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    sender = bot.app[OUTBOX]
    await sender.stop()
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    await bot.settle()
    bot.sim.delay("/cgi-bin/message/send", bot.settings.api_timeout_seconds + 0.5, times=1)
    await sender.run_once()  # times out (the simulator still delivers after the delay)
    await asyncio.sleep(1.0)
    bot.sim.clear_faults()
    async with bot.db.transaction() as session:
        await session.execute(text("UPDATE outbox SET next_attempt_at = created_at"))
    await sender.drain()
    assert len(bot.sim.calls("/cgi-bin/message/send")) == 2  # sent twice, shown once
    assert len(cards(bot)) == 1
    async with bot.db.transaction() as session:
        assert (await outbox.items(session, kind="portrait"))[0]["status"] == "sent"


async def test_welcome_already_sent_is_final_and_a_late_one_expires(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    bot.sim.inject("/cgi-bin/externalcontact/send_welcome_msg", 41051, times=1)
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    await delivered(bot)
    assert len(bot.sim.calls("/cgi-bin/externalcontact/send_welcome_msg")) == 1  # never retried
    async with bot.db.transaction() as session:
        [welcome] = await outbox.items(session, kind="welcome")
    assert welcome["status"] == "sent" and "41051" in welcome["last_error"]

    # A callback processed after its code's 20 s (e.g. after a crash): the welcome is not sent.
    bot.sim.add_external_contact("wmLate", unionid=None, follow_userid="guide01")
    xml = kit.wecom_contact("add_external_contact", "guide01", "wmLate", int(time.time()) - 60,
                            corp_id=bot.corp, WelcomeCode="wcLATE")
    assert (await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)))[0] == 200
    await delivered(bot)
    async with bot.db.transaction() as session:
        late = [w for w in await outbox.items(session, kind="welcome") if w["payload"]["welcome_code"] == "wcLATE"]
    assert [w["status"] for w in late] == ["expired"]
    assert len(bot.sim.calls("/cgi-bin/externalcontact/send_welcome_msg")) == 1


async def test_a_restart_resumes_pending_pushes(
    db: Any, db_url: str, sim: Any, aiohttp_client: Any, tmp_path: Path  # noqa: F811
) -> None:
    settings = _settings(db_url, sim)
    first = Bot(await aiohttp_client(create_app(settings, db=db, sweep_interval=3600)), None, settings, db, sim)
    first.app = first.client.server.app
    await shop_with_loyal_member(first, tmp_path)
    await first.app[OUTBOX].stop()  # the process dies before sending
    await scan(first, "wmLoyal", "guide02", unionid="uLoyal")
    await first.settle()
    assert cards(first) == []
    await first.client.close()

    second = Bot(await aiohttp_client(create_app(settings, db=db, sweep_interval=3600)), None, settings, db, sim)
    second.app = second.client.server.app
    assert await delivered(second) == {"sent": 2}
    assert len(cards(second)) == 1


async def test_oa_follow_through_a_store_qr_pushes_to_every_guide_of_the_store(
    bot: Bot, tmp_path: Path  # noqa: F811
) -> None:
    await shop_with_loyal_member(bot, tmp_path)
    xml = kit.oa_event("subscribe", "oFollower1", int(time.time()), EventKey="qrscene_store_S001", Ticket="T1")
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(xml)))[0] == 200
    assert await delivered(bot) == {"sent": 2}
    assert sorted(c["touser"] for c in cards(bot)) == ["guide01", "guide02"]
    guides = {bot.app[LINKS].read(c["template_card"]["card_action"]["url"].rsplit("/p/", 1)[1]).guide_id
              for c in cards(bot)}
    assert guides == {"guide01", "guide02"}  # each link bound to its own guide
    # A follow from elsewhere (no store scene) calls nobody.
    xml = kit.oa_event("subscribe", "oFollower2", int(time.time()))
    assert (await bot.post("/wechat/callback", kit.oa_plain_post(xml, nonce="n2")))[0] == 200
    await delivered(bot)
    assert len(cards(bot)) == 2


async def test_a_marketers_template_replaces_the_built_in_welcome(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    await shop_with_loyal_member(bot, tmp_path)
    async with bot.db.transaction() as session:
        await save_template(session, Template("loyal", "{guide}想您了！秋冬新款已到{store}。",
                                              link_title="新品速览", link_url="https://shop.example/new"))
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    await delivered(bot)
    [welcome] = bot.sim.wecom.welcome_messages
    assert welcome["text"]["content"] == "李娜想您了！秋冬新款已到上海一店。"
    assert welcome["attachments"] == [
        {"msgtype": "link", "link": {"title": "新品速览", "url": "https://shop.example/new"}}
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   ", "empty"), ("你好{name}", "placeholder"), ("你好{guide", "format"),
     ("好" * 1334, "too long")],
)
def test_bad_welcome_templates_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_text(text)
    assert caught.value.reason == reason and caught.value.message()


def test_welcome_template_at_the_byte_limit_is_accepted() -> None:
    check_text("好" * 1333)  # 3,999 bytes in UTF-8
    check_text("{guide}{store}")


async def test_the_push_reads_the_stored_profile_which_equals_a_fresh_computation(
    bot: Bot, tmp_path: Path  # noqa: F811
) -> None:
    from bot.app import GRAPH
    from profile_store.portrait import portrait

    member = await shop_with_loyal_member(bot, tmp_path)
    await scan(bot, "wmLoyal", "guide02", unionid="uLoyal")
    await scan(bot, "wmNobody", "guide01", unionid=None)
    await delivered(bot)
    stranger = await person_of(bot.db, "external_userid:wmNobody")
    graph, today = bot.app[GRAPH], bot.settings.today()
    async with bot.db.read() as session:
        for person in (member, stranger):
            kept = await portrait(session, graph, person, today, stored=True)
            fresh = await portrait(session, graph, person, today)
            assert kept is not None and fresh is not None
            assert (kept.tags, kept.metrics) == (fresh.tags, fresh.metrics), person
        # A stored row of another day is not used: the portrait is computed for the day asked.
        earlier = today - timedelta(days=400)
        old = await portrait(session, graph, member, earlier, stored=True)
        assert old is not None and old.metrics["orders_total"] == 0
