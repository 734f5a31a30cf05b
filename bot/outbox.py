"""Sending the outbox: portrait cards to guides, welcomes to new contacts, answers to staff.

Rows are written by handlers in the callback's own transaction (profile_store/outbox.py). The
sender is woken right after each batch commits, so a card leaves within milliseconds of the
callback being processed; it also looks every `interval` seconds for retries and for rows a dead
process left behind (their lease runs out). A round claims up to `batch` rows, reads what they
need (portraits, guides, stores, templates) in as few sessions as it can, sends them, and marks
them all in one short transaction; a Tencent failure (after the client's own retries of -1/45009/45033/timeouts and
its token refresh) reschedules the row with backoff until the message stops making sense (a
welcome code lives 20 s; a card is worth sending for as long as its link is valid).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.dispatcher import ErrorReporter
from bot.metrics import Metrics
from bot.portrait_card import card_message, portrait_card
from bot.portrait_links import PortraitLinks
from bot.settings import Settings
from bot.tencent.errors import TencentAPIError, TencentError
from bot.waiting import wait_set
from bot.welcome import render, template_for, welcome_kind
from profile_store import outbox
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.lookup import find_person
from profile_store.outbox import OutboxItem, Outcome
from profile_store.portrait import Portrait, portrait
from profile_store.staff import Staff, staff_by_id, store_names
from profile_store.welcome import Template, stored_templates

log = logging.getLogger(__name__)

WELCOME_ALREADY_SENT = 41051  # final: the code was used (by us after a lost answer, or by another app)
WELCOME_BUSY = 41096  # another app is sending the welcome now: may be retried
WELCOME_CODE_INVALID = 41050  # unknown or expired code: retrying cannot help
NO_SUCH_RECIPIENT = frozenset({60111, 81013})  # unknown userid; nobody valid to send to
MAX_BACKOFF = 600.0


class Undeliverable(Exception):
    """The message can never go out (unknown guide, person gone, ...): ended as failed."""


class Expired(Exception):
    """Too late to send (welcome code past its 20 s)."""


class AlreadyDone(Exception):
    """Tencent says it was done already (41051): ended as sent."""


Send = Callable[[OutboxItem], Awaitable[str | None]]


@dataclass(frozen=True)
class RoundReads:
    """What a round's rows need beyond their portraits, read once for all of them (one read
    session per round rather than one or two per row): the welcome guides, the stores named on
    cards and welcomes, the welcome templates (a marketer's edit applies from the next round)."""

    staff: dict[str, Staff] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)


class OutboxSender:
    def __init__(
        self,
        db: Database,
        graph: IdentityGraph,
        settings: Settings,
        links: PortraitLinks,
        services: Mapping[str, Any],
        *,
        errors: ErrorReporter,
        metrics: Metrics | None = None,
        batch: int = 32,
        concurrency: int = 8,
        yield_to: Callable[[float], Awaitable[bool]] | None = None,
        max_defer: float = 0.5,
    ) -> None:
        self.db = db
        self.graph = graph
        self.settings = settings
        self.links = links
        self.services = services  # "wecom" / "wechat" are made in the app's lifecycle
        self.errors = errors
        self.metrics = metrics
        self.batch = batch
        # The recorder's `wait_idle`: answering Tencent comes first (as for processing); at a
        # shop's pace it is idle within milliseconds and the card leaves at once.
        self.yield_to = yield_to
        self.max_defer = max_defer
        self._limit = asyncio.Semaphore(concurrency)
        self._interval = settings.outbox_interval_seconds
        self._peek = False
        self._watch = outbox.OutboxWatch(db)  # the look of `poll`; connects at its first use
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._portraits: dict[str, asyncio.Future[tuple[str, Portrait]]] = {}
        self._reads = RoundReads()
        self._senders: dict[str, Send] = {
            "portrait": self._portrait,
            "welcome": self._welcome,
            "text": self._text,
            "image": self._image,
        }

    # ------------------------------------------------------------------ running

    def wake(self) -> None:
        """New rows were committed: look now rather than at the next interval."""
        self._wake.set()

    def poll(self, interval: float) -> None:
        """Look every `interval` seconds, first with a read (no write lock while nothing is
        due): for a process whose rows are committed by others, which cannot wake it."""
        self._interval = interval
        self._peek = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        """Stop; a row being sent either finishes or keeps its lease and is sent again later."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Portrait reads shared by a round's rows run as their own tasks: end them too, so no
        # read session outlives the sender (the database is disposed next).
        reads = [f for f in self._portraits.values() if not f.done()]
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        self._portraits = {}
        await self._watch.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self.yield_to is not None:
                    await self.yield_to(self.max_defer)
                sent = await self.run_once()
            except Exception as exc:
                self.errors.report(exc, where="outbox", key="claim")
                sent = 0
            if sent:
                continue  # more may be due
            await wait_set(self._wake, self._interval)

    async def run_once(self) -> int:
        """Send what is due now; returns how many rows were handled.

        The rows' outcomes are written together in one short transaction at the end: on SQLite
        every write waits for the one writer, and callbacks are waiting to be recorded too."""
        if self._peek and not await self._watch.any_due():
            return 0
        async with self.db.transaction() as session:
            due = await outbox.claim_due(session, self.batch)
        if not due:
            return 0
        self._portraits = {}
        try:
            self._reads = await self._read_round(due)
        except Exception as exc:  # the database is away: the whole round is retried
            self.errors.report(exc, where="outbox", key=f"reads for a round of {len(due)}")
            outcomes = [self._retry(item, exc, reported=True) for item in due]
        else:
            outcomes = list(await asyncio.gather(*(self._deliver(item) for item in due)))
        async with self.db.transaction() as session:
            await outbox.mark_outcomes(session, outcomes)
        return len(due)

    async def _read_round(self, due: list[OutboxItem]) -> RoundReads:
        guides = {str(i.payload.get("guide") or "") for i in due if i.kind == "welcome"} - {""}
        stores = {str(i.payload.get("store_id") or "") for i in due if i.kind == "portrait"} - {""}
        if not guides and not stores:
            return RoundReads()
        async with self.db.read() as session:
            staff = await staff_by_id(session, guides)
            stores |= {member.store_id for member in staff.values() if member.store_id}
            names = await store_names(session, stores)
            templates = await stored_templates(session) if guides else {}
        return RoundReads(staff, names, templates)

    async def drain(self, rounds: int = 50) -> None:
        """Send until nothing is due (demo, tests)."""
        for _ in range(rounds):
            if not await self.run_once():
                return

    # ------------------------------------------------------------------ one row

    async def _deliver(self, item: OutboxItem) -> Outcome:
        async with self._limit:
            try:
                if item.expires_at is not None and datetime.now(UTC) >= item.expires_at:
                    raise Expired("expired before it could be sent")
                person = await self._senders[item.kind](item)
                result = Outcome(item.id, outbox.SENT, person_id=person)
            except AlreadyDone as exc:
                log.info("outbox %s: %s", item.key, exc)
                result = Outcome(item.id, outbox.SENT, note=str(exc))
            except (Undeliverable, Expired, KeyError) as exc:
                outcome = outbox.EXPIRED if isinstance(exc, Expired) else outbox.FAILED
                log.warning("outbox %s not sent (%s): %s", item.key, outcome, exc)
                result = Outcome(item.id, outcome, note=repr(exc))
            except Exception as exc:
                result = self._retry(item, exc)
            if self.metrics is not None:
                self.metrics.outbox_messages.labels(kind=item.kind, outcome=result.status).inc()
            return result

    def _retry(self, item: OutboxItem, exc: Exception, *, reported: bool = False) -> Outcome:
        if not reported and not isinstance(exc, TencentError):
            self.errors.report(exc, where="outbox", key=item.key)
        busy = isinstance(exc, TencentAPIError) and exc.errcode == WELCOME_BUSY
        backoff = 1.0 if busy else min(MAX_BACKOFF, 2.0 * 2 ** min(item.attempts, 10))
        if item.expires_at is not None and datetime.now(UTC) + timedelta(seconds=backoff) >= item.expires_at:
            log.warning("outbox %s expired after %d attempts: %s", item.key, item.attempts + 1, exc)
            return Outcome(item.id, outbox.EXPIRED, note=repr(exc))
        log.warning("outbox %s failed (retry in %.0fs): %s", item.key, backoff, exc)
        return Outcome(item.id, outbox.RETRY, note=repr(exc), retry_in=timedelta(seconds=backoff))

    async def _portrait_of(self, item: OutboxItem) -> tuple[str, Portrait]:
        """The person a row is about and their portrait, read once per person per round (a scan
        usually brings a card and a welcome), outside the write lock."""
        key = item.person_id or item.payload["identity"]
        pending = self._portraits.get(key)
        if pending is None:
            pending = self._portraits[key] = asyncio.ensure_future(self._read_portrait(item))
        return await asyncio.shield(pending)

    async def _read_portrait(self, item: OutboxItem) -> tuple[str, Portrait]:
        async with self.db.read() as session:
            if item.person_id:
                person = await self.graph.canonical(session, item.person_id)
            else:
                person = await find_person(session, self.graph, item.payload["identity"])
            if person is None:
                raise Undeliverable(f"no person for {item.payload.get('identity')!r}")
            data = await portrait(session, self.graph, person, self.settings.today(), stored=True)
        if data is None:
            raise Undeliverable(f"person {person} has no portrait (merged away?)")
        return person, data

    # ------------------------------------------------------------------ kinds

    def _wecom(self) -> Any:
        wecom = self.services.get("wecom")
        if wecom is None:
            raise Undeliverable("WeCom API not configured")
        return wecom

    async def _portrait(self, item: OutboxItem) -> str:
        """The card for the guide: portrait essentials and a link bound to that guide."""
        guide = item.payload["guide"]
        store_id = item.payload.get("store_id") or ""
        person, data = await self._portrait_of(item)
        store = self._reads.stores.get(store_id) if store_id else None
        link_id = hashlib.sha256(item.key.encode()).hexdigest()[:16]
        token, _link = self.links.issue(person, guide, link_id=link_id, issued_at=item.created_at.timestamp())
        card = portrait_card(data, url=self.links.url(token), store=store, scanned=bool(item.payload.get("scanned")))
        try:
            answer = await self._wecom().send_app_message(card_message(guide, card))
        except TencentAPIError as exc:
            if exc.errcode in NO_SUCH_RECIPIENT:
                raise Undeliverable(f"{guide} is not a member WeCom can message: {exc}") from exc
            raise
        if guide in str(answer.get("invaliduser", "")).split("|"):
            raise Undeliverable(f"{guide} cannot receive the app's messages")
        return person

    async def _welcome(self, item: OutboxItem) -> str:
        """`send_welcome_msg` with the contact's code, in the words its tags call for."""
        guide = item.payload["guide"]
        person, data = await self._portrait_of(item)
        staff = self._reads.staff.get(guide)
        store = self._reads.stores.get(staff.store_id) if staff and staff.store_id else None
        template = template_for(welcome_kind(data.tags, data.metrics), self._reads.templates)
        body = render(template, guide=staff.name if staff else None, store=store)
        try:
            await self._wecom().send_welcome_msg(
                item.payload["welcome_code"], text=body["text"], attachments=body.get("attachments", ())
            )
        except TencentAPIError as exc:
            if exc.errcode == WELCOME_ALREADY_SENT:
                raise AlreadyDone("welcome code already used (41051)") from exc
            if exc.errcode == WELCOME_CODE_INVALID:
                raise Undeliverable(f"welcome code refused: {exc}") from exc
            raise
        return person

    async def _text(self, item: OutboxItem) -> None:
        await self._wecom().send_text([item.payload["touser"]], item.payload["content"])
        return None

    async def _image(self, item: OutboxItem) -> None:
        path = Path(item.payload["path"])
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise Undeliverable(f"picture {path} cannot be read: {exc}") from exc
        wecom = self._wecom()
        media = await wecom.upload_media("image", path.name, data, "image/png")
        await wecom.send_app_message(
            {"touser": item.payload["touser"], "msgtype": "image", "image": {"media_id": media["media_id"]}}
        )
        return None
