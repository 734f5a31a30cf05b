"""Store and guide QR codes end to end: the simulator's pictures, the clients, the QR maker on both
databases, `qianmian qr`, and the chat command through real encrypted WeCom callbacks (wechatpy)
answered from the outbox — and a scan of such a code arriving as add_external_contact."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import segno
from sqlalchemy import text
from typer.testing import CliRunner

from bot import texts
from bot.app import DISPATCHER, OUTBOX, SETTINGS, create_app
from bot.cli import app as cli_app
from bot.qr import QrError, QrMaker, describe
from bot.settings import Settings
from bot.simulator.server import TencentSimulator
from bot.simulator.wecom_api import CONTACT_WAY_QR_URL
from bot.tencent.wechat import OfficialAccountClient, mp_base_for
from bot.tencent.wecom import WeComClient
from nlp.qr import QrRequest, parse_qr_request
from profile_store import outbox
from profile_store.commands import command_log
from profile_store.contact_ways import get_contact_way, list_contact_ways
from profile_store.db import Database
from tests import callback_kit as kit
from tests.conftest import TEST_SECRET
from tests.test_callbacks import Bot

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ADD_WAY = "/cgi-bin/externalcontact/add_contact_way"
QR_CREATE = "/cgi-bin/qrcode/create"
STORES = [("S001", "上海一店"), ("S002", "上海二店"), ("S003", "北京一店"), ("S004", "空店")]
GUIDES = [
    ("GS0010", "胡霞", "S001", "manager"),
    ("GS0011", "胡明", "S001", "guide"),
    ("GS0012", "何平", "S001", "guide"),
    ("GS0020", "黄强", "S002", "manager"),
    ("GS0021", "何超", "S002", "guide"),
    ("GS0030", "刘明", "S003", "manager"),  # S003 has no guide: its manager takes the customers
    ("MKT01", "市场部小林", "", "marketer"),
    ("ADMIN", "管理员", "", "admin"),
]
LONG_GUIDE = "g" * 25  # guide_<25 chars> = 31 characters: one more than WeCom's state allows


# ============================================================================ helpers


async def seed(db: Database, sim: TencentSimulator | None = None) -> None:
    """The retailer's stores and staff (as an import of stores.csv / guides.csv leaves them)."""
    async with db.transaction() as session:
        for store_id, name in STORES:
            await session.execute(
                text("INSERT INTO store (store_id, name, city, region) VALUES (:s, :n, '', '')"),
                {"s": store_id, "n": name},
            )
        for guide_id, name, store_id, role in [*GUIDES, (LONG_GUIDE, "长名", "", "marketer")]:
            await session.execute(
                text("INSERT INTO guide (guide_id, name, store_id, role) VALUES (:g, :n, :s, :r)"),
                {"g": guide_id, "n": name, "s": store_id, "r": role},
            )
    if sim is not None:
        for guide_id, *_ in GUIDES:
            sim.add_staff(guide_id)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode a greyscale PNG (every chunk's CRC checked) → width, height, rows of 0/255 bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert colour == 0 and interlace == 0 and depth in (1, 8)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = (width * depth + 7) // 8
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, scan = line[0], bytearray(line[1:])
        for i in range(stride):  # PNG filters with 1 byte per pixel
            a, b = scan[i - 1] if i else 0, previous[i]
            c = previous[i - 1] if i else 0
            if kind == 1:
                scan[i] = (scan[i] + a) & 0xFF
            elif kind == 2:
                scan[i] = (scan[i] + b) & 0xFF
            elif kind == 3:
                scan[i] = (scan[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                scan[i] = (scan[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        previous = scan
        if depth == 8:
            rows.append(bytes(scan))
        else:
            rows.append(bytes(255 if scan[x // 8] >> (7 - x % 8) & 1 else 0 for x in range(width)))
    return width, height, rows


def assert_qr_picture(data: bytes, content: str) -> None:
    """`data` is a PNG whose modules are those of a QR code of `content` (scale 8, quiet zone 4)."""
    width, height, rows = png_pixels(data)
    matrix = segno.make(content, error="m").matrix
    size = len(matrix)
    assert width == height == (size + 8) * 8
    for r in range(size):
        for c in range(size):
            dark = rows[(r + 4) * 8 + 4][(c + 4) * 8 + 4] == 0
            assert dark == bool(matrix[r][c]), (r, c)


def settings_for(db_url: str, sim: TencentSimulator, media: Path, **extra: Any) -> Settings:
    return kit.make_settings(
        db_url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id, api_base=sim.base_url,
        QIANMIAN_MEDIA_DIR=str(media), **extra,
    )


@dataclass
class Kit:
    db: Database
    sim: TencentSimulator
    settings: Settings
    maker: QrMaker
    media: Path


@pytest.fixture
async def sim() -> AsyncIterator[TencentSimulator]:
    async with TencentSimulator() as simulator:
        simulator.add_official_account(kit.OA1, "oa1secret")
        yield simulator


@pytest.fixture
async def qr(db: Database, db_url: str, sim: TencentSimulator, tmp_path: Path) -> AsyncIterator[Kit]:
    await seed(db, sim)
    settings = settings_for(db_url, sim, tmp_path / "media")
    async with aiohttp.ClientSession() as http:
        wecom = WeComClient.from_settings(http, db, settings)
        wechat = {kit.OA1: OfficialAccountClient.from_settings(http, db, settings, kit.OA1)}
        yield Kit(db, sim, settings, QrMaker(db, settings, wecom=wecom, wechat=wechat), tmp_path / "media")


# ============================================================================ the simulator's pictures


async def test_simulator_serves_contact_way_and_showqrcode_pictures(sim: TencentSimulator) -> None:
    sim.add_staff("g1")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.base_url}/cgi-bin/gettoken", params={
            "corpid": sim.corp_id, "corpsecret": sim.corp_secret}) as resp:
            token = (await resp.json())["access_token"]
        body = {"type": 1, "scene": 2, "user": ["g1"], "state": "guide_g1"}
        async with http.post(f"{sim.base_url}{ADD_WAY}", params={"access_token": token}, json=body) as resp:
            way = await resp.json()
        assert way["errcode"] == 0 and way["qr_code"].startswith(sim.base_url)
        async with http.get(way["qr_code"]) as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert_qr_picture(await resp.read(), f"{CONTACT_WAY_QR_URL}{way['config_id']}")
        async with http.get(f"{sim.base_url}/sim/qr/contact_way/nosuchway.png") as resp:
            assert resp.status == 404

        async with http.get(f"{sim.base_url}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": kit.OA1, "secret": "oa1secret"}) as resp:
            oa_token = (await resp.json())["access_token"]
        qr_body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "store_S001"}}}
        async with http.post(f"{sim.base_url}{QR_CREATE}", params={"access_token": oa_token}, json=qr_body) as resp:
            created = await resp.json()
        async with http.get(f"{sim.base_url}/cgi-bin/showqrcode", params={"ticket": created["ticket"]}) as resp:
            assert resp.status == 200  # no access token: the ticket is the key, as on Tencent's picture host
            assert_qr_picture(await resp.read(), created["url"])
        for params in ({"ticket": "gQnosuchticket"}, {}):
            async with http.get(f"{sim.base_url}/cgi-bin/showqrcode", params=params) as resp:
                assert resp.status == 404


def test_mp_base_is_tencents_mp_host_or_the_api_base() -> None:
    # Tencent's own API base (the default setting) → Tencent's picture host, another host over https;
    # anything else (the simulator, a proxy) serves the pictures itself. No request is made.
    tencent = Settings.model_fields["wechat_api_base"].default
    mp = urlsplit(mp_base_for(tencent))
    assert mp.scheme == "https" and mp.hostname and mp.hostname != urlsplit(tencent).hostname
    assert mp_base_for(tencent + "/") == mp_base_for(tencent)
    assert mp_base_for("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


# ============================================================================ the QR maker


async def test_store_qr_rotates_among_the_stores_guides(qr: Kit) -> None:
    code = await qr.maker.create_store_qr("S001", by="MKT01")
    [call] = qr.sim.calls(ADD_WAY)
    # Multi-person (WeCom rotates among them), a QR, the store's guides only (not its manager).
    assert call.body == {
        "type": 2, "scene": 2, "skip_verify": True, "user": ["GS0011", "GS0012"], "state": "store_S001",
    }
    assert code.state == "store_S001" and not code.reused
    assert code.image_path == (qr.media / "qr" / "wecom_store_S001.png").resolve()
    assert_qr_picture(code.image_path.read_bytes(), f"{CONTACT_WAY_QR_URL}{code.config_id}")
    async with qr.db.transaction() as session:
        row = await get_contact_way(session, "wecom", "store_S001")
    assert row is not None
    assert (row.config_id, row.qr_url, row.image_path, row.users, row.created_by, row.store_id) == (
        code.config_id, code.qr_url, str(code.image_path), call.body["user"], "MKT01", "S001",
    )
    said = describe(code)
    assert "store_S001" in said and "胡明（GS0011）" in said and "何平（GS0012）" in said and "上海一店" in said
    assert str(code.image_path) in said


async def test_store_without_guides_rotates_among_its_managers(qr: Kit) -> None:
    code = await qr.maker.create_store_qr("S003", by="ADMIN")
    assert qr.sim.calls(ADD_WAY)[0].body["user"] == ["GS0030"] == code.users


async def test_guide_qr_is_a_single_contact_way(qr: Kit) -> None:
    code = await qr.maker.create_guide_qr("GS0011", by="GS0011")
    [call] = qr.sim.calls(ADD_WAY)
    assert (call.body["type"], call.body["scene"], call.body["user"], call.body["state"]) == (
        1, 2, ["GS0011"], "guide_GS0011",
    )
    assert code.image_path.name == "wecom_guide_GS0011.png" and code.store_id == "S001"
    assert_qr_picture(code.image_path.read_bytes(), f"{CONTACT_WAY_QR_URL}{code.config_id}")


async def test_refusals_come_before_any_tencent_call(qr: Kit) -> None:
    with pytest.raises(QrError) as too_long:
        await qr.maker.create_guide_qr(LONG_GUIDE, by="ADMIN")
    assert too_long.value.code == "state_too_long"
    assert "31 个字符" in str(too_long.value) and "30" in str(too_long.value)
    with pytest.raises(QrError) as unknown:
        await qr.maker.create_store_qr("S999", by="ADMIN")
    assert unknown.value.code == "unknown_store" and "S999" in str(unknown.value)
    with pytest.raises(QrError) as nobody:
        await qr.maker.create_store_qr("S004", by="ADMIN")
    assert nobody.value.code == "no_staff"
    with pytest.raises(QrError) as stranger:
        await qr.maker.create_guide_qr("GX999", by="ADMIN")
    assert stranger.value.code == "unknown_guide"
    assert qr.sim.calls() == []  # not even an access token was fetched


async def test_asking_again_reuses_the_stored_code(qr: Kit) -> None:
    first = await qr.maker.create_store_qr("S001", by="MKT01")
    again = await qr.maker.create_store_qr("S001", by="GS0010")
    assert again.reused and again.config_id == first.config_id and len(qr.sim.calls(ADD_WAY)) == 1
    assert again.users == first.users and again.user_names == first.user_names
    first.image_path.unlink()  # another machine, or the media folder was cleaned: fetched again only
    fetched = await qr.maker.create_store_qr("S001", by="MKT01")
    assert fetched.reused and fetched.image_path.is_file() and len(qr.sim.calls(ADD_WAY)) == 1
    asked = datetime.now(UTC)
    renewed = await qr.maker.create_store_qr("S001", by="MKT01", new=True, asked_at=asked)
    assert not renewed.reused and renewed.config_id != first.config_id and len(qr.sim.calls(ADD_WAY)) == 2
    # The same "new" request run again (its callback processed twice) finds the code it made.
    rerun = await qr.maker.create_store_qr("S001", by="MKT01", new=True, asked_at=asked)
    assert rerun.reused and rerun.config_id == renewed.config_id and len(qr.sim.calls(ADD_WAY)) == 2
    async with qr.db.transaction() as session:
        ways = await list_contact_ways(session)
    assert [(w.state, w.config_id) for w in ways] == [("store_S001", renewed.config_id)]


async def test_a_failed_download_does_not_cost_a_second_contact_way(qr: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(qr.sim.wecom, "contact_way_picture", lambda config_id: None)  # the picture URL 404s
        with pytest.raises(QrError) as failed:
            await qr.maker.create_store_qr("S001", by="MKT01")
    assert failed.value.code == "tencent"
    code = await qr.maker.create_store_qr("S001", by="MKT01")
    assert code.reused and code.image_path.is_file() and len(qr.sim.calls(ADD_WAY)) == 1


async def test_official_account_codes_are_permanent_str_scenes(qr: Kit) -> None:
    code = await qr.maker.create_store_qr("S001", by="MKT01", oa=kit.OA1)
    [call] = qr.sim.calls(QR_CREATE)
    assert call.body == {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "store_S001"}}}
    assert qr.sim.calls(ADD_WAY) == [] and code.users == [] and code.channel == kit.OA1
    [picture] = qr.sim.calls("/cgi-bin/showqrcode")
    assert picture.query == {"ticket": code.config_id}
    assert code.image_path.name == f"oa_{kit.OA1}_store_S001.png"
    stored = qr.sim.oa.account(kit.OA1).qrcodes[code.config_id]
    assert stored["permanent"] and stored["scene"] == "store_S001"
    assert_qr_picture(code.image_path.read_bytes(), stored["url"])
    guide = await qr.maker.create_guide_qr("GS0012", by="MKT01", oa=kit.OA1)
    assert qr.sim.calls(QR_CREATE)[1].body["action_info"]["scene"]["scene_str"] == "guide_GS0012"
    assert guide.image_path.is_file()
    # An OA's scene_str may be 64 characters: a 25-character guide id is fine there.
    assert (await qr.maker.create_guide_qr(LONG_GUIDE, by="MKT01", oa=kit.OA1)).state == f"guide_{LONG_GUIDE}"
    with pytest.raises(QrError) as unknown:
        await qr.maker.create_store_qr("S001", by="MKT01", oa="wxnotconfigured")
    assert unknown.value.code == "not_configured"


# ============================================================================ the command line


async def test_cli_create_and_list(db: Database, db_url: str, sim: TencentSimulator, tmp_path: Path) -> None:
    await seed(db, sim)
    env = {
        "DATABASE_URL": db_url, "QIANMIAN_SECRET_KEY": TEST_SECRET, "QIANMIAN_MEDIA_DIR": str(tmp_path / "media"),
        "WECOM_CORP_ID": sim.corp_id, "WECOM_SECRET": sim.corp_secret, "WECOM_AGENT_ID": sim.agent_id,
        "WECOM_API_BASE": sim.base_url, "WECHAT_API_BASE": sim.base_url, "WECHAT_APP_ID": kit.OA1,
        "WECHAT_APP_SECRET": "oa1secret", "WECHAT_TOKEN": kit.OA1_TOKEN, "COLUMNS": "250",
    }
    runner = CliRunner()

    async def cli(*args: str) -> Any:
        # In a thread: the command runs its own event loop while this one keeps serving the simulator.
        return await asyncio.to_thread(runner.invoke, cli_app, list(args), env=env)

    made = await cli("qr", "create", "--store", "S001", "--by", "MKT01")
    assert made.exit_code == 0, made.output
    picture = (tmp_path / "media" / "qr" / "wecom_store_S001.png").resolve()
    assert "store_S001" in made.output and "胡明（GS0011）" in made.output and str(picture) in made.output
    assert picture.is_file() and len(sim.calls(ADD_WAY)) == 1
    again = await cli("qr", "create", "--store", "S001")
    assert again.exit_code == 0 and "沿用原码" in again.output and len(sim.calls(ADD_WAY)) == 1
    renewed = await cli("qr", "create", "--store", "S001", "--new")
    assert renewed.exit_code == 0 and len(sim.calls(ADD_WAY)) == 2
    guide = await cli("qr", "create", "--guide", "GS0021", "--oa", kit.OA1)
    assert guide.exit_code == 0, guide.output
    assert "guide_GS0021" in guide.output and len(sim.calls(QR_CREATE)) == 1

    listed = await cli("qr", "list")
    assert listed.exit_code == 0 and "store_S001" in listed.output and "guide_GS0021" in listed.output
    assert "GS0011" in listed.output
    assert (await cli("qr", "create", "--store", "S001", "--guide", "GS0011")).exit_code == 2
    assert (await cli("qr", "create")).exit_code == 2
    unknown = await cli("qr", "create", "--store", "S999")
    assert unknown.exit_code == 1 and "找不到门店" in unknown.output
    too_long = await cli("qr", "create", "--guide", LONG_GUIDE)
    assert too_long.exit_code == 1 and "超过腾讯允许的 30 个" in too_long.output
    assert len(sim.calls(ADD_WAY)) == 2


# ============================================================================ the chat command


def test_parse_qr_request() -> None:
    stores = {"上海一店": "S001", "上海": "SH"}
    assert parse_qr_request("给S001门店生成二维码") == QrRequest("store", "S001")
    assert parse_qr_request("生成导购G001的二维码") == QrRequest("guide", "G001")
    assert parse_qr_request("S001门店的二维码") == QrRequest("store", "S001")
    assert parse_qr_request("给ｓ００１门店生成二维码", stores={"x": "S001"}) == QrRequest("store", "S001")
    assert parse_qr_request("上海一店的公众号二维码", stores) == QrRequest("store", "S001", oa=True, by_name=True)
    assert parse_qr_request("生成我的二维码") == QrRequest("guide", None, mine=True)
    assert parse_qr_request("本店的二维码") == QrRequest("store", None, mine=True)
    assert parse_qr_request("重新生成S001门店的二维码") == QrRequest("store", "S001", new=True)
    assert parse_qr_request("S001门店导购GS0011的二维码") == QrRequest("guide", "GS0011")
    assert parse_qr_request("二维码怎么用") == QrRequest(None, None)
    assert parse_qr_request("本周新客有多少") is None
    assert parse_qr_request("S001门店上周的销售额") is None


@pytest.fixture
async def bot(db: Database, db_url: str, sim: TencentSimulator, aiohttp_client: Any, tmp_path: Path) -> Bot:
    await seed(db, sim)
    app = create_app(settings_for(db_url, sim, tmp_path / "media"), db=db, sweep_interval=3600)
    client = await aiohttp_client(app)
    return Bot(client, app, app[SETTINGS], db, sim)


async def say(bot: Bot, userid: str, content: str, msg_id: str) -> None:
    xml = kit.wecom_text(userid, msg_id, content, int(time.time()), corp_id=bot.corp)
    assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")


async def answered(bot: Bot, within: float = 15.0) -> None:
    """Wait until every queued answer had its first try (the app's own sender works meanwhile)."""
    await bot.settle()
    bot.app[OUTBOX].wake()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        [(untried,)] = await bot.rows("SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts = 0")
        if not untried:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox was not sent in time")


def messages_to(bot: Bot, userid: str) -> list[Any]:
    return [m for m in bot.sim.app_messages if m.touser == [userid]]


async def audit(bot: Bot) -> list[tuple[str, str, str]]:
    async with bot.db.transaction() as session:
        return [(c.userid, c.family, c.outcome) for c in await command_log(session)]


async def test_chat_command_makes_the_code_and_sends_the_picture(bot: Bot) -> None:
    await say(bot, "MKT01", "给S001门店生成二维码", "9001")
    await bot.settle()
    async with bot.db.transaction() as session:
        rows = await outbox.items(session)
    assert [(r["kind"], r["key"].rsplit(":", 1)[1], r["payload"]["touser"]) for r in rows] == [
        ("image", "image", "MKT01"), ("text", "text", "MKT01"),
    ]
    picture = Path(rows[0]["payload"]["path"])
    assert picture.name == "wecom_store_S001.png" and picture.is_file()
    assert "store_S001" in rows[1]["payload"]["content"] and "胡明（GS0011）" in rows[1]["payload"]["content"]
    assert await audit(bot) == [("MKT01", "qr", "done")]
    [call] = bot.sim.calls(ADD_WAY)
    assert (call.body["type"], call.body["state"]) == (2, "store_S001")

    await answered(bot)
    # Picture and text leave side by side (the sender works concurrently): order is not promised.
    image, said = sorted(messages_to(bot, "MKT01"), key=lambda m: m.msgtype)
    assert image.msgtype == "image" and said.msgtype == "text"
    _kind, upload, _at = bot.sim.wecom.media[image.body["image"]["media_id"]]
    assert upload.data == picture.read_bytes()
    assert "store_S001" in said.body["text"]["content"]

    # The same request again (a new message): the stored code, no second contact way.
    await say(bot, "GS0010", "S001门店的二维码", "9002")  # S001's manager
    await answered(bot)
    assert len(bot.sim.calls(ADD_WAY)) == 1 and len(messages_to(bot, "GS0010")) == 2
    [reused] = [m for m in messages_to(bot, "GS0010") if m.msgtype == "text"]
    assert "沿用原码" in reused.body["text"]["content"]


async def test_chat_roles(bot: Bot) -> None:
    bot.sim.add_staff("wxstranger")  # a WeCom member (a cashier, say) who is not in guides.csv
    await say(bot, "GS0011", "给S001门店生成二维码", "9101")  # a guide: only their own code
    await say(bot, "GS0020", "S001门店的二维码", "9102")  # S002's manager
    await say(bot, "GS0020", "生成导购GS0011的二维码", "9103")  # ... nor S001's guides
    await say(bot, "wxstranger", "生成我的二维码", "9104")  # not in guides.csv
    await answered(bot)
    assert bot.sim.calls(ADD_WAY) == []
    assert await audit(bot) == [
        ("GS0011", "qr", "refused"), ("GS0020", "qr", "refused"), ("GS0020", "qr", "refused"),
        ("wxstranger", "qr", "refused"),
    ]
    [guide_answer] = messages_to(bot, "GS0011")
    assert guide_answer.body["text"]["content"] == texts.QR_CHAT_GUIDE_OWN_ONLY
    assert [m.body["text"]["content"] for m in messages_to(bot, "GS0020")] == [
        texts.QR_CHAT_MANAGER_OWN_STORE.format(store_id="S002")
    ] * 2
    [stranger] = messages_to(bot, "wxstranger")
    assert stranger.body["text"]["content"] == texts.QR_CHAT_UNKNOWN_STAFF

    await say(bot, "GS0011", "生成我的二维码", "9105")  # a guide's own code
    await say(bot, "GS0020", "本店的二维码", "9106")  # a manager's own store
    await say(bot, "ADMIN", "生成导购GS0021的公众号二维码", "9107")
    await answered(bot)
    assert [(c.body["type"], c.body["state"], c.body["user"]) for c in bot.sim.calls(ADD_WAY)] == [
        (1, "guide_GS0011", ["GS0011"]), (2, "store_S002", ["GS0021"]),
    ]
    assert [c.body["action_info"]["scene"]["scene_str"] for c in bot.sim.calls(QR_CREATE)] == ["guide_GS0021"]
    assert (await audit(bot))[-3:] == [("GS0011", "qr", "done"), ("GS0020", "qr", "done"), ("ADMIN", "qr", "done")]
    assert sorted(m.msgtype for m in messages_to(bot, "GS0011")[1:]) == ["image", "text"]


async def test_chat_not_understood_failed_and_other_texts(bot: Bot) -> None:
    await say(bot, "MKT01", "二维码怎么用", "9201")
    await say(bot, "MKT01", "给S004门店生成二维码", "9202")  # a store without staff
    await say(bot, "MKT01", "本周新客有多少", "9203")  # not about QR codes: the command language's
    await say(bot, "ADMIN", f"生成导购{LONG_GUIDE}的二维码", "9204")
    await answered(bot)
    assert await audit(bot) == [
        ("MKT01", "qr", "not_understood"), ("MKT01", "qr", "failed"), ("MKT01", "segment", "done"),
        ("ADMIN", "qr", "failed"),
    ]
    said = [m.body["text"]["content"] for m in messages_to(bot, "MKT01")]
    assert said[0] == texts.QR_CHAT_NOT_UNDERSTOOD and "没有登记导购或店长" in said[1] and len(said) == 3
    assert said[2].startswith(texts.CHAT_READING.format(reading=""))
    [too_long] = messages_to(bot, "ADMIN")
    assert "超过腾讯允许的 30 个" in too_long.body["text"]["content"]
    assert bot.sim.calls(ADD_WAY) == []
    async with bot.db.transaction() as session:
        assert all(r["kind"] == "text" for r in await outbox.items(session))


async def test_a_callback_processed_twice_queues_one_answer(bot: Bot) -> None:
    await say(bot, "MKT01", "给S001门店生成二维码", "9301")
    await bot.settle()
    async with bot.db.transaction() as session:
        await session.execute(text("UPDATE raw_event SET status = 'pending'"))  # processed again
    assert await bot.app[DISPATCHER].sweep() == {"done": 1}
    async with bot.db.transaction() as session:
        assert len(await outbox.items(session)) == 2
    assert len(bot.sim.calls(ADD_WAY)) == 1  # the prefetch found the code it had made
    assert await audit(bot) == [("MKT01", "qr", "done")]  # and the audit has the command once


async def test_a_scan_of_the_store_code_is_recorded_with_its_state(bot: Bot) -> None:
    await say(bot, "MKT01", "给S001门店生成二维码", "9401")
    await answered(bot)
    [call] = bot.sim.calls(ADD_WAY)
    state = call.body["state"]
    # WeCom rotated the customer to one of the code's guides.
    bot.sim.add_external_contact("wmScanner", unionid="uScanner", follow_userid="GS0012", state=state)
    xml = kit.wecom_contact("add_external_contact", "GS0012", "wmScanner", int(time.time()), corp_id=bot.corp,
                            State=state)
    assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()
    rows = await bot.rows("SELECT type, external_userid, guide_id, qr_state, unionid FROM event")
    assert [tuple(r) for r in rows] == [("add_contact", "wmScanner", "GS0012", "store_S001", "uScanner")]
