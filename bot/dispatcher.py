"""Routing recorded callbacks to handlers, after the answer has gone out.

- `Router`: handlers register with `@router.event(SubscribeEvent)`; a handler is a plain async
  function that receives what it names by parameter name (`event`, `session`, `graph`,
  `settings`, `wecom`, `wechat`, plus what a prefetch step provided).
- `@router.prefetch(EventType)`: an idempotent read done *outside* the transaction (e.g. asking
  WeCom for a contact's unionid), so no database lock is held while Tencent answers. It returns a
  mapping whose keys become injectable names. It must tolerate API failure itself.
- `Dispatcher.process_batch(raws)`: parse → prefetch → ONE transaction: claim the raw events,
  run each one's handlers in its own savepoint, mark it done, then observe the identifiers of all
  their facts in bulk and resolve the identity graph once (`profile_store.live` defers the
  sightings of the facts handlers record; the commit comes after the resolve).
  An unknown or invalid callback is dead-lettered with its reason; a handler error rolls back that
  callback alone, counts an attempt, and after `max_attempts` the callback is dead-lettered (an
  operator can replay it). Callbacks answered together are processed in one batch.
- The sweeper processes callbacks still pending (after a crash or restart, or whose background
  processing failed), one claim at a time, safe with several processes on PostgreSQL.
- `run_worker`: processing in its own OS process (`qianmian serve` runs the HTTP edge in one
  process and workers in others). The edge only records and answers (`inline=False`: `spawn`
  does nothing); a worker polls the database for new pending callbacks (a cheap indexed read,
  no write lock on SQLite), processes them in batches with the same claims (on PostgreSQL it
  claims a batch first, FOR UPDATE SKIP LOCKED, so several workers each take their own; on
  SQLite the single write lock), and sweeps failed ones after a grace period.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.callback_xml import CallbackEvent, CallbackXmlError, UnknownEvent, parse_event
from bot.metrics import Metrics
from bot.waiting import wait_set
from profile_store import live, raw_events
from profile_store.db import Database
from profile_store.identity import Sighting
from profile_store.raw_events import StoredRawEvent

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class _Registration:
    types: tuple[type[CallbackEvent], ...]
    fn: Handler
    params: tuple[str, ...]
    required: frozenset[str]


def _registration(types: tuple[type[CallbackEvent], ...], fn: Handler) -> _Registration:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"handler {fn.__qualname__} must be an async function")
    parameters = inspect.signature(fn).parameters.values()
    names = tuple(p.name for p in parameters)
    required = frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty)
    return _Registration(types, fn, names, required)


class Router:
    """A module's handlers (aiogram-3 style)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.handlers: list[_Registration] = []
        self.prefetchers: list[_Registration] = []

    def event(self, *types: type[CallbackEvent]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers.append(_registration(types, fn))
            return fn

        return register

    def prefetch(self, *types: type[CallbackEvent]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.prefetchers.append(_registration(types, fn))
            return fn

        return register


async def _call(reg: _Registration, available: Mapping[str, Any]) -> Any:
    missing = reg.required - available.keys()
    if missing:
        raise TypeError(f"{reg.fn.__qualname__} wants {sorted(missing)}, which nothing provides")
    return await reg.fn(**{name: available[name] for name in reg.params if name in available})


class ErrorReporter:
    """The one place errors of handlers (and later of scheduled jobs) are reported."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    def report(self, exc: BaseException, *, where: str, key: str) -> None:
        log.error("%s failed for %s: %r", where, key, exc, exc_info=exc)
        if self.metrics is not None:
            self.metrics.handler_errors.labels(where=where).inc()


@dataclass
class _Plan:
    """One callback of a batch: what to do with it, decided before the transaction."""

    raw: StoredRawEvent
    event: CallbackEvent | None = None
    reason: str | None = None  # set: dead-letter it
    handlers: list[_Registration] = field(default_factory=list)
    available: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None  # a prefetch step failed: counts as a failed attempt


@dataclass
class Dispatcher:
    db: Database
    routers: Iterable[Router]
    services: Mapping[str, Any] = field(default_factory=dict)  # graph, settings, wecom, wechat, ...
    metrics: Metrics | None = None
    errors: ErrorReporter | None = None
    max_attempts: int = 5
    batch_size: int = 100
    # Awaited before each background batch (at most `max_defer` seconds): the recorder's
    # `wait_idle`, so processing yields to answering callbacks but is never starved. At a shop's
    # pace the recorder is idle within milliseconds and a scan is processed at once; under a flood
    # answering Tencent (within 5 s, or it retries) comes first and processing catches up after.
    # Under sustained load (not idle in time) batches shrink to `busy_batch_size`, so a
    # processing transaction never holds the (SQLite) write lock for long.
    yield_to: Callable[[float], Awaitable[bool]] | None = None
    max_defer: float = 0.5
    busy_batch_size: int = 10
    # Callbacks waiting in this process's memory for their turn (inline). Past this many, new
    # ones wait in the database only, where they are recorded anyway, and are read from there
    # once the queue is through: a flood's backlog held as tasks in memory (measured: 300 k
    # objects at 25 k callbacks) made every full garbage collection walk it, 100-190 ms pauses
    # of the process that answers Tencent.
    max_queued: int = 1000
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Awaited inside a batch's transaction with the persons its facts touched (after resolve).
    person_hooks: list[Callable[[Any, set[str], list[Sighting]], Awaitable[None]]] = field(default_factory=list)
    # Called after a batch committed (e.g. wake the outbox sender: its rows are now visible).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # False in an edge process: callbacks are recorded and answered here and processed by worker
    # processes, which find them in the database (`run_worker`); `spawn` then does nothing.
    inline: bool = True

    def __post_init__(self) -> None:
        self.routers = list(self.routers)
        self.errors = self.errors or ErrorReporter(self.metrics)
        self._queue: asyncio.Queue[tuple[StoredRawEvent, asyncio.Future[str]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._inbox_watch = raw_events.InboxWatch(self.db)
        # Set when a callback was left in the database (the queue was full): the worker reads
        # the backlog from there, oldest first, until none is left.
        self._overflow = False

    # ------------------------------------------------------------------ background work

    def spawn(self, raw: StoredRawEvent) -> asyncio.Task[Any] | None:
        """Process a just-recorded callback in the background (the answer does not wait).

        The task waits for its callback's turn in a batch: callbacks arriving together are
        processed in one transaction with one identity resolve, which is what keeps processing
        up with a burst of callbacks. Not inline (an edge process): a worker will find it.
        """
        if not self.inline:
            return None
        if self._overflow or len(self.tasks) >= self.max_queued:
            # Later ones wait in the database too, so the backlog is still worked oldest first.
            self._overflow = True
            self._ensure_worker()
            return None
        task = asyncio.create_task(self._queued(raw), name=f"callback-{raw.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="callback-dispatcher")

    async def _queued(self, raw: StoredRawEvent) -> str:
        self._ensure_worker()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        await self._queue.put((raw, future))
        return await future

    async def _work(self) -> None:
        while True:
            if self._overflow and self._queue.empty():
                await self._work_backlog()
                continue
            batch = [await self._queue.get()]
            limit = await self._batch_limit()
            while len(batch) < limit and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await self.process_batch([raw for raw, _ in batch])
            except Exception as exc:  # the batch stays pending in the DB: the sweeper retries
                assert self.errors is not None
                self.errors.report(exc, where="dispatcher", key=f"batch of {len(batch)}")
                outcomes = {}
            for raw, future in batch:
                if not future.done():
                    future.set_result(outcomes.get(raw.id, "failed"))

    async def _batch_limit(self) -> int:
        """A full batch once answering is quiet; a small one if it stays busy (see `yield_to`)."""
        if self.yield_to is not None and not await self.yield_to(self.max_defer):
            return self.busy_batch_size
        return self.batch_size

    async def _work_backlog(self) -> None:
        """One batch of the callbacks left in the database by a full queue, oldest first."""
        limit = await self._batch_limit()
        # New callbacks queue in memory again from here, unless this read finds the backlog is
        # not through. One spawned before this line, while the flag was set, was committed
        # before it was spawned: the read sees it. One both queued and read is claimed by
        # whichever batch comes first; the other skips it.
        self._overflow = False
        try:
            raws = await self.fresh_pending(limit)
            if len(raws) == limit:
                self._overflow = True  # more may wait in the database
            await self.process_batch(raws)
        except Exception as exc:
            # Still pending in the database: read again on the next turn, not left to the
            # sweeper (30 s and more later).
            self._overflow = True
            assert self.errors is not None
            self.errors.report(exc, where="dispatcher", key="callbacks waiting in the database")
            await asyncio.sleep(1.0)

    async def drain(self, wait_seconds: float = 10.0) -> None:
        """Let background work finish (shutdown); what does not finish stays pending in the DB."""
        if self.tasks:
            _done, pending = await asyncio.wait(set(self.tasks), timeout=wait_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await self._inbox_watch.close()

    # ------------------------------------------------------------------ processing

    def _matching(self, regs: Iterable[_Registration], event: CallbackEvent) -> list[_Registration]:
        return [reg for reg in regs if isinstance(event, reg.types)]

    async def process(self, raw_event_id: int, raw: StoredRawEvent | None = None) -> str:
        """Process one recorded callback; returns done | dead | skipped | failed."""
        if raw is None:
            async with self.db.transaction() as session:
                raw = await raw_events.get(session, raw_event_id)
        if raw is None:
            return "skipped"
        return (await self.process_batch([raw])).get(raw.id, "skipped")

    async def process_batch(self, raws: Sequence[StoredRawEvent]) -> dict[int, str]:
        """Process callbacks in ONE transaction, each in its own savepoint: a failing callback
        rolls back alone and counts an attempt; the others commit with one identity resolve."""
        if not raws:
            return {}
        # Prefetches (Tencent lookups) of a batch run side by side, before the transaction.
        plans = await self._plans(raws)

        async def claim(session: Any) -> set[int]:
            return await raw_events.claim_many(session, [plan.raw.id for plan in plans])

        return await self._in_one_transaction(claim, plans, {raw.id: "skipped" for raw in raws})

    async def process_fresh(self, limit: int) -> dict[int, str]:
        """A worker's batch on PostgreSQL: claim up to `limit` new callbacks first (locked for this
        transaction, skipping those another worker holds: FOR UPDATE SKIP LOCKED), then prefetch
        and process them in the same transaction.

        Claiming after the prefetch (as `process_batch` does) let every worker read the same
        oldest callbacks, prefetch them all, and all but one find them taken: a second worker
        added nothing (measured: 140/s with one, 120/s with two). Claimed first, each worker
        takes its own batch. The claim holds row locks on `raw_event` only while WeCom answers
        the lookups: the edges insert new rows and the sweeper skips locked ones, so nobody
        waits. Not on SQLite, where a transaction holds the one write lock (edges included)."""
        plans: list[_Plan] = []
        outcomes: dict[int, str] = {}

        async def claim(session: Any) -> set[int]:
            raws = await raw_events.claim_fresh(session, limit)
            outcomes.update({raw.id: "skipped" for raw in raws})
            plans.extend(await self._plans(raws))
            return {raw.id for raw in raws}

        return await self._in_one_transaction(claim, plans, outcomes)

    async def _in_one_transaction(
        self, claim: Callable[[Any], Awaitable[set[int]]], plans: list[_Plan], outcomes: dict[int, str]
    ) -> dict[int, str]:
        """A batch's transaction: `claim` (which may also find the batch, filling `plans` and
        `outcomes`) returns the ids this transaction holds; then each is applied. When the
        transaction itself fails, the batch is retried one callback per transaction to find
        the culprit."""
        started = time.perf_counter()
        failures: list[tuple[_Plan, Exception]] = []
        try:
            async with self.db.transaction() as session:
                claimed = await claim(session)
                failures = await self._apply_batch(session, plans, claimed, outcomes)
        except Exception as exc:
            if len(plans) > 1:  # the rollback released the claims: one transaction per callback
                return await self._one_by_one(plans, outcomes)
            if plans:
                failures = self._batch_failed(plans[0], exc, outcomes)
            elif not outcomes:
                raise  # not even the claim went through: the database is away
        return await self._finish(outcomes, failures, started)

    async def _plans(self, raws: Sequence[StoredRawEvent]) -> list[_Plan]:
        return list(await asyncio.gather(*(self._plan(raw) for raw in raws if raw.status == raw_events.PENDING)))

    async def _apply_batch(
        self, session: Any, plans: Sequence[_Plan], claimed: set[int], outcomes: dict[int, str]
    ) -> list[tuple[_Plan, Exception]]:
        """The inside of a batch's transaction: each claimed callback in its savepoint, then one
        bulk observe, one resolve and the person hooks. Returns the callbacks that failed."""
        failures: list[tuple[_Plan, Exception]] = []
        sightings: list[Sighting] = []
        for plan in plans:
            if plan.raw.id not in claimed:
                continue  # done meanwhile, or another process holds it
            if plan.error is not None:
                failures.append((plan, plan.error))
                continue
            # Facts collect their sightings; a failing callback's are dropped with it.
            own = live.defer_observations(session)
            try:
                async with session.begin_nested():
                    outcomes[plan.raw.id] = await self._apply(session, plan)
                sightings.extend(own)
            except Exception as exc:
                assert self.errors is not None
                self.errors.report(exc, where="callback handler", key=plan.raw.dedupe_key)
                failures.append((plan, exc))
            finally:
                live.stop_deferring(session)
        await raw_events.mark_done(session, [i for i, o in outcomes.items() if o == "done"])
        graph = self.services.get("graph")
        if graph is not None and sightings:
            # One bulk observe and one resolve for every fact of the batch.
            touched = await graph.attribute(session, sightings)
            for hook in self.person_hooks:  # e.g. tags: fresh in the same commit
                try:
                    async with session.begin_nested():
                        await hook(session, touched, sightings)
                except Exception as exc:
                    # The facts still commit; the nightly refresh repairs what the hook missed.
                    assert self.errors is not None
                    self.errors.report(exc, where="person hook", key=plans[0].raw.dedupe_key)
        return failures

    async def _one_by_one(self, plans: Sequence[_Plan], outcomes: dict[int, str]) -> dict[int, str]:
        for plan in plans:
            outcomes.update(await self.process_batch([plan.raw]))
        return outcomes

    def _batch_failed(self, plan: _Plan, exc: Exception, outcomes: dict[int, str]) -> list[tuple[_Plan, Exception]]:
        assert self.errors is not None
        self.errors.report(exc, where="callback transaction", key=plan.raw.dedupe_key)
        outcomes[plan.raw.id] = "failed"
        return [(plan, exc)]

    async def _finish(
        self, outcomes: dict[int, str], failures: list[tuple[_Plan, Exception]], started: float
    ) -> dict[int, str]:
        for plan, error in failures:
            outcomes[plan.raw.id] = await self._failed(plan.raw, error)
        if "done" in outcomes.values():
            for notify in self.after_commit:
                notify()
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    async def _plan(self, raw: StoredRawEvent) -> _Plan:
        """Parse and prefetch, outside any transaction."""
        plan = _Plan(raw)
        try:
            plan.event = parse_event(raw.body, channel=raw.channel, account=raw.account)
        except CallbackXmlError as exc:
            plan.reason = f"unparseable: {exc}"
            return plan
        if isinstance(plan.event, UnknownEvent):
            plan.reason = plan.event.reason
            return plan
        plan.handlers = [reg for router in self.routers for reg in self._matching(router.handlers, plan.event)]
        if not plan.handlers:
            plan.reason = f"no handler for {type(plan.event).__name__}"
            return plan
        plan.available = {**self.services, "event": plan.event, "raw_event_id": raw.id}
        try:
            for router in self.routers:
                for reg in self._matching(router.prefetchers, plan.event):
                    extra = await _call(reg, plan.available)
                    if extra:
                        plan.available.update(extra)
        except Exception as exc:
            assert self.errors is not None
            self.errors.report(exc, where="callback prefetch", key=raw.dedupe_key)
            plan.error = exc
        return plan

    async def _apply(self, session: Any, plan: _Plan) -> str:
        if plan.reason is not None:
            log.warning("dead-lettering callback %s: %s", plan.raw.dedupe_key, plan.reason)
            await raw_events.mark_dead(session, plan.raw.id, plan.reason)
            return "dead"
        available = {**plan.available, "session": session}
        for reg in plan.handlers:
            await _call(reg, available)
        return "done"  # marked done in bulk with the rest of the batch

    def _observe(self, outcomes: Mapping[int, str], seconds: float) -> None:
        if self.metrics is None:
            return
        for outcome in outcomes.values():
            self.metrics.processing_seconds.labels(outcome=outcome).observe(seconds)
            if outcome == "dead":
                self.metrics.dead_letters.inc()

    async def _failed(self, raw: StoredRawEvent, exc: Exception) -> str:
        """Count the failed attempt; dead-letter after too many (the rollback kept nothing)."""
        try:
            async with self.db.transaction() as session:
                attempts = await raw_events.bump_attempts(session, raw.id)
                if attempts >= self.max_attempts:
                    await raw_events.mark_dead(session, raw.id, f"handler failed {attempts} times; last error: {exc!r}")
                    return "dead"
        except Exception as inner:  # the database itself is failing: the sweeper retries later
            assert self.errors is not None
            self.errors.report(inner, where="attempt counter", key=raw.dedupe_key)
        return "failed"

    # ------------------------------------------------------------------ recovery

    async def sweep(self, *, older_than: timedelta | None = None, batch: int = 100) -> dict[str, int]:
        """Process every callback still pending (oldest first, in batches); returns outcomes."""
        outcomes: dict[str, int] = {}
        after = 0
        while True:
            async with self.db.transaction() as session:
                ids = await raw_events.pending_ids(session, after_id=after, older_than=older_than, limit=batch)
                raws = await raw_events.get_many(session, ids)
            if not ids:
                return outcomes
            if self.yield_to is not None and not await self.yield_to(self.max_defer):
                ids, raws = ids[: self.busy_batch_size], raws[: self.busy_batch_size]
            for outcome in (await self.process_batch(raws)).values():
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            after = ids[-1]

    async def run_sweeper(self, *, interval: float = 30.0, grace: timedelta = timedelta(seconds=30)) -> None:
        """At start every pending callback, then periodically those older than `grace` (younger
        ones are normally still being processed by the process that answered them)."""
        first = True
        while True:
            try:
                outcomes = await self.sweep(older_than=None if first else grace)
                if outcomes:
                    log.info("sweeper processed pending callbacks: %s", outcomes)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                assert self.errors is not None
                self.errors.report(exc, where="sweeper", key="pending callbacks")
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ worker process

    async def fresh_pending(self, limit: int) -> list[StoredRawEvent]:
        """New callbacks waiting for processing, oldest first (the failed ones are the
        sweeper's). A read: on SQLite it takes no write lock, so polling never holds up the
        edge's recorder."""
        async with self.db.read() as session:
            return await raw_events.fresh_pending(session, limit)

    async def edge_quiet(self, at_most: float, *, quiet: float = 0.01) -> bool:
        """True once no callback has been recorded (by any process) for `quiet` seconds; False
        after `at_most`. A worker's `yield_to` on SQLite: the edges' recorders and the workers
        share one write lock, and answering Tencent comes first (as within one process)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        last = await self._latest_recorded()
        while True:
            await asyncio.sleep(min(quiet, max(deadline - loop.time(), 0)))
            latest = await self._latest_recorded()
            if latest == last:
                return True
            if loop.time() >= deadline:
                return False
            last = latest

    async def _latest_recorded(self) -> int:
        return await self._inbox_watch.latest_id()

    async def run_worker(
        self,
        *,
        poll: float = 0.05,
        sweep_interval: float = 30.0,
        grace: timedelta = timedelta(seconds=30),
        wake: asyncio.Event | None = None,
    ) -> None:
        """Process callbacks recorded by edge processes, until cancelled.

        Every `poll` seconds (at once while a backlog lasts, or when `wake` is set) the new
        pending callbacks are processed in batches of `batch_size`; claims make it safe with
        other workers and with in-process dispatchers. Every `sweep_interval` seconds callbacks
        still pending after `grace` (failed attempts, lost claims) are swept as by `run_sweeper`.
        A worker that dies mid-batch leaves its callbacks pending (its transaction rolled back):
        the next worker processes them.
        """
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        first = True  # a worker starts with every pending callback, as a sweeper does
        while True:
            progressed = False
            try:
                if loop.time() >= next_sweep:
                    swept = await self.sweep(older_than=None if first else grace, batch=self.batch_size)
                    if swept:
                        log.info("worker swept pending callbacks: %s", swept)
                    first = False
                    next_sweep = loop.time() + sweep_interval
                # First a look, one statement on a kept connection (most polls find nothing).
                # On PostgreSQL the batch is then claimed, and read, by `process_fresh`;
                # elsewhere the rows read here are the batch.
                if await self._inbox_watch.any_fresh():
                    limit = await self._batch_limit()  # a short write while the edge is busy
                    if self.db.is_postgres:  # each worker claims a batch of its own, then prefetches
                        outcomes = await self.process_fresh(limit)
                    else:
                        outcomes = await self.process_batch(await self.fresh_pending(limit))
                    # Only real progress loops at once: a batch another process holds (skipped)
                    # or a failing database waits for the next poll instead of spinning.
                    progressed = len(outcomes) == self.batch_size and any(
                        o in ("done", "dead") for o in outcomes.values()
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again at the next poll
                assert self.errors is not None
                self.errors.report(exc, where="worker", key="pending callbacks")
            if progressed:
                await asyncio.sleep(0)
                continue
            if wake is None:
                await asyncio.sleep(poll)
                continue
            await wait_set(wake, poll)
            wake.clear()
