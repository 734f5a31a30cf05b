"""`qianmian serve`: the production bot, one stateless process of possibly several.

On a small machine the HTTP edge and the processing must not share one event loop (and so one
core): answering Tencent within its 5 s (and well under, for a burst) is the edge's only job.
So by default `serve` runs the edge in this process and `QIANMIAN_SERVE_WORKERS` worker
processes beside it (`python -m bot.serve worker`, supervised here; unset, one on PostgreSQL and
none on SQLite, where one process answers and processes and a sender process sends, see below):

- the edge verifies, records durably (group commit) and answers; it processes nothing;
- a worker finds the recorded callbacks in the database, processes them (claims make several
  workers, and several machines, safe), sends the outbox and runs the scheduled jobs.

A worker that dies is started again (with a growing pause if it keeps dying); what it was doing
stays pending in the database and is done by its successor. On SIGTERM/SIGINT the edge stops
taking requests, writes what it has queued, then asks its workers to finish (SIGTERM) and kills
those still running after the shutdown timeout. A worker whose edge disappears stops by itself.

`--role edge|worker` runs one side alone (e.g. edges and workers on different machines);
`QIANMIAN_SERVE_WORKERS=0` is the single-process bot (edge and processing on one loop), except
for sending: with `QIANMIAN_SERVE_SENDER` (unset: on SQLite) a sender process beside it
(`python -m bot.serve sender`, supervised like a worker) reads portraits and talks to Tencent
on the other core, finding what to send by polling the outbox (a read). Measured on SQLite at
100 k persons: one process reads, renders and sends a portrait in about half of a scan's time.

One edge process answers on one core. `QIANMIAN_SERVE_EDGES` edge processes (unset: one per core,
at most 4, on PostgreSQL; one on SQLite, where they would meet at the single write lock) share
the port through SO_REUSEPORT, the kernel spreading connections over them; this process is the
first and supervises the others as it does its workers (`python -m bot.serve edge`). Edges keep
nothing of their own: each records into the database, whose dedupe key makes a retry landing on
another edge a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

from aiohttp import web

from bot.app import create_app
from bot.metrics import SHARED_DIR_ENV, share_between_processes
from bot.settings import Settings
from bot.waiting import wait_set

log = logging.getLogger("qianmian.serve")

SHUTDOWN_TIMEOUT = 10.0
METRICS_DIR_PREFIX = "qianmian-metrics-"  # a serve's own metrics directory under the temp dir
METRICS_OWNER_FILE = "serve.pid"
WORKER_COMMAND = ("-m", "bot.serve", "worker")
SENDER_COMMAND = ("-m", "bot.serve", "sender")
EDGE_COMMAND = ("-m", "bot.serve", "edge")
ROLES = ("all", "edge", "worker", "sender")
SUPERVISED_ENV = "QIANMIAN_WORKER_SLOT"  # set by WorkerPool for the workers it starts
EDGE_ENV = "QIANMIAN_EDGE_SLOT"  # set for the extra edge processes the first edge starts
# The supervising edge's pid, given to the processes it starts: a child compares it with its
# parent pid to notice it was orphaned, even when that happened before it got round to looking.
SUPERVISOR_ENV = "QIANMIAN_SUPERVISOR_PID"


def _supervisor() -> int:
    """The pid of the edge that started this process (0: started by hand)."""
    try:
        return int(os.environ.get(SUPERVISOR_ENV, "0"))
    except ValueError:
        return 0


def settle_heap() -> int:
    """Move everything alive after start-up (modules, models, compiled SQL, clients: some 200 k
    objects) out of the garbage collector's reach; returns how many objects that was.

    CPython's full collection walks every tracked object. Under a flood of callbacks the young
    generations fill every few hundred requests and a full collection followed every few
    seconds, walking the whole start-up heap each time: a pause of tens of milliseconds, the
    p99 of `bench/callbacks.py` (38-128 ms before, 6-10 ms after, PostgreSQL, measured). Only for
    a `serve` process, once its app is up: objects frozen are never freed, which suits what lives
    as long as the process and nothing else (a test process, making app after app, must not)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _settle_heap_once_started(app: web.Application) -> None:
    log.debug("start-up heap frozen: %d objects", settle_heap())


class MissingSettings(RuntimeError):
    """`serve` cannot start: a required setting is absent (the message names it)."""


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings, *, role: str = "all", workers: int | None = None) -> None:
    """Run the bot until SIGTERM/SIGINT. `role` "all": the edge here plus `workers` worker
    processes (default `settings.workers_for_serve()`; 0: everything in this process)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    missing = settings.missing_for_serve()
    if missing:
        raise MissingSettings("serve 无法启动, 缺少设置 (missing settings): " + ", ".join(missing))
    _logging(settings)
    if role in ("worker", "sender"):
        asyncio.run(run_worker(settings, role=role))
        return
    count = settings.workers_for_serve() if workers is None else workers
    split = role == "edge" or count > 0
    replica = bool(os.environ.get(EDGE_ENV))  # an extra edge: it starts nothing of its own
    edges = settings.edges_for_serve()
    if replica:
        count = 0
    if edges > 1 and not split:  # edges process nothing: with no worker, one process does all
        if settings.serve_edges is not None:
            log.warning("QIANMIAN_SERVE_EDGES=%d needs worker processes (QIANMIAN_SERVE_WORKERS>0): one edge", edges)
        edges = 1
    # With no workers, sending may still get a process (and so a core) of its own.
    sender = role == "all" and not split and not replica and settings.sender_for_serve()
    several = split or edges > 1 or sender
    with _shared_metrics(several and not replica):
        _run_edge(settings, role=role, count=count, edges=edges, sender=sender, split=split, replica=replica)


@contextlib.contextmanager
def _shared_metrics(needed: bool) -> Iterator[None]:
    """For a serve of several processes: a fresh directory where they all keep their metrics, so
    /metrics on any edge shows the whole bot (bot/metrics.py). The operator's PROMETHEUS_MULTIPROC_DIR
    is used when set (emptied of a previous run's files first); otherwise a temporary directory,
    removed at exit. The processes this one starts inherit it; an extra edge uses what it got."""
    if not needed:
        yield
        return
    given = os.environ.get(SHARED_DIR_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # counters of a previous run must not add up with ours
            stale.unlink()
    else:
        sweep_orphaned_metrics(Path(tempfile.gettempdir()))
        directory = Path(tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX))
        (directory / METRICS_OWNER_FILE).write_text(str(os.getpid()))
    share_between_processes(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


def sweep_orphaned_metrics(parent: Path) -> list[Path]:
    """Remove the temporary metrics directories of serves that died without removing their own
    (SIGKILL, the OOM killer): each names its owner's pid, a directory whose owner is gone is
    removed. One without a readable owner is left alone (it may be being made right now); one
    whose pid was reused stays until that process is gone too. The directories removed."""
    removed = []
    for directory in parent.glob(METRICS_DIR_PREFIX + "*"):
        try:
            owner = int((directory / METRICS_OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def _run_edge(
    settings: Settings, *, role: str, count: int, edges: int, sender: bool, split: bool, replica: bool
) -> None:
    app = create_app(settings, role="edge" if split else "all", sends=not sender)
    if role == "all" and count > 0:
        app.cleanup_ctx.append(WorkerPool(count, settings).context)
    if sender:
        senders = WorkerPool(1, settings, command=[sys.executable, *SENDER_COMMAND], kind="sender")
        app.cleanup_ctx.append(senders.context)
    if replica and _supervisor() > 1:
        app.cleanup_ctx.append(_stop_when_orphaned)
    elif edges > 1:
        extra = WorkerPool(edges - 1, settings, command=[sys.executable, *EDGE_COMMAND], slot_env=EDGE_ENV, kind="edge")
        app.cleanup_ctx.append(extra.context)
    app.on_startup.append(_settle_heap_once_started)  # after every other start-up step
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=edges > 1 or replica,
        access_log=None,  # one line per callback would cost more than the callback; metrics count them
        print=lambda line: logging.getLogger("qianmian").info(line),
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )


async def _stop_when_orphaned(app: web.Application) -> AsyncIterator[None]:
    """An extra edge stops (as on SIGTERM: in-flight requests answered, queue written) when the
    edge that started it is gone, so a SIGKILLed `serve` leaves no edge answering on its port."""
    parent = _supervisor()

    async def watch() -> None:
        while os.getppid() == parent:  # nothing signals a parent's death to a child: polled  # noqa: ASYNC110
            await asyncio.sleep(1.0)
        log.warning("edge %d: its first edge (pid %d) is gone; stopping", os.getpid(), parent)
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(watch(), name="edge-orphan-watch")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------------- the worker process


async def run_worker(settings: Settings, *, parent: int | None = None, role: str = "worker") -> None:
    """One worker (or sender) process: the app in that role (no HTTP site), until SIGTERM/SIGINT,
    or, for one an edge started, until that edge is gone (`parent`: the pid to outlive no
    longer; by default the edge's when started by `WorkerPool`, else none). A sender is not
    niced: portraits are waited for at the counter."""
    if settings.worker_nice and role == "worker":
        with contextlib.suppress(OSError):
            os.nice(settings.worker_nice)
    if parent is None:
        parent = _supervisor()
    app = create_app(settings, role=role, beside_edge=parent > 1)
    runner = web.AppRunner(app, handle_signals=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # migrations, clients, the worker loop, the sender, the scheduler
    settle_heap()
    log.info("%s %d started", role, os.getpid())
    try:
        while not stop.is_set():
            await wait_set(stop, 1.0)
            if parent > 1 and os.getppid() != parent:
                log.warning("%s %d: its edge (pid %d) is gone; stopping", role, os.getpid(), parent)
                break
    finally:
        await runner.cleanup()  # the batch in hand commits or rolls back; the rest stays pending
        log.info("%s %d stopped", role, os.getpid())


# ---------------------------------------------------------------------- supervision


class WorkerPool:
    """Processes of an edge (its workers, or its extra edges): started with it, restarted when
    they die, stopped with it."""

    def __init__(
        self,
        count: int,
        settings: Settings,
        *,
        command: Sequence[str] | None = None,
        restart_pause: float = 0.5,
        max_pause: float = 30.0,
        stop_timeout: float = SHUTDOWN_TIMEOUT,
        slot_env: str = SUPERVISED_ENV,
        kind: str = "worker",
    ) -> None:
        self.count = count
        self.slot_env = slot_env
        self.kind = kind
        self.settings = settings
        self.command = list(command) if command is not None else [sys.executable, *WORKER_COMMAND]
        self.restart_pause = restart_pause
        self.max_pause = max_pause
        self.stop_timeout = stop_timeout
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs.values() if proc.returncode is None]

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: after the edge's own start, before its stop's end."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        self._stopping = False
        for slot in range(self.count):
            await self._spawn(slot)
            self._tasks.append(asyncio.create_task(self._watch(slot), name=f"serve-worker-{slot}"))

    async def _spawn(self, slot: int) -> None:
        env = {**os.environ, self.slot_env: str(slot), SUPERVISOR_ENV: str(os.getpid())}
        self.procs[slot] = await asyncio.create_subprocess_exec(*self.command, env=env)
        log.info("%s %d started (pid %d)", self.kind, slot, self.procs[slot].pid)

    async def _watch(self, slot: int) -> None:
        pause = self.restart_pause
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            code = await self.procs[slot].wait()
            if self._stopping:
                return
            log.error("%s %d (pid %d) exited with %s; starting it again", self.kind, slot, self.procs[slot].pid, code)
            # A worker that keeps dying at start (bad settings, database away) is not restarted in
            # a tight loop; one that ran a while is restarted at once.
            pause = self.restart_pause if loop.time() - started > 60 else min(pause * 2, self.max_pause)
            await asyncio.sleep(pause)
            if self._stopping:
                return
            self.restarts += 1
            await self._spawn(slot)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        running = [proc for proc in self.procs.values() if proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        if running:
            _done, late = await asyncio.wait(
                [asyncio.ensure_future(proc.wait()) for proc in running], timeout=self.stop_timeout
            )
            if late:
                for proc in running:
                    if proc.returncode is None:
                        log.warning("%s pid %d did not stop in time: killed", self.kind, proc.pid)
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                await asyncio.gather(*(proc.wait() for proc in running), return_exceptions=True)
        self.procs = {}


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bot.serve [all|edge|worker|sender]` (the worker processes' entry point)."""
    args = list(sys.argv[1:] if argv is None else argv)
    role = args[0] if args else "all"
    serve(Settings(), role=role)  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
