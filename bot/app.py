"""`create_app(settings)`: the whole bot as one aiohttp application, no module-level state.

Built here: database, identity graph, metrics, callback verification, recorder (group commit),
dispatcher with the handler routers. Started in the app's cleanup context: migrations, the HTTP
session and Tencent clients, the recorder's writer, the recovery sweeper; stopped in reverse order
on shutdown (queued records are written, background work gets a moment to finish, anything left
stays pending in the database for the next start).

`role` splits the bot across OS processes (`qianmian serve` does this; tests and the demo keep
the default "all", everything in one process):
- "edge": the HTTP side. Callbacks are verified, recorded durably and answered; nothing is
  processed or sent here (the dispatcher is not inline, no sweeper, sender or scheduler).
- "worker": no HTTP traffic. Processes the callbacks edges recorded (`Dispatcher.run_worker`:
  polls the database, claims), sends the outbox, runs the scheduled jobs.
- "sender": no HTTP traffic, no processing: sends the outbox (polling the database for rows
  another process committed) and campaigns, runs the scheduled jobs. Beside an "all" process
  made with `sends=False` (SQLite's default `serve`), so answering and processing have one
  core and reading portraits and talking to Tencent the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.callbacks import MAX_BODY, CallbackHandlers, CallbackVerifier, verification_middleware
from bot.chat.engine import Assistant
from bot.claim_links import ROUTE as CLAIM_ROUTE
from bot.claim_links import ClaimLinks, ClaimPage
from bot.corp_tags import CorpTagMirror
from bot.dispatcher import Dispatcher, ErrorReporter, Router
from bot.metrics import Metrics
from bot.outbox import OutboxSender
from bot.portrait_links import PortraitLinks
from bot.portrait_page import PortraitPage
from bot.recorder import Recorder
from bot.scheduler import JobScheduler
from bot.settings import Settings
from campaigns.dispatch import CampaignSender, SendParams
from campaigns.sms import SimulatorSms
from handlers.profiles import on_persons_touched
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.pii import PiiVault

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
RECORDER = web.AppKey("recorder", Recorder)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
GRAPH = web.AppKey("graph", IdentityGraph)
SCHEDULER = web.AppKey("scheduler", JobScheduler)
LINKS = web.AppKey("links", PortraitLinks)
OUTBOX = web.AppKey("outbox", OutboxSender)
CAMPAIGNS = web.AppKey("campaigns", CampaignSender)
ROLE = web.AppKey("role", str)
ROLES = ("all", "edge", "worker", "sender")


def default_routers() -> list[Router]:
    from handlers import cards, commands, contacts, followers, messages, scans

    # scans after contacts/followers: its outbox rows follow the facts they are about.
    return [contacts.router, followers.router, cards.router, messages.router, commands.router, scans.router]


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    wecom: Any | None = None,
    wechat: Mapping[str, Any] | None = None,
    routers: Sequence[Router] | None = None,
    sweep_interval: float = 30.0,
    sweep_grace: timedelta = timedelta(seconds=30),
    role: str = "all",
    sends: bool = True,
    beside_edge: bool = False,
) -> web.Application:
    """The bot. `db`, `wecom` (a WeComClient) and `wechat` (appid → OfficialAccountClient) may be
    given (tests, demo); otherwise they are made from `settings` and closed on shutdown. `role`:
    "all" (one process does everything), "edge", "worker" or "sender" (see the module's
    docstring). `sends=False`: this process sends nothing (a "sender" process does).
    `beside_edge`: a worker started by an edge on its machine (it yields to callbacks being
    recorded there, see below)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if not settings.secret_key:
        raise ValueError("QIANMIAN_SECRET_KEY is not set: personal data cannot be protected")
    database = db or Database(settings.database_url, slow_sql_ms=settings.slow_sql_ms)
    metrics = Metrics()
    graph = IdentityGraph(PiiVault(settings.secret_key), settings.identity_blocklist)
    recorder = Recorder(database)
    errors = ErrorReporter(metrics)
    services: dict[str, Any] = {"graph": graph, "settings": settings, "db": database, "wecom": wecom}
    services["wechat"] = dict(wechat or {})
    dispatcher = Dispatcher(
        database,
        routers if routers is not None else default_routers(),
        services,
        metrics=metrics,
        errors=errors,
        yield_to=recorder.wait_idle,  # answering Tencent comes before processing
        person_hooks=[on_persons_touched(settings)],
        inline=role == "all",
    )
    scheduler = JobScheduler(database, errors, settings.tz)
    links = PortraitLinks(settings.secret_key, settings.public_url, ttl_seconds=settings.portrait_link_hours * 3600)
    sender = OutboxSender(
        database, graph, settings, links, services, errors=errors, metrics=metrics, yield_to=recorder.wait_idle
    )
    if role == "worker":
        # No recorder here. Processing and sending yield to callbacks being recorded, as in one
        # process, when they compete with the edges: on SQLite for the write lock this process
        # takes, beside an edge for the cores (nice alone is not enough: the edge waits on its
        # commits, the worker fills those gaps and its PostgreSQL backend and WAL do not run
        # niced. Measured at 32 connections on PostgreSQL: 5.4 k answers/s with the worker
        # processing, 6.3 k yielding, 7.2 k stopped). A worker on a machine of its own does not.
        yield_to = dispatcher.edge_quiet if database.is_sqlite or beside_edge else None
        dispatcher.yield_to = sender.yield_to = yield_to
    elif role == "sender":
        # Rows are committed by other processes: nothing wakes this sender, it looks (a read,
        # taking no write lock) as often as workers look for callbacks.
        sender.yield_to = None
        sender.poll(settings.worker_poll_seconds)
    dispatcher.after_commit.append(sender.wake)
    services["sender"] = sender
    # Marketing messages (campaigns and journeys) from their own outbox, `campaign_target`; its
    # Tencent clients are the app's, set in the lifecycle once they exist.
    # A campaign's WeChat card reaches WeCom, OA-template and SMS customers as a claim link.
    claims = ClaimLinks.from_settings(settings)
    campaigns = CampaignSender(
        database, vault=graph.vault, params=SendParams.from_settings(settings), errors=errors, claims=claims
    )
    services["campaigns"] = campaigns
    services["assistant"] = Assistant(database, graph, settings, links)
    verifier = CallbackVerifier(settings)  # a malformed EncodingAESKey fails here, at start

    app = web.Application(client_max_size=MAX_BODY, middlewares=[verification_middleware(verifier, metrics)])
    app[SETTINGS] = settings
    app[DATABASE] = database
    app[METRICS] = metrics
    app[RECORDER] = recorder
    app[DISPATCHER] = dispatcher
    app[GRAPH] = graph
    app[SCHEDULER] = scheduler
    app[LINKS] = links
    app[OUTBOX] = sender
    app[CAMPAIGNS] = campaigns
    app[ROLE] = role
    CallbackHandlers(recorder, dispatcher, metrics).add_routes(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    page = PortraitPage(settings, database, graph, links, lambda: services.get("wecom"))
    app.router.add_get("/p/{token}", page.handle)
    app.router.add_get(CLAIM_ROUTE, ClaimPage(claims, database, metrics, lambda: services.get("wechat") or {}).handle)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await database.migrate()
        # Links an interrupted import left pending are attributed before any callback is taken.
        async with database.transaction() as session:
            await graph.resolve(session)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.api_timeout_seconds))
        if wecom is None:
            services["wecom"] = _wecom_client(http, database, settings)
        if wechat is None:
            services["wechat"] = _wechat_clients(http, database, settings)
        if role in ("all", "edge"):
            await recorder.start()
        sweeper: asyncio.Task[None] | None = None
        catch_up: asyncio.Task[Any] | None = None
        if role == "all":
            sweeper = asyncio.create_task(
                dispatcher.run_sweeper(interval=sweep_interval, grace=sweep_grace), name="callback-sweeper"
            )
        elif role == "worker":
            sweeper = asyncio.create_task(
                dispatcher.run_worker(
                    poll=settings.worker_poll_seconds, sweep_interval=sweep_interval, grace=sweep_grace
                ),
                name="callback-worker",
            )
        if role in ("worker", "sender") or (role == "all" and sends):
            sender.start()
            campaigns.wecom, campaigns.oa = services.get("wecom"), services.get("wechat") or {}
            campaigns.sms = SimulatorSms(http, settings.sms_base) if settings.sms_base else None
            campaigns.start()
            catch_up = _schedule(scheduler, database, settings, services)
            scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            if catch_up is not None:
                catch_up.cancel()
                await asyncio.gather(catch_up, return_exceptions=True)
            await recorder.stop()  # write what was queued: those requests get their answer
            if sweeper is not None:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)
            await dispatcher.drain()
            await sender.stop()
            await campaigns.stop()
            await http.close()
            if db is None:
                await database.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


def _schedule(
    scheduler: JobScheduler, db: Database, settings: Settings, services: Mapping[str, Any]
) -> asyncio.Task[Any] | None:
    """The bot's scheduled work: WeCom corp tags from their outbox; journeys (who entered one
    since the last pass, and their later steps) and campaigns' later waves; the nightly tag
    refresh (made up at start when today's did not happen). Returns the catch-up task, if any."""
    from campaigns.journeys import JourneyRules, run_journeys
    from campaigns.plan import PlanRules
    from campaigns.waves import plan_due_waves
    from profile_store.tagging.refresh import refresh_all

    mirror = CorpTagMirror(db, services.get("wecom"), per_second=settings.corp_tags_per_second)

    async def mirror_corp_tags() -> None:
        mirror.wecom = services.get("wecom")  # made in the lifecycle, after create_app
        await mirror.run_once()

    scheduler.every("corp-tags", settings.corp_tags_interval_seconds, mirror_corp_tags)

    async def journeys() -> None:
        entered = await run_journeys(db, now=datetime.now(UTC), rules=JourneyRules.from_settings(settings))
        if any(entered.values()):
            services["campaigns"].wake()  # their first steps are due now

    scheduler.every("journeys", settings.journey_interval_seconds, journeys)

    async def waves() -> None:
        planned = await plan_due_waves(
            db, now=datetime.now(UTC), today=settings.today(), rules=PlanRules.from_settings(settings)
        )
        if any(planned.values()):
            services["campaigns"].wake()

    scheduler.every("campaign-waves", settings.journey_interval_seconds, waves)
    if settings.tags_refresh_at == "off":
        return None

    async def refresh(day: Any) -> str:
        report = await refresh_all(db, day)
        return f"{report.persons} persons, {report.changes} changes"

    scheduler.daily("tags-refresh", settings.tags_refresh_at, refresh)
    now = datetime.now(ZoneInfo(settings.tz))
    if now.strftime("%H:%M") >= settings.tags_refresh_at:
        return asyncio.create_task(scheduler.run_daily("tags-refresh", refresh), name="tags-refresh-catch-up")
    return None


def _wecom_client(http: aiohttp.ClientSession, db: Database, settings: Settings) -> Any | None:
    if not (settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id):
        log.warning("WeCom API not configured: contacts are recorded without their unionid")
        return None
    from bot.tencent.wecom import WeComClient

    return WeComClient.from_settings(http, db, settings)


def _wechat_clients(http: aiohttp.ClientSession, db: Database, settings: Settings) -> dict[str, Any]:
    from bot.tencent.wechat import OfficialAccountClient

    return {
        app_id: OfficialAccountClient.from_settings(http, db, settings, app_id)
        for app_id, account in settings.official_accounts().items()
        if account.app_secret
    }


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
