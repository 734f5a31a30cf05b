"""A campaign's WeChat card as a claim link, end to end: the bot (create_app, its own campaign
sender and `/c/{token}`) against the Tencent simulator, on SQLite and PostgreSQL.

WeCom mass sends carry the link as a link attachment, OA template messages as their `url`, SMS in
the text; OA customer-service messages keep the card itself. Tapping the link asks WeChat for the
card's landing page (the account that owns the card) and redirects there."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot import texts
from bot.app import CAMPAIGNS, METRICS, create_app
from bot.claim_links import ClaimLinks
from bot.simulator.server import TencentSimulator
from profile_store.db import Database
from profile_store.pii import PiiVault
from tests import callback_kit as kit
from tests.conftest import TEST_SECRET
from tests.test_campaign_dispatch import Shop

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PUBLIC_URL = "https://crm.example.com"
CARD = "pCardOA2cash30"  # a card of the second official account: the first answers 40073 for it
LANDING = "/card/landingpage/create"
TEMPLATE = "TPL_claim"


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.add_official_account(kit.OA1, "oa1secret")
        simulator.add_official_account(kit.OA2, "oa2secret")
        simulator.oa.add_card(kit.OA2, CARD, "30元无门槛券")
        yield simulator


@pytest.fixture
async def bot(db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Any) -> Any:
    settings = kit.make_settings(
        db_url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id, api_base=sim.base_url,
        QIANMIAN_PUBLIC_URL=PUBLIC_URL, QIANMIAN_MEDIA_DIR=str(tmp_path / "media"), QIANMIAN_QUIET_HOURS="off",
        QIANMIAN_CAMPAIGN_OA_TEMPLATE_ID=TEMPLATE, QIANMIAN_SMS_BASE=sim.base_url, QIANMIAN_API_MAX_RETRIES=0,
        QIANMIAN_CAMPAIGN_INTERVAL=3600,
    )
    app = create_app(settings, db=db, sweep_interval=3600)
    return await aiohttp_client(app)


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/c/"), url
    return url.removeprefix(PUBLIC_URL)


async def test_claim_links_in_every_channel_that_cannot_carry_the_card(
    db: Database, sim: TencentSimulator, bot: Any
) -> None:
    shop = Shop(db, PiiVault(TEST_SECRET), sim)
    cid = await shop.campaign("领券链接", [
        {"name": "价格", "content": "送您30元无门槛券", "coupon": {"card_id": CARD}},
        {"name": "品质", "content": "新品到店", "coupon": None},
    ])
    await shop.persons([
        {"person": "p1", "external": "wm1", "guide": "guide01"},
        {"person": "p2", "external": "wm2", "guide": "guide01"},
        {"person": "p3", "openid": f"{kit.OA1}/o3"},
        {"person": "p4", "phone": "13800000004"},
        {"person": "p5", "phone": "13800000005"},
        {"person": "p6", "openid": f"{kit.OA1}/o6"},
    ])
    due = datetime.now(UTC) - timedelta(minutes=1)
    await shop.targets(cid, [
        ("p1", "wecom", "guide01", "价格"), ("p2", "wecom", "guide01", "品质"), ("p3", "oa_template", "", "价格"),
        ("p4", "sms", "", "价格"), ("p5", "sms", "", "品质"), ("p6", "oa_custom", "", "价格"),
    ], due=due)
    await bot.app[CAMPAIGNS].drain()
    assert await shop.outcomes(cid) == {"sent": 6}

    # WeCom: the coupon variant's batch carries the link; the other none
    sends = {m.body["text"]["content"]: m.body for m in sim.wecom.group_msgs.values()}
    [attachment] = sends["送您30元无门槛券"]["attachments"]
    assert attachment["msgtype"] == "link" and attachment["link"]["title"] == texts.CLAIM_LINK_TITLE
    assert "attachments" not in sends["新品到店"]
    links = {attachment["link"]["url"]}
    # OA template message: tapping it opens the link
    [template] = sim.oa.account(kit.OA1).template_messages
    assert template["touser"] == "o3" and template["template_id"] == TEMPLATE
    links.add(template["url"])
    # SMS: the link at the end of the coupon variant's text only
    sms = {m.phone: m.text for m in sim.sms.messages}
    suffix = texts.CLAIM_SMS_SUFFIX.format(url="")
    assert sms["13800000004"].startswith("送您30元无门槛券" + suffix)
    links.add(sms["13800000004"].removeprefix("送您30元无门槛券" + suffix))
    assert sms["13800000005"] == "新品到店"
    # customer service: the card itself, then the words, no link
    custom = sim.oa.account(kit.OA1).custom_messages
    assert [(m["msgtype"], m.get("wxcard")) for m in custom] == [("wxcard", {"card_id": CARD}), ("text", None)]
    assert custom[1]["text"]["content"] == "送您30元无门槛券"
    # every channel's link names the same campaign, variant and card, valid 7 days from the send
    own = ClaimLinks(TEST_SECRET, PUBLIC_URL)
    read = [own.read(url.rsplit("/", 1)[1]) for url in links]
    assert {(r.campaign_id, r.variant, r.card_id) for r in read} == {(cid, "价格", CARD)}
    assert all(abs(r.expires_at - (time.time() + 7 * 86400)) < 60 for r in read)
    link = sorted(links)[0]

    tapped = await bot.get(path_of(link), allow_redirects=False)
    assert tapped.status == 302
    landing = tapped.headers["Location"]
    # the first account does not own the card (40073), the second makes its landing page
    assert [c.answer.get("errcode") if c.answer else None for c in sim.calls(LANDING)] == [40073, 0]
    [page] = sim.oa.landing_pages.values()
    assert (page["app_id"], page["card_ids"]) == (kit.OA2, [CARD])
    async with aiohttp.ClientSession() as http, http.get(landing) as shown:
        assert shown.status == 200 and CARD in await shown.text()
    again = await bot.get(path_of(link), allow_redirects=False)
    assert (again.status, again.headers["Location"]) == (302, landing)
    assert len(sim.calls(LANDING)) == 2  # the landing page is made once


async def test_refused_links(db: Database, sim: TencentSimulator, bot: Any) -> None:
    own = ClaimLinks(TEST_SECRET, PUBLIC_URL)
    now = time.time()

    async def tap(url: str) -> tuple[int, str]:
        answer = await bot.get(path_of(url), allow_redirects=False)
        return answer.status, await answer.text()

    fresh = own.url(7, "价格", CARD, sent_from=now)
    token = fresh.rsplit("/", 1)[1]
    forged = f"{PUBLIC_URL}/c/{token[:-2]}{'A' if token[-2] != 'A' else 'B'}{token[-1]}"
    status, body = await tap(forged)
    assert status == 404 and texts.CLAIM_PAGE_FORGED in body
    # valid for 7 days from the send: just before the end, and at the end
    assert (await tap(own.url(7, "价格", CARD, sent_from=now - 7 * 86400 + 5)))[0] == 302
    status, body = await tap(own.url(7, "价格", CARD, sent_from=now - 7 * 86400))
    assert status == 410 and texts.CLAIM_PAGE_EXPIRED in body
    # a card no configured account owns
    status, body = await tap(own.url(7, "价格", "pNoSuchCard", sent_from=now))
    assert status == 404 and texts.CLAIM_PAGE_NO_CARD in body
    # WeChat rate-limits the landing page: try again later, then it works (nothing remembered)
    sim.oa.add_card(kit.OA1, "pCardOA1", "满200减30")
    sim.inject(LANDING, 45009)
    other = own.url(7, "价格", "pCardOA1", sent_from=now)
    status, body = await tap(other)
    assert status == 503 and texts.CLAIM_PAGE_BUSY in body
    status, _ = await tap(other)
    assert status == 302
    # every tap counted by its answer, for the operator's /metrics
    registry = bot.app[METRICS].registry
    taps = {o: registry.get_sample_value("qianmian_claim_link_taps_total", {"outcome": o})
            for o in ("forged", "expired", "no_card", "busy", "redirected", "cancelled")}
    assert taps == {"forged": 1, "expired": 1, "no_card": 1, "busy": 1, "redirected": 2, "cancelled": None}


async def test_simulator_landing_page_errors(sim: TencentSimulator) -> None:
    from bot.tencent.errors import TencentAPIError
    from bot.tencent.wechat import OfficialAccountClient

    async with aiohttp.ClientSession() as http:
        db = Database("sqlite:///:memory:")
        await db.migrate()
        client = OfficialAccountClient(http, db, base_url=sim.base_url, app_id=kit.OA2, secret="oa2secret",
                                       max_retries=0)
        made = await client.create_card_landing_page([CARD], title="领券")
        assert made["errcode"] == 0 and made["url"] and made["page_id"] == 1
        with pytest.raises(TencentAPIError) as bad_scene:
            await client.create_card_landing_page([CARD], title="领券", scene="SCENE_NOWHERE")
        assert bad_scene.value.errcode == 47001
        with pytest.raises(TencentAPIError) as not_ours:
            await client.create_card_landing_page([CARD, "pOther"], title="领券")
        assert not_ours.value.errcode == 40073
        with pytest.raises(TencentAPIError) as no_cards:
            await client.create_card_landing_page([], title="领券")
        assert no_cards.value.errcode == 47001
        await db.dispose()


async def test_a_message_sent_late_carries_a_link_that_works(db: Database, sim: TencentSimulator, bot: Any) -> None:
    # a campaign paused for ten days and resumed: its link counts from the send, not the due time
    shop = Shop(db, PiiVault(TEST_SECRET), sim)
    cid = await shop.campaign("迟发", [{"name": "A", "content": "送您30元无门槛券", "coupon": {"card_id": CARD}}])
    await shop.persons([{"person": "p7", "phone": "13800000007"}])
    await shop.targets(cid, [("p7", "sms", "", "A")], due=datetime.now(UTC) - timedelta(days=10))
    await bot.app[CAMPAIGNS].drain()
    [message] = sim.sms.messages
    link = message.text.rsplit(texts.CLAIM_SMS_SUFFIX.format(url=""), 1)[1]
    assert (await bot.get(path_of(link), allow_redirects=False)).status == 302


async def test_a_cancelled_campaign_stops_its_links_a_paused_one_does_not(
    db: Database, sim: TencentSimulator, bot: Any
) -> None:
    from profile_store.campaigns import change_status

    shop = Shop(db, PiiVault(TEST_SECRET), sim)
    cid = await shop.campaign("停券", [{"name": "A", "content": "送您30元无门槛券", "coupon": {"card_id": CARD}}])
    link = ClaimLinks(TEST_SECRET, PUBLIC_URL).url(cid, "A", CARD, sent_from=time.time())

    async def tap() -> tuple[int, str]:
        answer = await bot.get(path_of(link), allow_redirects=False)
        return answer.status, await answer.text()

    async def change(action: str) -> None:
        async with db.transaction() as session:
            assert await change_status(session, cid, action) is not None

    assert (await tap())[0] == 302
    await change("pause")  # its messages were sent: the coupons in customers' hands stay good
    assert (await tap())[0] == 302
    await change("cancel")
    status, body = await tap()
    assert status == 410 and texts.CLAIM_PAGE_CANCELLED in body
    assert len(sim.calls(LANDING)) == 2  # a cancelled link never reaches WeChat (40073, then the page)
