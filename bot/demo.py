"""`qianmian demo`: the whole product on this machine, with no account and no setting.

It makes a secret key, generates a sample retailer with the project's own seeded generator,
imports it, starts the WeCom/WeChat simulator and the bot on loopback, and plays customers
through real encrypted callbacks (the simulator's driver encrypts with wechatpy, as Tencent
would): a member scanning a store QR, a new follower who later adds a guide, a coupon, a
Tencent retry, a forged call, and the evening's POS export. It prints what happened in plain
language and keeps the bot running for further commands from another terminal.
"""

from __future__ import annotations

import asyncio
import csv
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from rich.console import Console

from bot import texts
from bot.app import DISPATCHER, GRAPH, create_app
from bot.corp_tags import CorpTagMirror
from bot.portrait_text import render
from bot.settings import Settings
from bot.simulator.driver import CallbackDriver
from bot.simulator.server import TencentSimulator
from profile_store import lookup, raw_events
from profile_store.corp_tags import queue_corp_tags
from profile_store.db import Database
from profile_store.generator import generate
from profile_store.identity import IdentityGraph
from profile_store.importer import Importer, ImportReport
from profile_store.labels import add_label
from profile_store.lookup import PersonCard, person_card
from profile_store.pii import PiiVault
from profile_store.portrait import portrait
from profile_store.staff import all_staff
from profile_store.tagging.history import tag_history
from profile_store.tagging.refresh import refresh_all

DEMO_TOKEN = "qianmiandemo"
DEMO_AES_KEY = "qianmianDemoEncodingAESKey0123456789abcdefg"  # 43 characters, demo only
DEMO_SEED = 2026


@dataclass
class DemoOutcome:
    """What the demo established (its own test reads this)."""

    bot_url: str
    member_person: str
    follower_person: str
    follower_merged_with_contact: bool
    duplicate_recorded_once: bool
    forged_status: int
    import_report: ImportReport | None = None
    member_portrait: str = ""
    corp_tags_sent: int = 0
    member_corp_tags: list[str] | None = None
    pushed_card: dict[str, Any] | None = None  # the template_card the guide received
    chat_answers: list[tuple[str, list[str]]] | None = None  # (command, what the marketer received)
    campaign_sent: int = 0  # messages the demo campaign sent through the guides
    campaign_effect: list[str] | None = None  # the effect report the marketer received


DEMO_MARKETER = "MK001"  # the generated retailer's marketer (guides.csv)


def demo_secret(workdir: Path) -> str:
    """The demo's own secret key, made once and kept beside its database (never in git)."""
    path = workdir / ".secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def run_demo(
    workdir: Path, *, customers: int = 300, port: int = 8080, keep_running: bool = True,
    console: Console | None = None,
) -> DemoOutcome:
    out = console or Console()
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("demo.db*"):
        old.unlink()  # every demo starts from the same retailer
    secret = demo_secret(workdir)
    db_url = f"sqlite:///{workdir / 'demo.db'}"

    out.rule(texts.DEMO_TITLE)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    generated = generate(data, customers=customers, seed=DEMO_SEED)
    out.print(texts.DEMO_GENERATED.format(customers=customers, rows=sum(generated.rows.values()), path=data))

    db = Database(db_url)
    await db.migrate()
    vault = PiiVault(secret)
    graph = IdentityGraph(vault)
    report = await Importer(db, vault, graph).run(data, workdir / "rejects.csv")
    async with db.transaction() as session:
        shared = await lookup.count_shared_identifiers(session)
    out.print(texts.DEMO_IMPORTED.format(
        rows=sum(f.imported for f in report.files), rejected=sum(f.rejected for f in report.files),
        persons=report.persons, shared=shared, rejects=report.rejects_path))

    async with TencentSimulator() as sim:
        sim.add_official_account("wx_demo_brand", "demo-oa-secret")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]  # the demo never reads the operator's .env
            DATABASE_URL=db_url, QIANMIAN_SECRET_KEY=secret,
            WECOM_CORP_ID=sim.corp_id, WECOM_AGENT_ID=str(sim.agent_id), WECOM_SECRET=sim.corp_secret,
            WECOM_TOKEN=DEMO_TOKEN, WECOM_AES_KEY=DEMO_AES_KEY,
            WECHAT_APP_ID="wx_demo_brand", WECHAT_APP_SECRET="demo-oa-secret",
            WECHAT_TOKEN=DEMO_TOKEN, WECHAT_AES_KEY=DEMO_AES_KEY,
            WECOM_API_BASE=sim.base_url, WECHAT_API_BASE=sim.base_url,
            QIANMIAN_PUBLIC_URL=f"http://127.0.0.1:{port}", PORT=port,
            QIANMIAN_TAGS_REFRESH_AT="off",  # the demo refreshes once, below, and shows it
            # The demo runs at any hour: no quiet hours, or a campaign started at night would wait
            # for 09:00; the campaign sender looks every second instead of every five.
            QIANMIAN_QUIET_HOURS="off", QIANMIAN_CAMPAIGN_INTERVAL=1,
        )
        tagged = await refresh_all(db, settings.today())
        async with db.transaction() as session:
            lifecycles = await lookup.lifecycle_counts(session)
        out.print(texts.DEMO_TAGS.format(
            as_of=settings.today(), persons=tagged.persons,
            lifecycles="、".join(f"{k} {v}" for k, v in lifecycles.items())))
        app = create_app(settings, db=db)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bot_url = f"http://127.0.0.1:{port}"
        out.print(texts.DEMO_STARTED.format(sim=sim.base_url, bot=bot_url))
        try:
            driver = CallbackDriver.from_settings(settings, bot_url, sim=sim)
            async with driver:
                outcome = await _play(
                    out, db, app[GRAPH], sim, driver, settings, workdir, bot_url, app[DISPATCHER].services["wecom"]
                )
            outcome.import_report = report
            out.rule()
            if keep_running:
                out.print(texts.DEMO_TRY.format(bot=bot_url, db_url=db_url, secret_file=workdir / ".secret"))
                out.print(texts.DEMO_RUNNING)
                await asyncio.Event().wait()  # until Ctrl-C
            out.print(texts.DEMO_STOPPED.format(db_url=db_url, secret_file=workdir / ".secret"))
            return outcome
        finally:
            await runner.cleanup()
            await db.dispose()


async def _settled(db: Database, within: float = 10.0) -> None:
    """Wait until the bot has processed every callback it answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with db.transaction() as session:
            if (await raw_events.counts_by_status(session)).get("pending", 0) == 0:
                return
        await asyncio.sleep(0.05)


async def _card(db: Database, graph: IdentityGraph, kind: str, value: str) -> PersonCard | None:
    async with db.transaction() as session:
        person = await graph.person_for(session, kind, value)
        return await person_card(session, graph, person) if person else None


def _show(out: Console, card: PersonCard | None) -> None:
    if card is None:
        out.print(texts.DEMO_NO_PERSON)
        return
    ids = "; ".join(f"{kind} {', '.join(values)}" for kind, values in sorted(card.identities.items()))
    out.print(texts.DEMO_CARD.format(
        person=card.person_id, names="、".join(card.member_names) or "—", ids=ids,
        orders=card.orders_paid, amount=card.amount_paid_fen / 100,
        events="、".join(f"{k}×{v}" for k, v in card.events.items()) or "—"))
    for at, action, why in card.history:
        out.print(texts.DEMO_HISTORY.format(at=f"{at:%Y-%m-%d %H:%M:%S}", action=action, why=why))


async def _play(
    out: Console, db: Database, graph: IdentityGraph, sim: TencentSimulator, driver: CallbackDriver,
    settings: Settings, workdir: Path, bot_url: str, wecom: Any,
) -> DemoOutcome:
    async with db.transaction() as session:
        member = await lookup.a_member_with_unionid(session)
        store_id, guide, second_guide = await lookup.a_store_with_two_guides(session)
        for userid, name in await all_staff(session):  # WeCom knows the retailer's staff
            sim.add_staff(userid, name)
    if member is None or member.unionid is None:
        raise RuntimeError("the generated retailer has no member with a unionid")

    # 1. A member walks into a store and scans the store's WeCom QR code.
    out.rule(texts.DEMO_SCENE_MEMBER_SCAN)
    first_scan = await driver.wecom_add_external_contact(
        guide, "wmDemoMember0001", state=f"store_{store_id}", unionid=member.unionid, name=member.name)
    await _settled(db)
    card = await _card(db, graph, "external_userid", "wmDemoMember0001")
    _show(out, card)
    member_person = card.person_id if card else ""
    pushed = await _pushed_card(out, sim, guide)
    member_portrait = await _portrait(out, db, graph, member_person, guide, settings)

    # 2. A new customer follows the official account through the store's parametric QR code...
    out.rule(texts.DEMO_SCENE_NEW_FOLLOWER)
    unionid = "oUDemoNewFollower01"
    cards_before = len(sim.wecom.app_messages)
    await driver.oa_subscribe("oDemoNewFollower01", scene=f"store_{store_id}", unionid=unionid)
    await _settled(db)
    follower = await _card(db, graph, "openid", "wx_demo_brand/oDemoNewFollower01")
    _show(out, follower)
    await _store_cards(out, sim, cards_before)
    # ... and adds a guide on WeCom the same day: WeCom knows the same unionid.
    out.rule(texts.DEMO_SCENE_FOLLOWER_ADDS_GUIDE)
    await driver.wecom_add_external_contact(second_guide, "wmDemoNewcomer0001", state=f"guide_{second_guide}",
                                            unionid=unionid, name="新顾客")
    await _settled(db)
    contact = await _card(db, graph, "external_userid", "wmDemoNewcomer0001")
    _show(out, contact)
    merged = bool(follower and contact and contact.person_id == follower.person_id)

    # 3. The newcomer claims the 30-yuan coupon in WeChat and uses it at the till.
    out.rule(texts.DEMO_SCENE_COUPON)
    await driver.oa_user_get_card("oDemoNewFollower01", card_id="C30", code="C30-DEMO-0001", unionid=unionid)
    await driver.oa_user_consume_card("oDemoNewFollower01", card_id="C30", code="C30-DEMO-0001")
    await _settled(db)
    newcomer = await _card(db, graph, "unionid", unionid)
    _show(out, newcomer)
    if newcomer is not None:
        async with db.transaction() as session:
            changes = await tag_history(session, newcomer.person_id)
        out.print(texts.DEMO_TAG_CHANGES)
        for change in reversed(changes):
            out.print("    " + texts.TAG_CHANGE.format(
                on=change.changed_on, tag=texts.TAG_NAMES.get(change.tag, change.tag),
                old=_plain(change.old), new=_plain(change.new)))

    # 4. Tencent did not hear our answer in time and sends the same callback again.
    out.rule(texts.DEMO_SCENE_RETRY)
    async with db.transaction() as session:
        before = await lookup.count_events(session)
    retry = await driver.send_wecom(first_scan.xml)  # the member's scan of scene 1, once more
    await _settled(db)
    async with db.transaction() as session:
        after = await lookup.count_events(session)
    once = retry.ok and after == before
    out.print(texts.DEMO_RETRY_RESULT.format(status=retry.status, before=before, after=after))

    # 5. Someone who does not hold the token tries to post a callback.
    out.rule(texts.DEMO_SCENE_FORGED)
    forged = CallbackDriver(bot_url, corp_id=sim.corp_id, agent_id=str(sim.agent_id), wecom_token="not-the-token",
                            wecom_aes_key=DEMO_AES_KEY, attempts=1)
    async with forged:
        result = await forged.wecom_add_external_contact(guide, "wmForged0001", state=f"store_{store_id}")
    out.print(texts.DEMO_FORGED_RESULT.format(status=result.status))

    # 6. In the evening the POS export arrives: the newcomer registered at the till and bought.
    out.rule(texts.DEMO_SCENE_POS_EXPORT)
    evening = workdir / "pos-evening"
    shutil.rmtree(evening, ignore_errors=True)
    evening.mkdir()
    _write_csv(evening / "members.csv", ["member_id", "phone", "unionid", "name", "gender", "birthday", "city", "level",
                                         "register_time", "register_channel", "register_store_id"],
               [["MDEMO0001", "+86 139 0000 2026", unionid, "王小美", "F", "1995-06-18", "上海", "V1",
                 "2026-11-01 18:20:00", "pos", store_id]])
    _write_csv(evening / "orders.csv", ["order_id", "channel", "store_id", "paid_at", "amount", "list_amount",
                                        "coupon_code", "status", "member_id", "phone", "unionid", "miniapp_openid"],
               [["ODEMO0001", "pos", store_id, "2026-11-01 18:25:00", "569.00", "599.00", "C30-DEMO-0001", "paid",
                 "MDEMO0001", "13900002026", "", ""]])
    await Importer(db, graph.vault, graph).run(evening, workdir / "rejects-evening.csv")
    await refresh_all(db, settings.today())
    evening_card = await _card(db, graph, "unionid", unionid)
    _show(out, evening_card)
    if evening_card is not None:
        await _portrait(out, db, graph, evening_card.person_id, second_guide, settings)

    # 7. Our tags become WeCom corp tags on the customer, so guides see them in the WeCom client.
    out.rule(texts.DEMO_SCENE_CORP_TAGS)
    label = "爱穿裙子"
    async with db.transaction() as session:
        await add_label(session, member_person, label, by=guide)
        await queue_corp_tags(session, [member_person])
    out.print(texts.DEMO_LABEL_PUT.format(guide=guide, label=label))
    mirrored = await CorpTagMirror(db, wecom, per_second=100).drain()
    shown = sim.wecom.follow_tag_names("wmDemoMember0001", guide)
    out.print(texts.DEMO_CORP_TAGS_RESULT.format(sent=mirrored.sent, guide=guide, tags="、".join(shown) or "—"))

    # 8. A marketer talks to the bot in WeCom: segments, labels (preview, then 确认), a report.
    out.rule(texts.DEMO_SCENE_CHAT)
    answers = []
    for command in texts.DEMO_CHAT_COMMANDS:
        answers.append((command, await _chat(out, sim, driver, DEMO_MARKETER, command)))

    # 9. A campaign end to end: previewed, confirmed, sent through the guides, customers buying
    # (or not, the control group too), and its effect measured against the control group.
    out.rule(texts.DEMO_SCENE_CAMPAIGN)
    async with db.transaction() as session:
        contacts = await lookup.wecom_contacts(session)
    for external_userid, held_by in contacts:  # WeCom knows the retailer's customer contacts
        sim.wecom.add_external_contact(external_userid, follow_userid=held_by)
    await _chat(out, sim, driver, DEMO_MARKETER, texts.DEMO_CAMPAIGN_COMMAND)
    await _chat(out, sim, driver, DEMO_MARKETER, texts.CHAT_CONFIRM_WORD)
    sent, bought = await _campaign_runs(out, db, workdir, graph, store_id)
    effect = await _chat(out, sim, driver, DEMO_MARKETER, texts.DEMO_CAMPAIGN_EFFECT.format(name=bought))

    return DemoOutcome(
        bot_url=bot_url, member_person=member_person,
        follower_person=follower.person_id if follower else "",
        follower_merged_with_contact=merged, duplicate_recorded_once=once, forged_status=result.status or 0,
        member_portrait=member_portrait, corp_tags_sent=mirrored.sent, member_corp_tags=shown,
        pushed_card=pushed, chat_answers=answers, campaign_sent=sent, campaign_effect=effect,
    )


def _plain(value: object) -> str:
    if value is None:
        return texts.TAG_NONE
    return "、".join(map(str, value)) if isinstance(value, list) else str(value)


async def _portrait(
    out: Console, db: Database, graph: IdentityGraph, person: str, guide: str, settings: Settings
) -> str:
    if not person:
        return ""
    async with db.transaction() as session:
        found = await portrait(session, graph, person, settings.today())
    if found is None:
        return ""
    text = render(found)
    out.print(texts.DEMO_PORTRAIT_INTRO.format(guide=guide))
    for line in text.splitlines():
        out.print("    " + line, highlight=False, markup=False)
    return text


async def _pushed_card(out: Console, sim: TencentSimulator, guide: str, within: float = 5.0) -> dict[str, Any] | None:
    """The portrait card WeCom delivered to the guide's phone, and the customer's welcome."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    cards: list[Any] = []
    while loop.time() < deadline:
        cards = [m for m in sim.wecom.app_messages if m.msgtype == "template_card" and guide in m.touser]
        if cards and sim.wecom.welcome_messages:
            break
        await asyncio.sleep(0.05)
    if not cards:
        out.print(texts.DEMO_NO_CARD)
        return None
    card = cards[-1].body["template_card"]
    out.print(texts.DEMO_CARD_INTRO.format(guide=guide))
    out.print(f"    {card['main_title']['title']}｜{card['main_title'].get('desc', '')}", highlight=False, markup=False)
    for row in card["horizontal_content_list"]:
        out.print(f"    {row['keyname']}：{row['value']}", highlight=False, markup=False)
    out.print(f"    {card['sub_title_text']}", highlight=False, markup=False)
    out.print(texts.DEMO_CARD_LINK.format(url=card["card_action"]["url"]), highlight=False, markup=False)
    for welcome in sim.wecom.welcome_messages[-1:]:
        out.print(texts.DEMO_WELCOME.format(text=welcome.get("text", {}).get("content", "")), highlight=False,
                  markup=False)
    return dict(card)


async def _chat(out: Console, sim: TencentSimulator, driver: CallbackDriver, userid: str, command: str,
                within: float = 20.0) -> list[str]:
    """Send one command as a WeCom app message; print what the bot answered (texts, pictures)."""
    before = len([m for m in sim.wecom.app_messages if userid in m.touser])
    out.print(texts.DEMO_CHAT_ASK.format(userid=userid, command=command), highlight=False, markup=False)
    await driver.wecom_text(userid, command)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    received: list[Any] = []
    while loop.time() < deadline:
        received = [m for m in sim.wecom.app_messages if userid in m.touser][before:]
        texts_in = [m for m in received if m.msgtype == "text" and m.body["text"]["content"] != texts.CHAT_WORKING]
        if texts_in and (not _expects_chart(command) or any(m.msgtype == "image" for m in received)):
            break
        await asyncio.sleep(0.05)
    shown = []
    for message in received:
        said = message.body["text"]["content"] if message.msgtype == "text" else texts.DEMO_CHAT_PICTURE
        shown.append(said)
        out.print("    " + said.replace("\n", "\n    "), highlight=False, markup=False)
    return shown


async def _campaign_runs(
    out: Console, db: Database, workdir: Path, graph: IdentityGraph, store_id: str, within: float = 30.0
) -> tuple[int, str]:
    """Wait until the confirmed campaign's messages are sent; then an evening POS export where
    every second customer who got the message buys, and every fourth of the control group.
    Returns (messages sent, the campaign's name)."""
    from profile_store.campaigns import latest_campaign, targets

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    rows: list[dict[str, Any]] = []
    name = ""
    while loop.time() < deadline:
        async with db.transaction() as session:
            found = await latest_campaign(session)
            rows = await targets(session, found[0]) if found else []
        name = found[1] if found else ""
        if rows and not any(r["outcome"] == "planned" for r in rows):
            break
        await asyncio.sleep(0.2)
    sent = [r["person_id"] for r in rows if r["outcome"] in ("sent", "delivered")]
    control = [r["person_id"] for r in rows if r["outcome"] == "control"]
    held = len(rows) - len(sent) - len(control)
    out.print(texts.DEMO_CAMPAIGN_SENT.format(sent=len(sent), control=len(control), held=held))
    buyers = sent[::2] + control[::4]
    async with db.transaction() as session:
        members = await lookup.member_ids_of(session, buyers)
    paid_at = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    evening = workdir / "pos-campaign"
    shutil.rmtree(evening, ignore_errors=True)
    evening.mkdir()
    _write_csv(evening / "orders.csv", ["order_id", "channel", "store_id", "paid_at", "amount", "list_amount",
                                        "coupon_code", "status", "member_id", "phone", "unionid", "miniapp_openid"],
               [[f"OCAMP{i:04d}", "pos", store_id, paid_at, "268.00", "298.00", "", "paid", member, "", "", ""]
                for i, member in enumerate(members.values())])
    await Importer(db, graph.vault, graph).run(evening, workdir / "rejects-campaign.csv")
    out.print(texts.DEMO_CAMPAIGN_BOUGHT.format(buyers=len(members)))
    return len(sent), name


def _expects_chart(command: str) -> bool:
    return command in texts.DEMO_CHAT_CHARTED


async def _store_cards(out: Console, sim: TencentSimulator, since: int, within: float = 3.0) -> None:
    """Who got a card for a follow through a store's OA QR code (every guide of that store)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    guides: list[str] = []
    while loop.time() < deadline and not guides:
        await asyncio.sleep(0.1)
        guides = [u for m in sim.wecom.app_messages[since:] if m.msgtype == "template_card" for u in m.touser]
    if guides:
        title = sim.wecom.app_messages[-1].body["template_card"]["main_title"]["title"]
        out.print(texts.DEMO_STORE_CARDS.format(guides="、".join(sorted(guides)), title=title), highlight=False)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

