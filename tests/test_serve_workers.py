"""`qianmian serve` split across processes: the HTTP edge records and answers, worker processes
process. Real processes on loopback (the simulator runs here, in the test), both databases:
every callback the edge answered is processed exactly once, also when a worker is killed with
SIGKILL in the middle of the work and started again (by the edge's supervisor, or by hand)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.serve import METRICS_DIR_PREFIX, METRICS_OWNER_FILE, sweep_orphaned_metrics
from bot.simulator.driver import CallbackDriver
from bot.simulator.server import TencentSimulator
from profile_store.db import Database
from tests import callback_kit as kit
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db_url: str, sim: TencentSimulator, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "QIANMIAN_SECRET_KEY": TEST_SECRET,
        "WECOM_CORP_ID": sim.corp_id,
        "WECOM_AGENT_ID": str(sim.agent_id),
        "WECOM_SECRET": sim.corp_secret,
        "WECOM_TOKEN": kit.WECOM_TOKEN,
        "WECOM_AES_KEY": kit.WECOM_AES,
        "WECOM_API_BASE": sim.base_url,
        "WECHAT_API_BASE": sim.base_url,
        "PORT": str(port),
        "QIANMIAN_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "QIANMIAN_TAGS_REFRESH_AT": "off",
        "QIANMIAN_LOG_LEVEL": "WARNING",
        "QIANMIAN_WORKER_POLL": "0.02",
        "QIANMIAN_SERVE_EDGES": "1",  # the default on PostgreSQL is one per core
        **extra,
    }


def _driver(port: int, sim: TencentSimulator) -> CallbackDriver:
    """Tencent's side of the callbacks, aimed at the serve on `port`."""
    return CallbackDriver(
        f"http://127.0.0.1:{port}", corp_id=sim.corp_id, agent_id=str(sim.agent_id),
        wecom_token=kit.WECOM_TOKEN, wecom_aes_key=kit.WECOM_AES, sim=sim,
    )


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.serve", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        _stop(proc)


async def _ready(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not come up")


async def _counts(db: Database) -> dict[str, int]:
    async with db.read() as session:
        rows = (await session.execute(text("SELECT status, COUNT(*) FROM raw_event GROUP BY status"))).all()
    return {str(status): int(n) for status, n in rows}


async def _settled(db: Database, expected: int, within: float = 90) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        counts = await _counts(db)
        if (counts.get("done", 0) >= expected and not counts.get("pending")) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def _send(driver: CallbackDriver, externals: list[str]) -> None:
    """Tencent's side: add_external_contact callbacks, several at a time; each must be answered."""
    limit = asyncio.Semaphore(8)

    async def one(i: int, external: str) -> None:
        async with limit:
            result = await driver.wecom_add_external_contact(f"guide{i % 5}", external, state="store_S001")
            assert result.ok, result

    await asyncio.gather(*(one(i, e) for i, e in enumerate(externals)))


async def _until_done_over(db: Database, already: int, within: float = 30) -> dict[str, int]:
    """Wait until more than `already` callbacks are done (a worker is in the middle of the work)."""
    deadline = time.monotonic() + within
    while True:
        counts = await _counts(db)
        if counts.get("done", 0) > already or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.01)


async def _replaced(pid: int, old: list[int], within: float = 30) -> list[int]:
    """The edge's worker processes once they differ from `old` (a dead worker was replaced)."""
    deadline = time.monotonic() + within
    while True:
        now = _children(pid)
        if (now and now != old) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


async def _assert_exactly_once(db: Database, externals: list[str]) -> None:
    async with db.read() as session:
        raw = (await session.execute(text("SELECT status, COUNT(*) FROM raw_event GROUP BY status"))).all()
        facts = (
            await session.execute(
                text("SELECT external_userid, COUNT(*) FROM event WHERE type = 'add_contact' GROUP BY external_userid")
            )
        ).all()
        outbox_rows = (await session.execute(text("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"))).all()
    assert dict(raw) == {"done": len(externals)}, "every answered callback recorded once and processed"
    per_contact = {str(e): int(n) for e, n in facts}
    assert sorted(per_contact) == sorted(externals), "no callback lost"
    assert set(per_contact.values()) == {1}, "no callback processed twice"
    kinds = {str(k): int(n) for k, n in outbox_rows}
    assert kinds.get("portrait") == len(externals) and kinds.get("welcome") == len(externals)


async def test_edge_and_supervised_worker_process_each_callback_once(
    db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    """`serve` with one worker: the edge answers, the worker processes; a worker killed with
    SIGKILL mid-way is started again by the edge and its successor finishes the work."""
    db = Database(db_url)
    try:
        async with TencentSimulator() as sim:
            port = _free_port()
            edge = _start(_env(db_url, sim, port, QIANMIAN_SERVE_WORKERS="1"))
            procs.append(edge)
            await _ready(port)
            workers = _children(edge.pid)
            assert len(workers) == 1, workers
            driver = _driver(port, sim)
            first = [f"wmfirst{i:04d}" for i in range(20)]
            second = [f"wmsecond{i:04d}" for i in range(120)]
            async with driver:
                await _send(driver, first)
                await _settled(db, len(first))
                await _assert_exactly_once(db, first)
                # The second wave: kill the worker as soon as it has processed something.
                sending = asyncio.create_task(_send(driver, second))
                await _until_done_over(db, len(first))
                os.kill(workers[0], signal.SIGKILL)
                await sending  # the edge kept answering meanwhile
            successor = await _replaced(edge.pid, workers)
            assert len(successor) == 1 and successor != workers, "the dead worker was replaced"
            await _settled(db, len(first) + len(second))
            await _assert_exactly_once(db, first + second)
            assert edge.poll() is None
            assert _stop(edge) == 0
            assert not Path(f"/proc/{successor[0]}").exists(), "the edge stopped its worker"
    finally:
        await db.dispose()


async def test_separate_edge_and_worker_roles_survive_a_killed_worker(
    db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    """`serve --role edge` answers with no worker running (nothing is processed, all is kept);
    a `--role worker` started later processes it, is killed with SIGKILL mid-way, and the one
    started after it finishes: each callback processed exactly once."""
    db = Database(db_url)
    try:
        async with TencentSimulator() as sim:
            port = _free_port()
            env = _env(db_url, sim, port)
            edge = _start(env, "edge")
            procs.append(edge)
            await _ready(port)
            assert _children(edge.pid) == []
            externals = [f"wmsplit{i:04d}" for i in range(150)]
            driver = _driver(port, sim)
            async with driver:
                await _send(driver, externals)
            assert await _counts(db) == {"pending": len(externals)}, "the edge records and answers only"

            worker = _start(env, "worker")
            procs.append(worker)
            mid = await _until_done_over(db, 0, within=60)
            worker.kill()  # SIGKILL: no cleanup, a batch may be cut in the middle of its transaction
            worker.wait()
            killed_at = await _counts(db)
            assert mid.get("done", 0) >= 1

            again = _start(env, "worker")
            procs.append(again)
            await _settled(db, len(externals))
            await _assert_exactly_once(db, externals)
            assert _stop(again) == 0
            assert killed_at.get("done", 0) <= len(externals)
    finally:
        await db.dispose()


async def _gone(pids: list[int], within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in pids):
            return True
        await asyncio.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"


async def test_two_edges_share_the_port_and_go_with_their_supervisor(
    db_url: str, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """QIANMIAN_SERVE_EDGES=2: a second edge process on the same port (SO_REUSEPORT) beside the
    worker; callbacks sent to the shared port are each recorded and processed once (which edge
    takes a connection is the kernel's choice, not asserted); the extra edge is replaced when it
    dies, and stops by itself when the first edge is SIGKILLed."""
    db = Database(db_url)
    try:
        async with TencentSimulator() as sim:
            port = _free_port()
            # TMPDIR: the first edge's shared-metrics directory, which its SIGKILL below leaves behind
            first = _start(_env(db_url, sim, port, QIANMIAN_SERVE_WORKERS="1", QIANMIAN_SERVE_EDGES="2",
                                TMPDIR=str(tmp_path)))
            procs.append(first)
            await _ready(port)
            children = _children(first.pid)
            assert len(children) == 2, children  # one worker, one extra edge
            extra = [pid for pid in children if "edge" in Path(f"/proc/{pid}/cmdline").read_text()]
            assert len(extra) == 1, children
            driver = _driver(port, sim)
            externals = [f"wmedges{i:04d}" for i in range(120)]
            async with driver:
                await _send(driver, externals)
            await _settled(db, len(externals))
            await _assert_exactly_once(db, externals)

            os.kill(extra[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (replaced := _children(first.pid)) and (len(replaced) < 2 or extra[0] in replaced):
                assert time.monotonic() < deadline, f"the dead edge was not replaced: {replaced}"
                await asyncio.sleep(0.1)
            await _ready(port)

            first.kill()  # SIGKILL: no cleanup in the first edge
            first.wait()
            assert await _gone(replaced), "the extra edge and the worker stop once their edge is gone"
            # what the SIGKILL left: the killed edge's metrics directory, which the next serve removes
            [left] = tmp_path.glob(METRICS_DIR_PREFIX + "*")
            assert (left / METRICS_OWNER_FILE).read_text() == str(first.pid)
            assert sweep_orphaned_metrics(tmp_path) == [left] and not left.exists()
    finally:
        await db.dispose()


def test_only_metrics_directories_of_dead_serves_are_swept(tmp_path: Path) -> None:
    gone_pid = subprocess.Popen(["true"])  # a pid that has exited
    gone_pid.wait()
    layout = {
        "gone": str(gone_pid.pid),  # its serve is dead: removed
        "mine": str(os.getpid()),  # alive: kept
        "unmarked": None,  # no owner file yet (being made): kept
        "garbled": "not a pid",  # kept
    }
    for name, owner in layout.items():
        directory = tmp_path / f"{METRICS_DIR_PREFIX}{name}"
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"\0" * 16)
        if owner is not None:
            (directory / METRICS_OWNER_FILE).write_text(owner)
    (tmp_path / "other-dir").mkdir()  # not ours
    (tmp_path / "other-dir" / METRICS_OWNER_FILE).write_text(str(gone_pid.pid))
    assert sweep_orphaned_metrics(tmp_path) == [tmp_path / f"{METRICS_DIR_PREFIX}gone"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["other-dir", *(f"{METRICS_DIR_PREFIX}{n}" for n in ("mine", "unmarked", "garbled"))]
    )


async def test_a_sender_process_sends_what_the_one_process_bot_commits(
    db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    """No workers, a sender process beside (SQLite's default): the edge answers and processes,
    the sender finds the outbox rows it committed and sends each card and welcome once; a
    sender killed with SIGKILL is started again and its successor sends what came after."""
    db = Database(db_url)
    try:
        async with TencentSimulator() as sim:
            port = _free_port()
            edge = _start(_env(db_url, sim, port, QIANMIAN_SERVE_WORKERS="0", QIANMIAN_SERVE_SENDER="true"))
            procs.append(edge)
            await _ready(port)
            senders = _children(edge.pid)
            assert len(senders) == 1, senders
            for i in range(5):
                sim.add_staff(f"guide{i}")
            driver = _driver(port, sim)
            first = [f"wmsend{i:04d}" for i in range(30)]
            later = [f"wmlater{i:04d}" for i in range(10)]
            async with driver:
                await _send(driver, first)
                await _settled(db, len(first))
                await _all_sent(db, 2 * len(first))
                os.kill(senders[0], signal.SIGKILL)
                successor = await _replaced(edge.pid, senders)
                assert len(successor) == 1 and successor != senders, "the dead sender was replaced"
                await _send(driver, later)
                await _settled(db, len(first) + len(later))
                await _all_sent(db, 2 * (len(first) + len(later)))
            await _assert_exactly_once(db, first + later)
            cards = [c for c in sim.calls("/cgi-bin/message/send") if isinstance(c.body, dict)]
            assert len(cards) == len(first) + len(later), "one card per scan"
            assert len(sim.calls("/cgi-bin/externalcontact/send_welcome_msg")) == len(first) + len(later)
            assert _stop(edge) == 0
            assert not Path(f"/proc/{successor[0]}").exists(), "the edge stopped its sender"
    finally:
        await db.dispose()


async def _all_sent(db: Database, expected: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        async with db.read() as session:
            sent = int((await session.execute(text("SELECT COUNT(*) FROM outbox WHERE status = 'sent'"))).scalar_one())
        if sent >= expected:
            return
        assert time.monotonic() < deadline, f"{sent} of {expected} outbox rows sent"
        await asyncio.sleep(0.05)


def test_who_sends_by_default() -> None:
    from bot.settings import Settings

    def settings(url: str, **env: Any) -> Settings:
        return Settings(_env_file=None, DATABASE_URL=url, **env)  # type: ignore[call-arg]

    assert settings("sqlite:///x.db").sender_for_serve() is True
    assert settings("postgresql://h/db").sender_for_serve() is False  # its worker sends
    assert settings("sqlite:///x.db", QIANMIAN_SERVE_SENDER="false").sender_for_serve() is False
    assert settings("sqlite:///x.db", QIANMIAN_SERVE_WORKERS="1").sender_for_serve() is False
    assert settings("postgresql://h/db", QIANMIAN_SERVE_WORKERS="0", QIANMIAN_SERVE_SENDER="true").sender_for_serve()


def test_a_worker_beside_an_edge_yields_to_its_callbacks(tmp_path: Path) -> None:
    """Processing yields to callbacks being recorded when it competes with the edge: on SQLite
    (one write lock) always, on PostgreSQL when the worker shares the edge's machine (started by
    it); a worker on a machine of its own processes at once."""
    from bot.app import DISPATCHER, OUTBOX, create_app
    from bot.settings import Settings

    def worker(url: str, *, beside_edge: bool) -> tuple[Any, Any]:
        settings = Settings(_env_file=None, DATABASE_URL=url, QIANMIAN_SECRET_KEY=TEST_SECRET)  # type: ignore[call-arg]
        app = create_app(settings, role="worker", beside_edge=beside_edge)
        return app[DISPATCHER].yield_to, app[OUTBOX].yield_to

    pg = "postgresql://postgres@127.0.0.1:1/none"  # never connected: the app is only built
    for url, beside, yields in (
        (pg, True, True), (pg, False, False),
        (f"sqlite:///{tmp_path / 'a.db'}", True, True), (f"sqlite:///{tmp_path / 'b.db'}", False, True),
    ):
        processing, sending = worker(url, beside_edge=beside)
        assert (processing is not None, sending is not None) == (yields, yields), (url, beside)
        if yields:
            assert processing.__func__.__name__ == "edge_quiet"


def test_a_serve_process_settles_its_start_up_heap() -> None:
    """`settle_heap` (run once a serve process is up) leaves the collector nothing of start-up to
    walk, so a full collection under load no longer pauses for the whole heap. In a process of
    its own: frozen objects are never freed, which this test process must not suffer."""
    code = (
        "import gc, bot.app\n"
        "from bot.serve import settle_heap\n"
        "tracked = len(gc.get_objects())\n"
        "frozen = settle_heap()\n"
        "print(tracked, frozen, len(gc.get_objects()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    tracked, frozen, left = map(int, out.stdout.split())
    assert tracked > 50_000, "the app's modules alone are tens of thousands of objects"
    assert frozen >= tracked * 0.9 and left < 100, (tracked, frozen, left)


def _samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer: (name, sorted labels) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_metrics_of_every_serve_process_add_up_on_any_edge(
    db_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Two edges and a worker: /metrics on the shared port shows the whole bot, whichever edge the
    kernel hands the scrape to — the callbacks both edges recorded, a forged one refused, and the
    dead letter the worker (no HTTP of its own) made; the same totals on every scrape."""
    db = Database(db_url)
    try:
        async with TencentSimulator() as sim:
            port = _free_port()
            first = _start(_env(db_url, sim, port, QIANMIAN_SERVE_WORKERS="1", QIANMIAN_SERVE_EDGES="2"))
            procs.append(first)
            await _ready(port)
            externals = [f"wmmetrics{i:04d}" for i in range(30)]
            unknown = kit.cdata({"ToUserName": sim.corp_id, "FromUserName": "sys", "CreateTime": int(time.time()),
                                 "MsgType": "event", "Event": "change_external_chat", "ChangeType": "create"})
            forged = kit.wecom_post(
                kit.wecom_contact("add_external_contact", "guide0", "wmforged", int(time.time()), corp_id=sim.corp_id),
                corp_id=sim.corp_id,
            )
            driver = _driver(port, sim)
            async with driver:
                await _send(driver, externals)
                assert (await driver.send_wecom(unknown)).ok
            async with aiohttp.ClientSession() as http:
                params = {**forged.params, "msg_signature": "0" * 40}
                async with http.post(f"http://127.0.0.1:{port}/wecom/callback", params=params, data=forged.body) as r:
                    assert r.status == 403
            counts = await _settled(db, len(externals))
            assert counts == {"done": len(externals), "dead": 1}, counts

            for _ in range(16):  # a new connection each time: the kernel spreads them over the edges
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        assert resp.status == 200
                        samples = _samples(await resp.text())
                assert samples[("qianmian_callbacks_received_total", (("channel", "wecom"),))] == len(externals) + 1
                assert samples[("qianmian_callbacks_rejected_total",
                                (("channel", "wecom"), ("reason", "bad_signature")))] == 1
                assert samples[("qianmian_dead_letters_total", ())] == 1  # counted in the worker
                processed = samples[("qianmian_event_processing_seconds_count", (("outcome", "done"),))]
                assert processed == len(externals)
    finally:
        await db.dispose()
