"""The baseline: a bare aiohttp handler that reads the body and answers `success`."""

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="success")


app = web.Application()
app.router.add_post("/wecom/callback", handle)
app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
