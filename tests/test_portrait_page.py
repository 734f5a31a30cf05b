"""The portrait page `GET /p/{token}` served by the real app on both back-ends: what it shows
(masked, chart amounts checked against the CSV rows), every refusal with its status, WeCom OAuth2
through the simulator, the audit row of every view — and the access rules at their edges."""

from __future__ import annotations

import html
import re
import time
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import DateTime, bindparam, text

from bot.app import LINKS, create_app
from bot.portrait_links import PortraitLinks
from bot.simulator.server import TencentSimulator
from profile_store.access import can_view
from profile_store.db import Database
from profile_store.tagging.refresh import refresh_all
from tests import callback_kit as kit
from tests.conftest import TEST_SECRET
from tests.portrait_kit import NAME, OTHER, PHONE, expected_spend, page_shop, today
from tests.tag_kit import Retailer, person_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PUBLIC_URL = "https://crm.example.cn"


@dataclass
class Page:
    client: TestClient
    app: Any
    db: Database
    person: str
    shop: Retailer

    def issue(self, guide: str) -> str:
        token, _ = self.app[LINKS].issue(self.person, guide)
        return str(token)

    async def get(self, token_or_path: str) -> tuple[int, str]:
        path = token_or_path if token_or_path.startswith("/") else f"/p/{token_or_path}"
        resp = await self.client.get(path, allow_redirects=False)
        return resp.status, await resp.text()

    async def views(self) -> list[Any]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                text("SELECT outcome, guide_id, viewer, person_id, link_id, ip FROM portrait_view ORDER BY id")
            )
            return list(rows.all())


@pytest.fixture
async def sim() -> Any:
    async with TencentSimulator() as simulator:
        yield simulator


async def _page(
    db: Database, db_url: str, tmp_path: Path, sim: TencentSimulator, aiohttp_client: Any, **extra: Any
) -> Page:
    shop = page_shop(today())
    await shop.load(db, tmp_path / "shop")
    settings = kit.make_settings(
        db_url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id, api_base=sim.base_url,
        QIANMIAN_PUBLIC_URL=PUBLIC_URL, **extra,
    )
    app = create_app(settings, db=db, sweep_interval=3600)
    client = await aiohttp_client(app)
    return Page(client, app, db, await person_of(db, "member_id:M1"), shop)


def _bars(page: str) -> dict[str, tuple[int, str]]:
    """category → (fen attribute, amount written on the bar)."""
    found = re.findall(
        r'<g class="bar" data-category="([^"]+)" data-fen="(\d+)">.*?<text class="amount"[^>]*>([^<]+)</text>',
        page, flags=re.S,
    )
    return {html.unescape(c): (int(f), html.unescape(a)) for c, f, a in found}


def _forge(token: str) -> str:
    """The same token with one character changed (in the middle: every bit of it counts)."""
    i = len(token) // 2
    while not token[i].isalnum():
        i += 1
    return token[:i] + ("B" if token[i] == "A" else "A") + token[i + 1 :]


# ============================================================================ the page


async def test_valid_link_shows_the_masked_portrait_with_chart_timeline_coupons_and_tips(
    db: Database, db_url: str, tmp_path: Path, sim: TencentSimulator, aiohttp_client: Any
) -> None:
    page = await _page(db, db_url, tmp_path, sim, aiohttp_client)
    status, body = await page.get(page.issue("G001"))
    assert status == 200, body
    # Personal data: masked only, never in clear anywhere in the HTML.
    assert PHONE not in body and PHONE[-8:] not in body and NAME not in body
    assert "138****5678" in body and "欧***" in body
    # The portrait's tags in words: V2 with paid orders in the year → 忠诚; 外套 has the most spend.
    assert "生命周期" in body and "忠诚" in body
    assert re.search(r"<dt>偏好</dt><dd>外套", body)
    # Spending by category: the SVG's amounts are the CSV rows' sums (refund and old order excluded).
    assert '<svg class="chart" id="category-chart"' in body
    want = expected_spend(page.shop, today())
    assert want == {"外套": 59900, "连衣裙": 51830, "T恤": 9900, OTHER: 1850}
    assert _bars(body) == {c: (fen, f"{fen / 100:.2f} 元") for c, fen in want.items()}
    assert list(_bars(body)) == ["外套", "连衣裙", "T恤", OTHER]  # largest first
    # Timeline: the four paid orders, newest first, with their items; never the refunded one.
    timeline = body[body.index("最近订单") :]
    days = [(today() - timedelta(days=d)).isoformat() for d in (30, 100, 200, 400)]
    assert [timeline.index(d) for d in days] == sorted(timeline.index(d) for d in days)
    assert (today() - timedelta(days=10)).isoformat() not in timeline
    assert "P0×2、P1×1" in timeline and "617.50 元" in timeline and "小程序" in timeline
    # Unused coupon with its expiry (got 5 days ago, valid 30 days), talking points.
    assert "30元券" in body and f"{today() + timedelta(days=25)} 到期" in body
    assert "建议话术" in body and "<li>" in body
    # Nothing that would fetch from anywhere: no scripts, no external URLs.
    assert "<script" not in body and "http://" not in body.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in body
    views = await page.views()
    assert [(v.outcome, v.guide_id, v.person_id, v.ip) for v in views] == [
        ("shown", "G001", page.person, "127.0.0.1")
    ]


async def test_refusals_each_with_its_status_and_audit_row(
    db: Database, db_url: str, tmp_path: Path, sim: TencentSimulator, aiohttp_client: Any
) -> None:
    page = await _page(db, db_url, tmp_path, sim, aiohttp_client)
    good = page.issue("G001")
    status, body = await page.get(_forge(good))
    assert status == 403 and "链接无效" in body and "欧***" not in body
    status, body = await page.get("not-a-token-at-all")
    assert status == 403 and "链接无效" in body
    ttl = page.app[LINKS].ttl_seconds
    old = PortraitLinks(TEST_SECRET, PUBLIC_URL, ttl_seconds=ttl, clock=lambda: time.time() - ttl - 1)
    expired, expired_link = old.issue(page.person, "G001")
    status, body = await page.get(expired)
    assert status == 410 and "链接已过期，请在企业微信中重新打开客户画像" in body
    # G003 works in another store and never had this customer: the page checks at view time.
    status, body = await page.get(page.issue("G003"))
    assert status == 403 and "无权查看" in body and "138****" not in body
    # A signed link for an unknown userid is refused too.
    status, body = await page.get(page.issue("NOBODY"))
    assert status == 403
    views = await page.views()
    assert [v.outcome for v in views] == ["forged", "forged", "expired", "denied", "denied"]
    assert (views[2].link_id, views[2].guide_id, views[2].person_id) == (
        expired_link.link_id, "G001", page.person
    )  # an expired link is still ours: the audit says whose it was
    assert views[0].link_id == "" and {v.ip for v in views} == {"127.0.0.1"}


async def test_a_guide_who_lost_the_contact_loses_the_page(
    db: Database, db_url: str, tmp_path: Path, sim: TencentSimulator, aiohttp_client: Any
) -> None:
    page = await _page(db, db_url, tmp_path, sim, aiohttp_client)
    token = page.issue("G001")
    assert (await page.get(token))[0] == 200
    deleted_at = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) - timedelta(minutes=1)
    async with db.transaction() as session:  # the customer deleted the guide, after the link was sent
        await session.execute(
            text(
                "INSERT INTO event (event_id, fact_key, person_id, type, occurred_at, channel, guide_id, origin)"
                " VALUES ('EDEL', 'k-del', :p, 'del_contact', :at, 'wecom', 'G001', 'callback')"
            ).bindparams(bindparam("at", deleted_at, type_=DateTime())),
            {"p": page.person},
        )
    status, body = await page.get(token)
    assert status == 403 and "无权查看" in body
    assert [v.outcome for v in await page.views()] == ["shown", "denied"]


# ============================================================================ WeCom OAuth2


async def _through_wecom(page: Page, token: str) -> tuple[int, str, str]:
    """Open the link as WeCom's browser does: our 302 → the simulator's authorize → back with a
    code. Returns (status, page, the path we were sent back to)."""
    resp = await page.client.get(f"/p/{token}", allow_redirects=False)
    assert resp.status == 302
    authorize = resp.headers["Location"]
    async with aiohttp.ClientSession() as http, http.get(authorize, allow_redirects=False) as back:
        assert back.status == 302, await back.text()
        location = back.headers["Location"]
    assert location.startswith(f"{PUBLIC_URL}/p/{token}?")
    path = location[len(PUBLIC_URL) :]
    status, body = await page.get(path)
    return status, body, path


async def test_oauth_refuses_anyone_but_the_guide_the_link_was_sent_to(
    db: Database, db_url: str, tmp_path: Path, sim: TencentSimulator, aiohttp_client: Any
) -> None:
    page = await _page(
        db, db_url, tmp_path, sim, aiohttp_client, QIANMIAN_WECOM_OAUTH="true", WECOM_OAUTH_BASE=sim.base_url
    )
    token, link = page.app[LINKS].issue(page.person, "G001")
    # Without a code: straight to WeCom's authorize page, with everything WeCom needs.
    resp = await page.client.get(f"/p/{token}", allow_redirects=False)
    assert resp.status == 302
    where = urlsplit(resp.headers["Location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{sim.base_url}/connect/oauth2/authorize"
    assert where.fragment == "wechat_redirect"
    assert parse_qs(where.query) == {
        "appid": [sim.corp_id], "redirect_uri": [f"{PUBLIC_URL}/p/{token}"], "response_type": ["code"],
        "scope": ["snsapi_base"], "state": [link.link_id], "agentid": [sim.agent_id],
    }
    assert await page.views() == []  # a redirect is not a view yet

    sim.oauth_user = "G002"  # a colleague opens the forwarded link
    status, body, _ = await _through_wecom(page, token)
    assert status == 403 and "此链接只发给了导购王**" in body and "138****" not in body

    sim.oauth_user = "G001"
    status, body, path = await _through_wecom(page, token)
    assert status == 200 and "138****5678" in body

    # A reload brings the used code back: WeCom says 40029, the page asks for a fresh code once.
    resp = await page.client.get(path, allow_redirects=False)
    assert resp.status == 302
    again = parse_qs(urlsplit(resp.headers["Location"]).query)["redirect_uri"][0]
    assert again == f"{PUBLIC_URL}/p/{token}?again=1"
    status, _ = await page.get(f"/p/{token}?again=1&code=used-or-made-up&state={link.link_id}")
    assert status == 403  # and never loops

    sim.oauth_user = None
    sim.oauth.current_openid = "oOUTSIDER"  # someone outside the corp
    status, body, _ = await _through_wecom(page, token)
    assert status == 403 and "此链接只发给了导购" in body

    answers = [c.errcode for c in sim.calls("/cgi-bin/auth/getuserinfo")]
    assert answers == [0, 0, 40029, 40029, 0]
    views = await page.views()
    assert [(v.outcome, v.viewer) for v in views] == [
        ("foreign", "G002"), ("shown", "G001"), ("denied", ""), ("foreign", "openid:oOUTSIDER")
    ]
    assert {v.link_id for v in views} == {link.link_id}


async def test_simulator_codes_are_single_use_and_live_five_minutes(sim: TencentSimulator) -> None:
    sim.oauth_user = "G001"
    query = {
        "appid": sim.corp_id, "redirect_uri": "http://127.0.0.1:9/back?x=1", "response_type": "code",
        "scope": "snsapi_base", "state": "s1", "agentid": sim.agent_id,
    }
    async with aiohttp.ClientSession() as http:
        async def code() -> str:
            async with http.get(f"{sim.base_url}/connect/oauth2/authorize", params=query,
                                allow_redirects=False) as resp:
                assert resp.status == 302
                back = parse_qs(urlsplit(resp.headers["Location"]).query)
                assert back["state"] == ["s1"] and back["x"] == ["1"]
                return back["code"][0]

        async def who(value: str) -> dict[str, Any]:
            async with http.get(f"{sim.base_url}/cgi-bin/gettoken",
                                params={"corpid": sim.corp_id, "corpsecret": sim.corp_secret}) as resp:
                token = (await resp.json())["access_token"]
            async with http.get(f"{sim.base_url}/cgi-bin/auth/getuserinfo",
                                params={"access_token": token, "code": value}) as resp:
                answer: dict[str, Any] = await resp.json()
                return answer

        first = await code()
        assert (await who(first))["userid"] == "G001"
        assert (await who(first))["errcode"] == 40029  # used
        late = await code()
        sim.advance(301)
        assert (await who(late))["errcode"] == 40029  # expired
        async with http.get(f"{sim.base_url}/connect/oauth2/authorize", params={**query, "appid": "wwother"},
                            allow_redirects=False) as resp:
            assert resp.status == 400


# ============================================================================ access rules


NOW = datetime(2026, 11, 1, 12, 0, 0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


async def _access_shop(db: Database, tmp_path: Path) -> dict[str, str]:
    shop = Retailer()
    shop.rows["stores"].append({"store_id": "S002", "name": "上海二店", "city": "上海", "region": "华东"})
    for guide, store, role in (("G001", "S001", "guide"), ("G002", "S001", "guide"), ("G003", "S002", "guide"),
                               ("M001", "S001", "manager"), ("M002", "S002", "manager"),
                               ("K001", "", "marketer"), ("A001", "", "admin"), ("G009", "", "guide"),
                               ("M009", "", "manager")):
        shop.guide(guide, guide, store, role=role)
    day = timedelta(days=1)
    for member in ("HELD", "DELETED", "READDED", "SCAN_IN", "SCAN_OUT", "GUIDE_QR", "LATER", "PREF", "REG"):
        shop.member(member, register_store_id="S002" if member == "REG" else "")
    shop.event("HELD", "add_contact", _stamp(NOW - 30 * day), guide_id="G001", external_userid="wmHELD")
    shop.event("DELETED", "add_contact", _stamp(NOW - 60 * day), guide_id="G001", external_userid="wmDEL")
    shop.event("DELETED", "del_contact", _stamp(NOW - 30 * day), guide_id="G001", external_userid="wmDEL")
    shop.event("READDED", "add_contact", _stamp(NOW - 60 * day), guide_id="G001", external_userid="wmRE")
    shop.event("READDED", "del_contact", _stamp(NOW - 30 * day), guide_id="G001", external_userid="wmRE")
    shop.event("READDED", "add_contact", _stamp(NOW - 2 * day), guide_id="G001", external_userid="wmRE")
    shop.event("SCAN_IN", "scan", _stamp(NOW - timedelta(hours=23, minutes=59)), channel="oa", qr_state="store_S001")
    shop.event("SCAN_OUT", "scan", _stamp(NOW - timedelta(hours=24, minutes=1)), channel="oa", qr_state="store_S001")
    shop.event("GUIDE_QR", "follow", _stamp(NOW - timedelta(hours=1)), channel="oa", qr_state="guide_G001")
    shop.event("LATER", "scan", _stamp(NOW + timedelta(hours=1)), channel="oa", qr_state="store_S001")
    shop.order("PREF", _stamp(NOW - 10 * day), "100", items=[("SKU0", 1, "100")])  # pos at S001: 常去门店
    await shop.load(db, tmp_path / "access")
    await refresh_all(db, NOW.date())
    return {m: await person_of(db, f"member_id:{m}") for m in
            ("HELD", "DELETED", "READDED", "SCAN_IN", "SCAN_OUT", "GUIDE_QR", "LATER", "PREF", "REG")}


async def test_access_rules_at_their_edges(db: Database, tmp_path: Path) -> None:
    p = await _access_shop(db, tmp_path)
    cases = [
        # (viewer, person, allowed, reason)
        ("G001", "HELD", True, "contact"),
        ("G002", "HELD", False, "not_theirs"),  # a colleague's contact
        ("G001", "DELETED", False, "not_theirs"),  # latest event: del_contact
        ("G001", "READDED", True, "contact"),
        ("G002", "SCAN_IN", True, "scan"),  # store QR 23 h 59 min ago
        ("G003", "SCAN_IN", False, "not_theirs"),  # another store's guide
        ("G002", "SCAN_OUT", False, "not_theirs"),  # 24 h 01 min ago
        ("G001", "GUIDE_QR", True, "scan"),  # their own QR
        ("G002", "GUIDE_QR", False, "not_theirs"),  # a colleague's QR is not the store's
        ("G002", "LATER", False, "not_theirs"),  # after `now` does not exist yet
        ("M001", "HELD", True, "contact"),  # held by staff of their store
        ("M001", "GUIDE_QR", True, "scan"),
        ("M001", "PREF", True, "preferred_store"),
        ("M002", "PREF", False, "not_theirs"),
        ("M002", "REG", True, "registered_store"),
        ("M001", "REG", False, "not_theirs"),
        ("M002", "HELD", False, "not_theirs"),
        ("G009", "SCAN_IN", False, "not_theirs"),  # no store, so no store QR
        ("M009", "HELD", False, "not_theirs"),  # a manager without a store has no staff
        ("K001", "DELETED", True, "role"),
        ("A001", "SCAN_OUT", True, "role"),
        ("NOBODY", "HELD", False, "unknown_viewer"),
        ("", "HELD", False, "unknown_viewer"),
    ]
    async with db.transaction() as session:
        got = [(v, m, *astuple(await can_view(session, v, p[m], now=NOW))) for v, m, _, _ in cases]
    assert got == [(v, m, allowed, reason) for v, m, allowed, reason in cases]


async def test_access_rules_take_naive_local_time_only(db: Database) -> None:
    await db.migrate()
    async with db.transaction() as session:
        with pytest.raises(ValueError):
            await can_view(session, "G001", "p", now=datetime.now().astimezone())
