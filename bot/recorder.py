"""Group commit of raw callbacks: a request is answered only once its record is durable.

Concurrent requests put their callback on a queue and wait on a future; one writer task takes
everything queued, inserts it in ONE transaction (ON CONFLICT (dedupe_key) DO NOTHING) and
resolves every future after the commit. One commit (one fsync) then serves many requests, which
keeps throughput close to a bare handler while never answering before the data is safe.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.waiting import wait_set
from profile_store import raw_events
from profile_store.db import Database
from profile_store.raw_events import NewRawEvent, StoredRawEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """What became of one callback: `raw` is set when it was new (to be processed)."""

    new: bool
    raw: StoredRawEvent | None


class RecorderStopped(RuntimeError):
    pass


class Recorder:
    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self.inbox = raw_events.InboxWriter(db)
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[NewRawEvent, asyncio.Future[Recorded]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._records = 0  # record() calls so far: wait_idle compares before and after a pause

    async def start(self) -> None:
        self._stopping = False
        self._writer = asyncio.create_task(self._run(), name="raw-event-recorder")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stopping = True
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        await self.inbox.close()

    async def record(self, event: NewRawEvent) -> Recorded:
        """Return after the callback is committed (or was already there); raises if it could not
        be written (the request must then fail so Tencent retries)."""
        if self._stopping or self._writer is None:
            raise RecorderStopped("recorder is not running")
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._idle.clear()
        self._records += 1
        await self._queue.put((event, future))
        return await future

    async def wait_idle(self, at_most: float, *, quiet: float = 0.005) -> bool:
        """True once nothing has been recorded for `quiet` seconds; False after `at_most`.

        Background processing calls this before each batch: answering Tencent comes first, and
        on SQLite (one writer) a processing transaction would otherwise hold up the records.

        Quiet is judged over a pause in which the event loop was free: requests that arrived
        while the loop was busy (processing the previous batch) reach `record` only after a few
        turns of the loop, so "nothing recorded lately" read at once could be the busy loop's
        own silence, and processing would go on in full batches through a flood."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if not await wait_set(self._idle, remaining):
                return False
            seen = self._records
            await asyncio.sleep(min(quiet, max(deadline - loop.time(), 0)))
            if self._records == seen and self._idle.is_set():
                return True

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:
                log.error("recording %d callbacks failed: %r", len(batch), exc, exc_info=exc)
                for _event, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()
                if self._queue.empty():
                    self._idle.set()

    async def _write(self, batch: list[tuple[NewRawEvent, asyncio.Future[Recorded]]]) -> None:
        # One row per dedupe key: a retry arriving in the same batch as its original is a duplicate.
        unique: dict[str, NewRawEvent] = {}
        for event, _future in batch:
            unique.setdefault(event.dedupe_key, event)
        new_ids = await self.inbox.write(list(unique.values()))
        answered: set[str] = set()
        for event, future in batch:
            raw_id = new_ids.get(event.dedupe_key)
            if raw_id is None or event.dedupe_key in answered:
                result = Recorded(new=False, raw=None)
            else:
                answered.add(event.dedupe_key)
                stored = StoredRawEvent(
                    id=raw_id,
                    dedupe_key=event.dedupe_key,
                    channel=event.channel,
                    account=event.account,
                    body=event.body,
                    status=raw_events.PENDING,
                    attempts=0,
                    received_at=event.received_at,
                )
                result = Recorded(new=True, raw=stored)
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(result)
