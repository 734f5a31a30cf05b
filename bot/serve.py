"""`qianmian serve`: the production bot, one stateless process of possibly several."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.app import create_app
from bot.settings import Settings


class MissingSettings(RuntimeError):
    """`serve` cannot start: a required setting is absent (the message names it)."""


def serve(settings: Settings) -> None:
    missing = settings.missing_for_serve()
    if missing:
        raise MissingSettings("serve 无法启动, 缺少设置 (missing settings): " + ", ".join(missing))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,  # one line per callback would cost more than the callback; metrics count them
        print=lambda line: logging.getLogger("qianmian").info(line),
        shutdown_timeout=10.0,
    )
