"""A `serve`-like process for the crash tests: `create_app` on a port, settings from the env.

QIANMIAN_TEST_SLOW_SECONDS > 0 adds a handler that sleeps inside the processing transaction of
every OA text message, so a test can SIGKILL the process while callbacks are being processed.
Prints "READY <port>" once listening.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from bot.app import create_app, default_routers
from bot.callback_xml import TextMessage
from bot.dispatcher import Router
from bot.settings import Settings


def slow_router(seconds: float) -> Router:
    router = Router("slow")

    @router.event(TextMessage)
    async def linger(event: TextMessage, session: object) -> None:
        await asyncio.sleep(seconds)

    return router


async def _idle(**_: object) -> None:
    await asyncio.Event().wait()


async def main() -> None:
    settings = Settings()  # type: ignore[call-arg]
    slow = float(os.environ.get("QIANMIAN_TEST_SLOW_SECONDS", "0"))
    routers = default_routers() + ([slow_router(slow)] if slow > 0 else [])
    app = create_app(settings, routers=routers, sweep_interval=1.0)
    if os.environ.get("QIANMIAN_TEST_NO_DISPATCH"):  # benchmark the edge alone
        from bot.app import DISPATCHER

        app[DISPATCHER].spawn = lambda raw: None  # type: ignore[method-assign,assignment,return-value]
        app[DISPATCHER].run_sweeper = _idle  # type: ignore[method-assign]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ.get("PORT", "0")))
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
