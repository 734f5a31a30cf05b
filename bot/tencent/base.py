"""The async core shared by the WeCom and official-account clients.

- One access token per app, cached in memory and in the `access_token` table, so every request of
  every process uses the same token; a refresh happens under an in-process lock and a DB lease,
  so N concurrent requests cause one `gettoken`.
- A token error (40014/42001, and 40001 for an OA) invalidates the token, refreshes it and retries
  the request once.
- -1, 41096, 45009/45033 and network failures/timeouts are retried with exponential backoff
  (tenacity), at most `max_retries` times; every other errcode raises `TencentAPIError` at once.
- A request body is serialised once, before the first attempt, so every retry sends the same
  bytes (idempotency: no regenerated ids or timestamps between attempts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
    wait_random,
)

from bot.tencent.errors import RATE_LIMITED, TencentAPIError, TencentError, TencentNetworkError, is_retryable
from profile_store import tokens
from profile_store.db import Database

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# A QR picture is a few kB; anything near WeCom's image limit (10 MB) is not a picture we asked for.
MAX_DOWNLOAD_BYTES = 10 << 20


@dataclass(frozen=True)
class Upload:
    """A multipart file part; rebuilt into a fresh form for each attempt from the same bytes."""

    field: str
    filename: str
    data: bytes
    content_type: str


class _LeaseBusy(Exception):
    """Another process is fetching the token right now."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def usable_until(now: datetime, expires_in: float) -> datetime:
    """When to stop using a token Tencent says lives `expires_in` seconds.

    A tenth of its life (at most 5 minutes) is kept in reserve so a request never starts with a
    token about to expire, and so short test lifetimes still leave a usable window.
    """
    return now + timedelta(seconds=expires_in - min(300.0, expires_in / 10))


class TencentClient:
    """Shared request machinery; subclasses say how to fetch a token and which errors mean 'token'."""

    token_path: str = ""
    token_errors: frozenset[int] = frozenset()

    def __init__(
        self,
        http: aiohttp.ClientSession,
        db: Database,
        *,
        base_url: str,
        token_key: str,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        self.http = http
        self.db = db
        self.base_url = base_url.rstrip("/")
        self.token_key = token_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._token: str | None = None
        self._token_until = datetime.min.replace(tzinfo=UTC)
        self._token_lock = asyncio.Lock()
        self._backoff_wait = wait_exponential(multiplier=backoff, max=backoff_max) + wait_random(0, backoff)
        # A refresh lease outlives the slowest fetch: every attempt timing out plus the backoffs.
        self._lease_ttl = timeout * (max_retries + 1) + backoff_max * max_retries + 5

    # ------------------------------------------------------------------ subclass hooks

    def token_params(self) -> dict[str, str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ public request helpers

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("POST", path, params=params, body=body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        upload: Upload | None = None,
        with_token: bool = True,
    ) -> dict[str, Any]:
        """One API call with the retry rules of the module docstring; returns the JSON answer."""
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        token_retried = False

        async def attempt_once() -> dict[str, Any]:
            nonlocal token_retried
            token = await self.access_token() if with_token else None
            data = await self._send(method, path, query, token, payload, upload)
            code = _errcode(data)
            if token is not None and code in self.token_errors and not token_retried:
                token_retried = True  # once per call, however many backoff attempts follow
                log.info("tencent %s: errcode %s, refreshing the access token", path, code)
                token = await self._refresh(rejected=token)
                data = await self._send(method, path, query, token, payload, upload)
                code = _errcode(data)
            if code != 0:
                raise TencentAPIError(code, str(data.get("errmsg", "")), path)
            return data

        result: dict[str, Any] = await self._retrying(f"tencent {path}")(attempt_once)
        return result

    def _retrying(self, what: str) -> AsyncRetrying:
        """Backoff and retry of what `is_retryable` says may pass (-1, 45009, 45033, network)."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=lambda rs: log.warning(
                "%s: attempt %d failed (%s), retrying", what, rs.attempt_number, _outcome(rs)
            ),
            reraise=True,
        )

    async def download(self, url: str) -> bytes:
        """The body of a plain GET of `url` (a QR picture Tencent gave us): no access token, the
        same timeout, and network failures retried like API calls; an HTTP 4xx is final."""

        async def attempt_once() -> bytes:
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    if 400 <= resp.status < 500:
                        raise TencentError(f"{url}: HTTP {resp.status}")
                    if resp.status != 200:
                        raise TencentNetworkError(url, f"HTTP {resp.status}")
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        data += chunk
                        if len(data) > MAX_DOWNLOAD_BYTES:
                            raise TencentError(f"{url}: more than {MAX_DOWNLOAD_BYTES} bytes")
            except TimeoutError:
                raise TencentNetworkError(url, f"no answer within {self.timeout:g} s") from None
            except aiohttp.ClientError as exc:
                raise TencentNetworkError(url, f"{type(exc).__name__}: {exc}") from None
            return bytes(data)

        body: bytes = await self._retrying(f"download {url}")(attempt_once)
        return body

    # ------------------------------------------------------------------ access token

    async def access_token(self) -> str:
        """The current token, fetched (once, for everyone) when none is usable."""
        if self._token is not None and self._token_until > _utcnow():
            return self._token
        return await self._refresh(rejected=None)

    async def _refresh(self, *, rejected: str | None) -> str:
        async with self._token_lock:
            # Another coroutine may have refreshed while we waited for the lock.
            if self._token is not None and self._token != rejected and self._token_until > _utcnow():
                return self._token
            token, until = await self._shared_refresh(rejected)
            self._token, self._token_until = token, until
            return token

    async def _shared_refresh(self, rejected: str | None) -> tuple[str, datetime]:
        """Take the DB's token if usable, else fetch one under the DB lease (one process fetches)."""
        owner = uuid.uuid4().hex

        async def take_or_lease() -> tuple[str, datetime] | None:
            async with self.db.transaction() as session:
                now = _utcnow()
                if rejected is not None:
                    await tokens.discard_token(session, self.token_key, rejected, now)
                stored = await tokens.valid_token(session, self.token_key, now)
                if stored is not None and stored[0] != rejected:
                    return stored
                if await tokens.acquire_lease(session, self.token_key, owner, now, self._lease_ttl):
                    # Another process may have stored a token and released the lease between our
                    # check above and taking it (read committed): look again before fetching.
                    fresh = await tokens.valid_token(session, self.token_key, now)
                    if fresh is not None and fresh[0] != rejected:
                        await tokens.release_lease(session, self.token_key, owner)
                        return fresh
                    return None
            raise _LeaseBusy

        polling = AsyncRetrying(
            stop=stop_after_delay(self._lease_ttl + 1),
            wait=wait_fixed(0.05),
            retry=retry_if_exception_type(_LeaseBusy),
            reraise=True,
        )
        try:
            stored: tuple[str, datetime] | None = await polling(take_or_lease)
        except _LeaseBusy:
            raise TencentNetworkError(self.token_path, "another process holds the token refresh lease") from None
        if stored is not None:
            return stored
        try:
            data = await self.request("GET", self.token_path, params=self.token_params(), with_token=False)
            token = str(data["access_token"])
            until = usable_until(_utcnow(), float(data.get("expires_in", 7200)))
            async with self.db.transaction() as session:
                await tokens.store_token(session, self.token_key, token, until)
                await tokens.release_lease(session, self.token_key, owner)
        except BaseException:
            async with self.db.transaction() as session:
                await tokens.release_lease(session, self.token_key, owner)
            raise
        log.info("tencent: fetched a new access token for %s", self.token_key)
        return token, until

    # ------------------------------------------------------------------ transport

    def _wait(self, retry_state: RetryCallState) -> float:
        delay = float(self._backoff_wait(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TencentAPIError) and exc.errcode in RATE_LIMITED:
            # A quota answer: hammering again soon only prolongs it.
            delay = min(delay * 4, self.backoff_max * 4)
        return delay

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        token: str | None,
        payload: bytes | None,
        upload: Upload | None,
    ) -> dict[str, Any]:
        params = dict(query)
        if token is not None:
            params["access_token"] = token
        kwargs: dict[str, Any] = {}
        if upload is not None:
            form = aiohttp.FormData()
            form.add_field(upload.field, upload.data, filename=upload.filename, content_type=upload.content_type)
            kwargs["data"] = form
        elif payload is not None:
            kwargs["data"] = payload
            kwargs["headers"] = {"Content-Type": JSON_CONTENT_TYPE}
        try:
            async with self.http.request(
                method,
                self.base_url + path,
                params=params,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                **kwargs,
            ) as resp:
                if resp.status != 200:
                    raise TencentNetworkError(path, f"HTTP {resp.status}")
                raw = await resp.read()
        except TimeoutError:
            raise TencentNetworkError(path, f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise TencentNetworkError(path, f"{type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise TencentNetworkError(path, "answer is not JSON") from None
        if not isinstance(data, dict):
            raise TencentNetworkError(path, "answer is not a JSON object")
        return data


def _errcode(data: Mapping[str, Any]) -> int:
    # OA success answers (token, user/info, qrcode/create) carry no errcode at all.
    try:
        return int(data.get("errcode", 0))
    except (TypeError, ValueError):
        return -1


def _outcome(retry_state: RetryCallState) -> str:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    return str(exc) if exc else "?"
