"""Sending planned marketing messages (issue 6, items 2, 4 and 5).

`CampaignSender` claims due `campaign_target` rows (profile_store/campaign_outbox.py: a 60 s lease
on `claimed_until`, SKIP LOCKED on PostgreSQL, claims serialised by an advisory lock), re-checks
each row right before it is sent — campaign paused (left alone) or cancelled (expired), opt-out
of the row's channel, the frequency cap across all campaigns and journeys, quiet hours (the row's
`due_at` moves to the next 09:00 local) — and sends:

- `wecom`: the claimed rows of one (campaign, wave, guide, variant) become ONE
  `add_msg_template` call per `mass_send_limit` (10 000) external_userids. The batch is recorded
  (`campaign_send`, status pending, rows `sending` with the batch id) BEFORE the call; msgid,
  `fail_list` and the rows' `sent` are written in one transaction after it. Send results
  (`get_groupmsg_send_result`, after the guide confirmed in the client) turn rows `delivered`.
- `oa_template` (`client_msg_id` = our row key: Tencent sends it once), `oa_custom` (text, within
  48 h) and `sms` (`SmsSender`, `out_id` = our row key; the phone decrypted with the PiiVault):
  one call per row, `concurrency` at a time, outcomes written every `chunk` rows.

A variant's WeChat card goes as the card itself only in customer-service messages; WeCom mass
sends (a link attachment), template messages (their `url`) and SMS (in the text) carry a signed,
expiring claim link instead (bot/claim_links.py: `/c/{token}` → the card's landing page).

Errors: 45009/45033 pause the whole channel for `channel_backoff` s (rows go back to planned,
due when the pause ends, no attempt counted: nothing is lost); -1 and network failures retry the
row with exponential backoff, at most `max_attempts` attempts; any other errcode is final
(60111, 84061, 43004, 40003, …: `failed`, with the error kept in `last_error`).

Exactly once. A row is marked sent in the short transaction that records its call's answer; a
crash between Tencent's answer and that commit leaves the row claimed, and it is sent again when
the lease runs out. That window is one call plus one commit: for OA template messages and SMS
the resend carries the same idempotency key (client_msg_id / out_id), so the provider does not
send twice; for a customer-service message (no such key in Tencent's API) the window remains.
For WeCom a resend would be a second mass message to up to 10 000 customers, so a batch left
`pending` by a dead sender is first looked for at Tencent (`_recover`): the guide's mass messages
since the batch was recorded (`get_groupmsg_list_v2`) whose recipients
(`get_groupmsg_send_result`) are exactly the batch's customers; a match is adopted (rows sent,
msgid kept), and only when there is none are the rows sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import texts
from bot.claim_links import ClaimLinks
from bot.tencent.errors import RATE_LIMITED, TencentAPIError, TencentError, TencentNetworkError
from bot.waiting import wait_set
from campaigns.plan import PlanRules, out_of_quiet_hours, parse_quiet_hours
from campaigns.sms import SmsError, SmsSender
from profile_store import campaign_outbox as co
from profile_store.campaign_outbox import Key, Target
from profile_store.db import Database
from profile_store.pii import PiiVault

log = logging.getLogger(__name__)

LIST_V2 = "/cgi-bin/externalcontact/get_groupmsg_list_v2"
ADOPTED = "adopted: found at Tencent after its answer was lost"
# get_groupmsg_send_result status: 0 not sent yet, 1 sent, 2 not a contact, 3 already got a mass message
WECOM_RESULT_ERRORS = {2: "WeCom: no longer a contact of the guide", 3: "WeCom: already got another mass message"}


@dataclass(frozen=True)
class SendParams:
    """What the sender needs from settings (see the report for the QIANMIAN_CAMPAIGN_* names)."""

    claim_batch: int = 5000
    lease_seconds: float = 60.0
    mass_send_limit: int = 10_000  # external_userids per add_msg_template call (Tencent's limit)
    cap: int = 2  # marketing messages per person ...
    cap_days: int = 7  # ... per this many days, across all campaigns and journeys
    quiet_hours: str = "21:00-09:00"  # local; "off": none (as QIANMIAN_QUIET_HOURS for the planner)
    timezone: str = "Asia/Shanghai"
    oa_template_id: str = ""  # template of `oa_template` messages
    oa_template_field: str = "content"  # the template's data field the variant's content goes in
    concurrency: int = 16  # per-row calls (OA, SMS) in flight
    mass_concurrency: int = 4  # add_msg_template calls (different guides) in flight
    chunk: int = 200  # per-row outcomes written every this many rows
    interval: float = 5.0  # seconds between looks when nothing is due
    max_attempts: int = 3  # -1 / network: a row is tried at most this many times
    retry_base: float = 5.0
    max_backoff: float = 600.0
    channel_backoff: float = 30.0  # 45009 / 45033: the channel pauses this long
    result_check_seconds: float = 300.0  # send results of a WeCom batch fetched again after this
    result_days: float = 3.0  # ... for this long after the send

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SendParams:
        """The planner's protection settings (QIANMIAN_CAP_MESSAGES, _CAP_DAYS, _QUIET_HOURS, _TZ)
        and, when the settings have them, the sender's own (QIANMIAN_CAMPAIGN_*)."""
        values: dict[str, Any] = {
            "cap": getattr(settings, "cap_messages", cls.cap),
            "cap_days": getattr(settings, "cap_days", cls.cap_days),
            "quiet_hours": getattr(settings, "quiet_hours", cls.quiet_hours),
            "timezone": getattr(settings, "tz", cls.timezone),
        }
        for name in ("oa_template_id", "claim_batch", "lease_seconds", "concurrency", "interval", "max_attempts",
                     "channel_backoff", "result_check_seconds"):
            value = getattr(settings, f"campaign_{name}", None)
            if value is not None:
                values[name] = value
        return cls(**{**values, **overrides})


@dataclass
class _RowResult:
    sent: list[Key] = field(default_factory=list)
    failed: list[tuple[Key, str]] = field(default_factory=list)
    deferred: list[tuple[Key, datetime, str, bool]] = field(default_factory=list)


class _Undeliverable(Exception):
    """No address, no client, no content: the row can never be sent."""


class CampaignSender:
    def __init__(
        self,
        db: Database,
        *,
        wecom: Any = None,
        oa: Mapping[str, Any] | None = None,
        sms: SmsSender | None = None,
        vault: PiiVault | None = None,
        params: SendParams | None = None,
        errors: Any = None,
        clock: Callable[[], datetime] | None = None,
        claims: ClaimLinks | None = None,
    ) -> None:
        self.db = db
        self.claims = claims  # coupon claim links (bot/claim_links.py); None: a card goes only in OA custom
        self.wecom = wecom
        self.oa = dict(oa or {})  # appid → OfficialAccountClient
        self.sms = sms
        self.vault = vault
        self.params = params or SendParams()
        self.errors = errors  # bot.dispatcher.ErrorReporter (report(exc, where=, key=))
        self.clock = clock or (lambda: datetime.now(UTC))
        start, end = parse_quiet_hours(self.params.quiet_hours)
        self._rules = PlanRules(self.params.cap, self.params.cap_days, start, end, self.params.timezone)
        self._paused: dict[str, datetime] = {}  # channel → until (45009 / 45033)
        self._limit = asyncio.Semaphore(self.params.concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.calls = 0  # Tencent / SMS send calls made (benchmarks)

    # ------------------------------------------------------------------ running

    def wake(self) -> None:
        """Rows were planned or a campaign resumed: look now rather than at the next interval."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="campaign-sender")

    async def stop(self) -> None:
        """Stop; a row being sent keeps its lease and is sent (or recovered) later."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception as exc:
                self._report(exc, "claim")
                handled = 0
            if handled:
                continue
            await wait_set(self._wake, self.params.interval)

    async def run_once(self) -> int:
        """Recover dead batches, send one claim of due rows, fetch due send results; returns how
        many rows were handled (0: nothing was due)."""
        handled = await self.recover()
        handled += await self.send_due()
        await self.check_results()
        if handled:
            async with self.db.transaction() as session:
                await co.advance_campaigns(session)
        return handled

    async def drain(self, rounds: int = 100) -> None:
        """Send until nothing is due (tests, demo)."""
        for _ in range(rounds):
            if not await self.run_once():
                return

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def _report(self, exc: BaseException, key: str) -> None:
        if self.errors is not None:
            self.errors.report(exc, where="campaign-send", key=key)
        else:
            log.error("campaign send failed for %s: %r", key, exc, exc_info=exc)

    # ------------------------------------------------------------------ rules

    def quiet_until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours `now` is in (UTC), or None when sending is allowed (the
        planner's rule: campaigns.plan.out_of_quiet_hours)."""
        free = out_of_quiet_hours(now, self._rules)
        return free if free > now else None

    @staticmethod
    def _lane(channel: str) -> str:
        return "oa" if channel.startswith("oa") else channel

    def _pause(self, channel: str, now: datetime) -> datetime:
        until = now + timedelta(seconds=self.params.channel_backoff)
        lane = self._lane(channel)
        self._paused[lane] = max(until, self._paused.get(lane, until))
        log.warning("campaign send: %s rate limited, paused until %s", lane, self._paused[lane])
        return self._paused[lane]

    def _paused_until(self, channel: str, now: datetime) -> datetime | None:
        until = self._paused.get(self._lane(channel))
        return until if until is not None and until > now else None

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.params.max_backoff, self.params.retry_base * 2 ** min(attempts, 10)))

    # ------------------------------------------------------------------ claim and re-check

    async def send_due(self) -> int:
        p = self.params
        now = self._now()
        async with self.db.transaction() as session:
            await co.expire_cancelled(session)
            targets, mine = await co.claim(session, now=now, lease=p.lease_seconds, limit=p.claim_batch)
            if not targets:
                return 0
            quiet = self.quiet_until(now)
            if quiet is not None:
                await co.defer(session, [t.key for t in targets], quiet, error="quiet hours")
                return len(targets)
            ready: list[Target] = []
            waiting: dict[tuple[datetime, str], list[Key]] = defaultdict(list)
            for t in targets:
                until = self._paused_until(t.channel, now)
                if until is not None:
                    waiting[(until, self._lane(t.channel))].append(t.key)
                else:
                    ready.append(t)
            for (until, lane), keys in waiting.items():
                await co.defer(session, keys, until, error=f"{lane} rate limited")
            opted = {t.key for t in await co.opted_out(session, ready)}
            await co.end(session, opted, co.OPTED_OUT, "opted out (at dispatch)")
            ready = [t for t in ready if t.key not in opted]
            since = now - timedelta(days=p.cap_days)
            persons = sorted({t.person_id for t in ready})
            counts = await co.recent_counts(session, persons, since=since, now=now, mine=mine)
            capped: list[Key] = []
            go: list[Target] = []
            for t in sorted(ready, key=lambda t: (t.campaign_id, t.wave)):
                if t.service:  # answers the customer's own action: no cap, counts for none
                    go.append(t)
                    continue
                n = counts.get(t.person_id, 0)
                if n >= p.cap:
                    capped.append(t.key)
                else:
                    counts[t.person_id] = n + 1
                    go.append(t)
            await co.end(session, capped, co.CAPPED, f"frequency cap ({p.cap} per {p.cap_days} days, at dispatch)")
            by_channel: dict[str, list[Target]] = defaultdict(list)
            for t in go:
                by_channel[t.channel].append(t)
            unknown = [t.key for ch, ts in by_channel.items() if ch not in co.OPT_OUT_OF for t in ts]
            await co.end(session, unknown, co.FAILED, "no channel")
            kinds = {"wecom": "external_userid", "oa_template": "openid", "oa_custom": "openid", "sms": "phone"}
            address: dict[str, dict[str, str]] = {}
            for kind in set(kinds[ch] for ch in by_channel if ch in kinds):
                persons = sorted({t.person_id for ch, ts in by_channel.items() if kinds.get(ch) == kind for t in ts})
                address[kind] = await co.addresses(session, persons, kind)
            variants = await co.variants(session, {t.campaign_id for t in go})
        contents = {cid: _variants(raw) for cid, raw in variants.items()}
        wecom_rows = sorted(by_channel.get("wecom", []), key=lambda t: (t.campaign_id, t.wave, t.guide_id, t.variant))
        other = [t for ch in ("oa_template", "oa_custom", "sms") for t in by_channel.get(ch, [])]
        await asyncio.gather(
            self._send_wecom(wecom_rows, address.get("external_userid", {}), contents),
            self._send_rows(other, address, contents),
        )
        return len(targets)

    # ------------------------------------------------------------------ WeCom mass sends

    async def _send_wecom(
        self, rows: Sequence[Target], external: Mapping[str, str], contents: Mapping[int, dict[str, dict[str, Any]]]
    ) -> None:
        groups: dict[tuple[int, int, str, str], list[Target]] = defaultdict(list)
        for t in rows:
            groups[(t.campaign_id, t.wave, t.guide_id, t.variant)].append(t)
        limit = asyncio.Semaphore(max(1, self.params.mass_concurrency))

        async def one(key: tuple[int, int, str, str], members: list[Target]) -> None:
            async with limit:
                await self._send_group(key, members, external, contents)

        await asyncio.gather(*(one(key, members) for key, members in groups.items()))

    async def _send_group(
        self, key: tuple[int, int, str, str], members: list[Target], external: Mapping[str, str],
        contents: Mapping[int, dict[str, dict[str, Any]]],
    ) -> None:
        """One (campaign, wave, guide, variant): one add_msg_template per `mass_send_limit` customers."""
        undeliverable: list[tuple[Key, str]] = []
        content = _content(contents.get(key[0], {}), key[3])
        card = _card(contents.get(key[0], {}), key[3])
        if self.wecom is None:
            undeliverable = [(t.key, "WeCom API not configured") for t in members]
        elif not key[2]:
            undeliverable = [(t.key, "no guide to send through") for t in members]
        elif not content:
            undeliverable = [(t.key, f"variant {key[3]!r} has no content") for t in members]
        else:
            undeliverable = [(t.key, "no external_userid") for t in members if t.person_id not in external]
        if undeliverable:
            async with self.db.transaction() as session:
                for why in sorted({why for _, why in undeliverable}):
                    await co.end(session, [k for k, w in undeliverable if w == why], co.FAILED, why)
        bad = {k for k, _ in undeliverable}
        members = [t for t in members if t.key not in bad]
        limit = max(1, self.params.mass_send_limit)
        for start in range(0, len(members), limit):
            try:
                await self._mass_send(key, members[start : start + limit], external, content, card)
            except Exception as exc:  # the batch stays pending: recovered after its lease
                self._report(exc, f"batch {key}")

    async def _mass_send(
        self, key: tuple[int, int, str, str], members: Sequence[Target], external: Mapping[str, str], content: str,
        card: str = "",
    ) -> None:
        p = self.params
        now = self._now()
        until = self._paused_until("wecom", now)
        if until is not None:  # paused by an earlier group of this round
            async with self.db.transaction() as session:
                await co.defer(session, [t.key for t in members], until, error="wecom rate limited")
            return
        batch = uuid.uuid4().hex
        persons = [t.person_id for t in members]
        async with self.db.transaction() as session:
            await co.begin_batch(session, batch, key, persons, now=now, lease=p.lease_seconds)
        person_of = {external[t.person_id]: t.person_id for t in members}
        claim = self._claim_url(key[0], key[3], card, max((_due(t, now) for t in members), default=now))
        attachments = [] if claim is None else [{"msgtype": "link", "link": {
            "title": texts.CLAIM_LINK_TITLE, "desc": texts.CLAIM_LINK_DESC, "url": claim}}]
        try:
            self.calls += 1
            answer = await self.wecom.add_msg_template(
                sender=key[2], external_userid=list(person_of), text=content, attachments=attachments
            )
        except TencentAPIError as exc:
            await self._batch_refused(batch, key, members, exc)
            return
        except TencentNetworkError as exc:
            # No answer: the message may exist. The batch stays pending; `recover` looks for it
            # once the lease has run out, and sends again only if Tencent has nothing.
            log.warning("campaign batch %s: no answer (%s); recovered after the lease", batch, exc)
            return
        failed = [person_of[e] for e in answer.get("fail_list") or () if e in person_of]
        sent = [p_ for p_ in persons if p_ not in set(failed)]
        async with self.db.transaction() as session:
            await co.batch_sent(
                session, batch, key[:2], str(answer.get("msgid", "")), now=self._now(), sent=sent, failed=failed,
                check_at=self._now() + timedelta(seconds=p.result_check_seconds),
            )

    async def _batch_refused(
        self, batch: str, key: tuple[int, int, str, str], members: Sequence[Target], exc: TencentAPIError
    ) -> None:
        """Tencent answered an error: no message was created."""
        now = self._now()
        keys = [t.key for t in members]
        async with self.db.transaction() as session:
            if exc.errcode in RATE_LIMITED:
                await co.batch_ended(
                    session, batch, keys, status=co.BATCH_FAILED, error=str(exc), retry_at=self._pause("wecom", now),
                    attempt=False,
                )
            elif exc.retryable:
                final = [t.key for t in members if t.attempts + 1 >= self.params.max_attempts]
                retry = [t for t in members if t.attempts + 1 < self.params.max_attempts]
                await co.batch_ended(session, batch, [], status=co.BATCH_FAILED, error=str(exc), retry_at=now)
                await co.end(session, final, co.FAILED, f"gave up: {exc}")
                for t in retry:
                    await co.defer(session, [t.key], now + self._backoff(t.attempts), error=str(exc), attempt=True)
            else:
                await co.batch_ended(session, batch, keys, status=co.BATCH_FAILED, error=str(exc), retry_at=None)

    async def recover(self) -> int:
        """Batches left pending by a dead sender (or an unanswered call), once their lease ran out:
        adopted when Tencent has the message, sent again otherwise."""
        now = self._now()
        async with self.db.transaction() as session:
            stale = await co.stale_batches(session, now=now, lease=self.params.lease_seconds)
        for batch in stale:
            keys = [(batch.campaign_id, batch.wave, p) for p in batch.persons]
            try:
                msgid = await self._find_at_tencent(batch)
            except Exception as exc:  # cannot tell: keep it pending, look again after the lease
                self._report(exc, f"recover {batch.batch_id}")
                continue
            async with self.db.transaction() as session:
                if msgid is not None:
                    log.warning("campaign batch %s: found at Tencent as %s, adopted", batch.batch_id, msgid)
                    await co.batch_sent(
                        session, batch.batch_id, (batch.campaign_id, batch.wave), msgid, now=now,
                        sent=batch.persons, failed=[],
                        check_at=now + timedelta(seconds=self.params.result_check_seconds),
                        note=ADOPTED,
                    )
                else:
                    log.warning("campaign batch %s: not at Tencent, its %d rows are sent again",
                                batch.batch_id, len(keys))
                    await co.batch_ended(
                        session, batch.batch_id, keys, status=co.BATCH_ABANDONED, error="not found at Tencent",
                        retry_at=now, attempt=False,
                    )
        return sum(len(b.persons) for b in stale)

    async def _find_at_tencent(self, batch: co.Batch) -> str | None:
        """The msgid of the guide's mass message made for this batch, if Tencent has one."""
        if self.wecom is None or not batch.persons:
            return None
        async with self.db.read() as session:
            external = await co.addresses(session, batch.persons, "external_userid")
            known = await co.msgids(session, batch.guide_id, since=batch.created_at - timedelta(minutes=2))
        wanted = set(external.values())
        start = int(batch.created_at.timestamp()) - 60
        cursor = ""
        while True:
            body: dict[str, Any] = {
                "chat_type": "single", "start_time": start, "end_time": int(self._now().timestamp()) + 60,
                "creator": batch.guide_id, "filter_type": 2, "limit": 100,
            }
            if cursor:
                body["cursor"] = cursor
            page = await self.wecom.post(LIST_V2, body)
            for msg in page.get("group_msg_list") or ():
                msgid = str(msg.get("msgid", ""))
                if msgid and msgid not in known and await self._recipients(msgid, batch.guide_id) == wanted:
                    return msgid
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                return None

    async def _recipients(self, msgid: str, guide: str) -> set[str]:
        found: set[str] = set()
        cursor = ""
        while True:
            page = await self.wecom.get_groupmsg_send_result(msgid, guide, limit=1000, cursor=cursor or None)
            found.update(str(r.get("external_userid", "")) for r in page.get("send_list") or ())
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                return found

    async def check_results(self, *, now: datetime | None = None, limit: int = 50) -> int:
        """Fetch send results of WeCom batches whose time has come: rows the guide sent become
        `delivered`. Returns how many rows became delivered."""
        if self.wecom is None:
            return 0
        p = self.params
        now = now or self._now()
        async with self.db.transaction() as session:
            due = await co.batches_to_check(
                session, now=now, next_check=now + timedelta(seconds=p.result_check_seconds), limit=limit
            )
        total = 0
        for batch in due:
            try:
                results: list[tuple[str, int, int | None]] = []
                cursor = ""
                while True:
                    page = await self.wecom.get_groupmsg_send_result(
                        batch.msgid, batch.guide_id, limit=1000, cursor=cursor or None
                    )
                    for r in page.get("send_list") or ():
                        results.append((str(r.get("external_userid", "")), int(r.get("status", 0)), r.get("send_time")))
                    cursor = str(page.get("next_cursor") or "")
                    if not cursor:
                        break
            except TencentError as exc:
                log.warning("send results of batch %s: %s", batch.batch_id, exc)
                continue
            async with self.db.transaction() as session:
                persons = await co.persons_of(session, "external_userid", [e for e, _, _ in results])
                done_rows = [
                    (persons[e], datetime.fromtimestamp(int(at), UTC) if at else None, WECOM_RESULT_ERRORS.get(s, ""))
                    for e, s, at in results
                    if s != 0 and e in persons
                ]
                total += await co.delivered(session, batch.campaign_id, batch.wave, done_rows, now=now)
                finished = all(s != 0 for _, s, _ in results) or now - batch.created_at > timedelta(days=p.result_days)
                await co.batch_checked(session, batch.batch_id, done=finished)
        return total

    # ------------------------------------------------------------------ one call per row

    async def _send_rows(
        self, rows: Sequence[Target], address: Mapping[str, Mapping[str, str]],
        contents: Mapping[int, dict[str, dict[str, Any]]],
    ) -> None:
        for start in range(0, len(rows), self.params.chunk):
            chunk = rows[start : start + self.params.chunk]
            result = _RowResult()
            await asyncio.gather(*(self._send_row(t, address, contents, result) for t in chunk))
            failed: dict[str, list[Key]] = defaultdict(list)
            for k, why in result.failed:
                failed[why].append(k)
            deferred: dict[tuple[datetime, str, bool], list[Key]] = defaultdict(list)
            for k, due, why, attempt in result.deferred:
                deferred[(due, why, attempt)].append(k)
            async with self.db.transaction() as session:
                await co.mark_sent(session, result.sent, self._now())
                for why, keys in failed.items():
                    await co.end(session, keys, co.FAILED, why)
                for (due, why, attempt), keys in deferred.items():
                    await co.defer(session, keys, due, error=why, attempt=attempt)

    async def _send_row(
        self, t: Target, address: Mapping[str, Mapping[str, str]], contents: Mapping[int, dict[str, dict[str, Any]]],
        result: _RowResult,
    ) -> None:
        async with self._limit:
            now = self._now()
            until = self._paused_until(t.channel, now)
            if until is not None:
                result.deferred.append((t.key, until, f"{self._lane(t.channel)} rate limited", False))
                return
            try:
                content = _content(contents.get(t.campaign_id, {}), t.variant)
                if not content:
                    raise _Undeliverable(f"variant {t.variant!r} has no content")
                self.calls += 1
                card = _card(contents.get(t.campaign_id, {}), t.variant)
                if t.channel == "sms":
                    await self._sms(t, address.get("phone", {}), content, self._claim_url(
                        t.campaign_id, t.variant, card, _due(t, now)))
                else:
                    await self._oa(t, address.get("openid", {}), content, card)
                result.sent.append(t.key)
            except _Undeliverable as exc:
                result.failed.append((t.key, str(exc)))
            except (TencentAPIError, SmsError) as exc:
                code = exc.errcode if isinstance(exc, TencentAPIError) else exc.code
                if code in RATE_LIMITED:
                    result.deferred.append((t.key, self._pause(t.channel, now), str(exc), False))
                elif exc.retryable:
                    self._retry(t, exc, result, now)
                else:
                    result.failed.append((t.key, str(exc)))
            except TencentError as exc:  # network: no answer
                self._retry(t, exc, result, now)
            except Exception as exc:
                self._report(exc, f"{t.key}")
                self._retry(t, exc, result, now)

    def _retry(self, t: Target, exc: Exception, result: _RowResult, now: datetime) -> None:
        if t.attempts + 1 >= self.params.max_attempts:
            result.failed.append((t.key, f"gave up after {t.attempts + 1} attempts: {exc}"))
        else:
            result.deferred.append((t.key, now + self._backoff(t.attempts), str(exc), True))

    async def _oa(self, t: Target, openids: Mapping[str, str], content: str, card: str = "") -> None:
        value = openids.get(t.person_id)
        if not value or "/" not in value:
            raise _Undeliverable("no openid")
        appid, openid = value.split("/", 1)
        client = self.oa.get(appid)
        if client is None:
            raise _Undeliverable(f"official account {appid} not configured")
        if t.channel == "oa_custom":
            # The coupon itself goes first, as a WeChat card the customer claims with one tap, then
            # the words. Customer-service messages have no idempotency key: a crash between the two
            # calls and the commit can repeat them (the card is one claim per code either way).
            if card:
                await client.send_custom_message(openid, "wxcard", {"card_id": card})
            await client.send_custom_message(openid, "text", {"content": content})
            return
        if not self.params.oa_template_id:
            raise _Undeliverable("no OA template id configured")
        # A template message cannot carry a card: tapping it opens the card's claim link.
        await client.send_template_message(
            openid, self.params.oa_template_id, {self.params.oa_template_field: content},
            url=self._claim_url(t.campaign_id, t.variant, card, _due(t, self._now())), client_msg_id=row_key(t),
        )

    async def _sms(self, t: Target, phones: Mapping[str, str], content: str, claim: str | None = None) -> None:
        sealed = phones.get(t.person_id)
        if self.sms is None:
            raise _Undeliverable("SMS not configured")
        if not sealed or self.vault is None:
            raise _Undeliverable("no phone")
        text = content if claim is None else content + texts.CLAIM_SMS_SUFFIX.format(url=claim)
        await self.sms.send(self.vault.decrypt(sealed), text, out_id=row_key(t))

    def _claim_url(self, campaign_id: int, variant: str, card: str, due: datetime) -> str | None:
        """The claim link of a variant's card (None without a card or without links), valid from
        when the message goes out: its due time, or now for a message sent late (a paused
        campaign resumed a week on still sends links that work)."""
        if not card or self.claims is None:
            return None
        return self.claims.url(campaign_id, variant, card, sent_from=max(due, self._now()).timestamp())


def _due(t: Target, now: datetime) -> datetime:
    return co.utc(t.due_at) or now


def row_key(t: Target) -> str:
    """The idempotency key of one row at a provider (≤ 32 characters)."""
    return "qm" + hashlib.sha256(f"{t.campaign_id}:{t.wave}:{t.person_id}".encode()).hexdigest()[:30]


def _variants(raw: str) -> dict[str, dict[str, Any]]:
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return {}
    return {str(v.get("name", "")): v for v in items if isinstance(v, dict)}


def _card(variants: Mapping[str, Mapping[str, Any]], name: str) -> str:
    """The WeChat card (coupon) of a variant, when it names one."""
    v = variants.get(name)
    if v is None and len(variants) == 1:
        v = next(iter(variants.values()))
    coupon = (v or {}).get("coupon") or {}
    return str(coupon.get("card_id") or "") if isinstance(coupon, dict) else ""


def _content(variants: Mapping[str, Mapping[str, Any]], name: str) -> str:
    v = variants.get(name)
    if v is None and len(variants) == 1:
        v = next(iter(variants.values()))
    return str((v or {}).get("content") or "").strip()


# ---------------------------------------------------------------------- entry point (fault test, ops)


async def _main(args: argparse.Namespace) -> None:
    import aiohttp

    from bot.tencent.wechat import OfficialAccountClient
    from bot.tencent.wecom import WeComClient
    from campaigns.sms import SimulatorSms

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(message)s")
    db = Database(args.database_url)
    async with aiohttp.ClientSession() as http:
        wecom = None
        if args.wecom_base:
            wecom = WeComClient(
                http, db, base_url=args.wecom_base, corp_id=args.corp_id, secret=args.corp_secret,
                agent_id=args.agent_id, max_retries=args.max_retries, backoff=0.05, backoff_max=0.5,
            )
        oa = {}
        for pair in args.oa or ():
            appid, _, secret = pair.partition("=")
            oa[appid] = OfficialAccountClient(
                http, db, base_url=args.wechat_base or args.wecom_base, app_id=appid, secret=secret,
                max_retries=args.max_retries, backoff=0.05, backoff_max=0.5,
            )
        sender = CampaignSender(
            db, wecom=wecom, oa=oa, sms=SimulatorSms(http, args.sms_base) if args.sms_base else None,
            vault=PiiVault(args.secret_key) if args.secret_key else None,
            params=SendParams(
                claim_batch=args.claim_batch, lease_seconds=args.lease, oa_template_id=args.oa_template_id,
                channel_backoff=args.channel_backoff, retry_base=args.retry_base, cap=args.cap,
                quiet_hours=args.quiet_hours, max_attempts=args.max_attempts,
            ),
        )
        try:
            if args.once:
                await sender.run_once()
                return
            idle_since: float | None = None
            loop = asyncio.get_running_loop()
            while True:
                handled = await sender.run_once()
                if handled:
                    idle_since = None
                    continue
                async with db.read() as session:
                    left = await co.outcome_counts(session)
                if not left.get(co.PLANNED) and not left.get(co.SENDING):
                    idle_since = idle_since or loop.time()
                    if loop.time() - idle_since >= args.idle_exit:
                        return
                await asyncio.sleep(args.poll)
        finally:
            await db.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m campaigns.dispatch", description="Send due campaign messages.")
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--wecom-base", default="")
    ap.add_argument("--wechat-base", default="")
    ap.add_argument("--corp-id", default="")
    ap.add_argument("--corp-secret", default="")
    ap.add_argument("--agent-id", default="")
    ap.add_argument("--oa", action="append", help="appid=secret (repeatable)")
    ap.add_argument("--oa-template-id", default="")
    ap.add_argument("--sms-base", default="")
    ap.add_argument("--secret-key", default="")
    ap.add_argument("--claim-batch", type=int, default=5000)
    ap.add_argument("--lease", type=float, default=60.0)
    ap.add_argument("--channel-backoff", type=float, default=30.0)
    ap.add_argument("--retry-base", type=float, default=5.0)
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--max-retries", type=int, default=1, help="the Tencent client's own retries")
    ap.add_argument("--cap", type=int, default=2)
    ap.add_argument("--quiet-hours", default="21:00-09:00", help='local, e.g. "21:00-09:00", or "off"')
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--idle-exit", type=float, default=1.0, help="--loop: exit after idle this long")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true")
    mode.add_argument("--loop", action="store_true")
    asyncio.run(_main(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
