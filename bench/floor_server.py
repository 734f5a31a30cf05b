"""The floor: the least a callback edge must do before it answers, and nothing else.

For each request: the timestamp window, the signature, AES decryption, the XML read (entities
refused) and the dedupe key; then the callback is recorded durably, the requests that arrive
together in ONE statement (group commit, ON CONFLICT on the key, on PostgreSQL a batch waiting
up to 1 ms for a wave, as serve records them), and only then answered `success`. It uses the
product's own crypto and XML reader (the leanest we have), but none of what is around them in
serve: no middleware, metrics, recorder queue, dispatcher, typed events, processing or sending.
Run as serve's edges run: `processes` of it on one port (SO_REUSEPORT); on SQLite one, as serve
(one writer).

So its rate, measured in the same run as the bare handler and serve, is what any edge doing the
issue's required work reaches on this machine with this stack; the distance from it to serve is
the cost of the product around that work (and of processing during the flood).

    python bench/floor_server.py PORT DATABASE_URL   (the table `floor_event` must exist)
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.callback_xml import parse_envelope, parse_fields
from bot.crypto import MessageCrypto, SignatureError
from bot.recorder import PEAK_KEPT, PG_HOLD
from bot.waiting import wait_set

TABLE = """CREATE TABLE IF NOT EXISTS floor_event (
    id {serial} PRIMARY KEY, dedupe_key TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
    account TEXT NOT NULL, body TEXT NOT NULL, received_at {time} NOT NULL)"""
PG_TABLE = TABLE.format(serial="BIGSERIAL", time="TIMESTAMPTZ")
SQLITE_TABLE = TABLE.format(serial="INTEGER", time="TEXT")

_PG_INSERT = (
    "INSERT INTO floor_event (dedupe_key, channel, account, body, received_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])"
    " ON CONFLICT (dedupe_key) DO NOTHING"
)
_SQLITE_INSERT = (
    "INSERT INTO floor_event (dedupe_key, channel, account, body, received_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (dedupe_key) DO NOTHING"
)
WINDOW_SECONDS = 300


class GroupCommit:
    """Rows of concurrent requests written in one statement; each request waits for its batch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._rows: list[tuple[str, str, str, str, datetime]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._writing = False
        # serve's hold (bot/recorder.py `_hold`), as serve on PostgreSQL only: a batch waits, at
        # most PG_HOLD, for three quarters of the most requests this process held at once lately
        self._waiting = 0
        self._peak = 0
        self._peak_at = 0.0
        self._want = 0
        self._wave = asyncio.Event()
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(self.url.split("///", 1)[1], check_same_thread=False, isolation_level=None)
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA synchronous=NORMAL")  # serve's own setting
        else:
            import asyncpg

            self._pg = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
            self._insert = await self._pg.prepare(_PG_INSERT)

    async def record(self, row: tuple[str, str, str, str, datetime]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._rows.append(row)
        self._waiters.append(done)
        self._waiting += 1
        if self._waiting >= self._peak:
            self._peak, self._peak_at = self._waiting, asyncio.get_running_loop().time()
        if self._want and len(self._rows) >= self._want:
            self._wave.set()
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write())
        try:
            await done
        finally:
            self._waiting -= 1

    async def _hold(self) -> None:
        if self._sqlite is not None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._peak_at > PEAK_KEPT:
            self._peak, self._peak_at = self._waiting, now
        want = self._peak * 3 // 4
        if len(self._rows) >= want:
            return
        self._want = want
        self._wave.clear()
        try:
            await wait_set(self._wave, PG_HOLD)
        finally:
            self._want = 0

    async def _write(self) -> None:
        try:
            while self._rows:
                await self._hold()
                rows, waiters = self._rows, self._waiters
                self._rows, self._waiters = [], []
                try:
                    if self._pg is not None:
                        await self._insert.fetch(*(list(column) for column in zip(*rows, strict=True)))
                    else:
                        await asyncio.to_thread(self._write_sqlite, rows)
                except Exception as exc:  # the requests fail (500): Tencent retries them
                    for waiter in waiters:
                        if not waiter.done():  # a request whose client left is cancelled
                            waiter.set_exception(exc)
                    continue
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            self._writing = False

    def _write_sqlite(self, rows: list[tuple[str, str, str, str, datetime]]) -> None:
        assert self._sqlite is not None
        with self._sqlite:  # one transaction: BEGIN … COMMIT
            self._sqlite.execute("BEGIN IMMEDIATE")
            self._sqlite.executemany(_SQLITE_INSERT, [(k, c, a, b, r.isoformat()) for k, c, a, b, r in rows])


def make_app(url: str, token: str, aes_key: str, corp_id: str) -> web.Application:
    crypto = MessageCrypto(token, aes_key, corp_id)
    records = GroupCommit(url)

    async def handle(request: web.Request) -> web.Response:
        query = request.query
        try:
            sig, timestamp, nonce = query["msg_signature"], query["timestamp"], query["nonce"]
            if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
                return web.Response(status=403)
            raw = await request.read()
            body = crypto.verify_and_decrypt(sig, timestamp, nonce, parse_fields(raw)["Encrypt"])
            _fields, key = parse_envelope(body, channel="wecom", account=corp_id)
        except SignatureError:
            return web.Response(status=403)
        except Exception:  # the floor answers errors as plainly as it can
            return web.Response(status=400)
        await records.record((key, "wecom", corp_id, body, datetime.now(UTC)))
        return web.Response(text="success")

    async def opened(_app: web.Application) -> None:
        await records.open()

    app = web.Application(client_max_size=1024 * 1024)
    app.on_startup.append(opened)
    app.router.add_post("/wecom/callback", handle)
    app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    return app


if __name__ == "__main__":
    port, url, token, aes_key, corp_id = sys.argv[1:6]
    web.run_app(make_app(url, token, aes_key, corp_id), host="127.0.0.1", port=int(port), reuse_port=True,
                access_log=None, print=None)
