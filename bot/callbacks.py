"""The HTTP edge: Tencent callbacks in, "success" out, work afterwards.

Request verification is a middleware step (as in bolt-python): for the callback routes it checks
parameters, timestamp, signature, decrypts and parses the body; a request it rejects gets its
status (400 / 403 / 404 / 413) and a log line, and nothing is written. The route handlers then
see only a verified, parsed callback: they record it durably (group commit), answer, and hand it
to the dispatcher in the background.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.callback_xml import WECHAT, WECOM, CallbackXmlError, parse_envelope, parse_fields
from bot.crypto import DecryptError, MessageCrypto, SignatureError, check_plain_signature
from bot.dispatcher import Dispatcher
from bot.metrics import Metrics
from bot.recorder import Recorder
from bot.settings import Settings
from profile_store.raw_events import NewRawEvent

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # runtime.md: a body over 1 MiB is refused with 413
SUCCESS = "success"  # what Tencent expects when there is no passive reply

ROUTE_WECOM = "wecom_callback"
ROUTE_WECHAT = "wechat_callback"
ROUTE_WECHAT_ACCOUNT = "wechat_callback_account"
_CHANNEL_OF_ROUTE = {ROUTE_WECOM: WECOM, ROUTE_WECHAT: WECHAT, ROUTE_WECHAT_ACCOUNT: WECHAT}


@dataclass(frozen=True)
class Verified:
    """What the verification step hands the route handler."""

    channel: str
    account: str
    echo: str | None = None  # GET: what to answer
    dedupe_key: str | None = None  # POST: the callback's identity across Tencent's retries
    body: str | None = None  # POST: decrypted XML, recorded as is (typed where it is processed)


class Rejected(Exception):
    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason} {detail}".strip())
        self.status = status
        self.reason = reason
        self.detail = detail


VERIFIED = web.RequestKey("qianmian_verified", Verified)


@dataclass(frozen=True)
class _Account:
    receive_id: str  # corp id / appid
    token: str
    crypto: MessageCrypto | None


class CallbackVerifier:
    """Checks a callback request against the configured WeCom app and official accounts."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.max_skew = settings.callback_max_skew_seconds
        self.clock = clock
        self.wecom: _Account | None = None
        if settings.wecom_corp_id and settings.wecom_token and settings.wecom_aes_key:
            self.wecom = _Account(
                settings.wecom_corp_id,
                settings.wecom_token,
                MessageCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id),
            )
        self.accounts: dict[str, _Account] = {
            app_id: _Account(app_id, oa.token, MessageCrypto(oa.token, oa.aes_key, app_id) if oa.aes_key else None)
            for app_id, oa in settings.official_accounts().items()
        }
        # /wechat/callback without an appid is the first account (WECHAT_APP_ID).
        self.default_appid = settings.wechat_app_id or next(iter(self.accounts), None)

    def _account(self, request: web.Request, channel: str) -> _Account:
        if channel == WECOM:
            if self.wecom is None:
                raise Rejected(404, "not_configured", "WeCom callback is not configured")
            return self.wecom
        appid = request.match_info.get("appid") or self.default_appid
        account = self.accounts.get(appid or "")
        if account is None:
            raise Rejected(404, "unknown_account", f"no official account {appid!r}")
        return account

    def _params(self, request: web.Request, *names: str) -> list[str]:
        values = [request.query.get(name, "") for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise Rejected(400, "missing_params", ",".join(missing))
        return values

    def _check_time(self, timestamp: str) -> None:
        try:
            sent = int(timestamp)
        except ValueError as exc:
            raise Rejected(400, "bad_timestamp", timestamp[:32]) from exc
        if abs(self.clock() - sent) > self.max_skew:
            raise Rejected(403, "stale_timestamp", timestamp)

    async def verify(self, request: web.Request, channel: str) -> Verified:
        account = self._account(request, channel)
        try:
            if request.method == "GET":
                return self._verify_url(request, channel, account)
            return await self._verify_post(request, channel, account)
        except SignatureError as exc:
            raise Rejected(403, "bad_signature") from exc
        except DecryptError as exc:
            raise Rejected(400, "undecryptable", str(exc)) from exc
        except CallbackXmlError as exc:
            reason = "forbidden_xml" if "forbidden" in str(exc) else "malformed_xml"
            raise Rejected(400, reason, str(exc)) from exc

    def _verify_url(self, request: web.Request, channel: str, account: _Account) -> Verified:
        """URL verification: WeCom sends an encrypted echostr; an OA a plain one."""
        if channel == WECOM:
            sig, timestamp, nonce, echostr = self._params(request, "msg_signature", "timestamp", "nonce", "echostr")
            self._check_time(timestamp)
            assert account.crypto is not None
            echo = account.crypto.verify_and_decrypt(sig, timestamp, nonce, echostr)
            return Verified(channel, account.receive_id, echo=echo)
        sig, timestamp, nonce, echostr = self._params(request, "signature", "timestamp", "nonce", "echostr")
        self._check_time(timestamp)
        check_plain_signature(account.token, sig, timestamp, nonce)
        return Verified(channel, account.receive_id, echo=echostr)

    async def _verify_post(self, request: web.Request, channel: str, account: _Account) -> Verified:
        encrypted = channel == WECOM or request.query.get("encrypt_type", "").lower() == "aes"
        if encrypted:
            sig, timestamp, nonce = self._params(request, "msg_signature", "timestamp", "nonce")
        else:
            sig, timestamp, nonce = self._params(request, "signature", "timestamp", "nonce")
        self._check_time(timestamp)
        raw = await request.read()  # over client_max_size: aiohttp raises 413
        if not raw.strip():
            raise Rejected(400, "empty_body")
        if encrypted:
            if account.crypto is None:
                raise Rejected(400, "aes_not_configured", account.receive_id)
            envelope = parse_fields(raw)
            encrypt = envelope.get("Encrypt")
            if not encrypt:
                raise Rejected(400, "malformed_xml", "no <Encrypt>")
            body = account.crypto.verify_and_decrypt(sig, timestamp, nonce, encrypt)
        else:
            check_plain_signature(account.token, sig, timestamp, nonce)
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Rejected(400, "malformed_xml", "body is not UTF-8") from exc
        _fields, key = parse_envelope(body, channel=channel, account=account.receive_id)
        return Verified(channel, account.receive_id, dedupe_key=key, body=body)


def verification_middleware(verifier: CallbackVerifier, metrics: Metrics) -> Middleware:
    """Verify callback routes before their handler runs; other routes pass through."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        channel = _CHANNEL_OF_ROUTE.get(route.name or "") if route is not None else None
        if channel is None:
            return await handler(request)
        try:
            request[VERIFIED] = await verifier.verify(request, channel)
        except Rejected as exc:
            metrics.callbacks_rejected.labels(channel=channel, reason=exc.reason).inc()
            log.warning(
                "callback rejected %s %s %s: %s %s",
                request.method,
                request.path,
                exc.status,
                exc.reason,
                exc.detail[:200],
            )
            return web.Response(status=exc.status, text=exc.reason)
        except web.HTTPRequestEntityTooLarge:
            metrics.callbacks_rejected.labels(channel=channel, reason="too_large").inc()
            log.warning("callback rejected %s %s 413: body over %d bytes", request.method, request.path, MAX_BODY)
            raise
        return await handler(request)

    return middleware


class CallbackHandlers:
    """The route handlers; they only ever see verified requests."""

    def __init__(self, recorder: Recorder, dispatcher: Dispatcher, metrics: Metrics) -> None:
        self.recorder = recorder
        self.dispatcher = dispatcher
        self.metrics = metrics
        # labelled children looked up once, not per request
        self._received = {c: metrics.callbacks_received.labels(channel=c) for c in (WECOM, WECHAT)}
        self._duplicate = {c: metrics.callbacks_duplicate.labels(channel=c) for c in (WECOM, WECHAT)}

    async def get(self, request: web.Request) -> web.Response:
        verified = request[VERIFIED]
        return web.Response(text=verified.echo or "")

    async def post(self, request: web.Request) -> web.Response:
        verified = request[VERIFIED]
        assert verified.dedupe_key is not None and verified.body is not None
        recorded = await self.recorder.record(
            NewRawEvent(
                dedupe_key=verified.dedupe_key,
                channel=verified.channel,
                account=verified.account,
                body=verified.body,
                received_at=datetime.now(UTC),
            )
        )
        if recorded.new and recorded.raw is not None:
            self._received[verified.channel].inc()
            self.dispatcher.spawn(recorded.raw)
        else:
            self._duplicate[verified.channel].inc()
            log.info("duplicate callback %s answered again", verified.dedupe_key)
        return web.Response(text=SUCCESS)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/wecom/callback", self.get, name=ROUTE_WECOM)
        app.router.add_route("POST", "/wecom/callback", self.post, name=ROUTE_WECOM)
        app.router.add_route("GET", "/wechat/callback", self.get, name=ROUTE_WECHAT)
        app.router.add_route("POST", "/wechat/callback", self.post, name=ROUTE_WECHAT)
        app.router.add_route("GET", "/wechat/callback/{appid}", self.get, name=ROUTE_WECHAT_ACCOUNT)
        app.router.add_route("POST", "/wechat/callback/{appid}", self.post, name=ROUTE_WECHAT_ACCOUNT)
