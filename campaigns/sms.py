"""The SMS channel: an adapter interface (`SmsSender`) and its simulator implementation.

A real provider plugs in by implementing `send`. `out_id` is our idempotency key (one per
campaign, wave and person): providers that accept a client reference should send once per
reference, which makes a resend after a crash harmless (the simulator does).
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

BUSY, RATE_LIMITED = -1, 45009


class SmsError(Exception):
    """The provider refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"sms: code {code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in (BUSY, RATE_LIMITED)

    @property
    def rate_limited(self) -> bool:
        return self.code == RATE_LIMITED


class SmsSender(Protocol):
    async def send(self, phone: str, text: str, *, out_id: str) -> str:
        """Send `text` to `phone` once per `out_id`; the provider's message id."""
        ...


class SimulatorSms:
    """Posts to the simulator's loopback SMS gateway (bot/simulator/sms.py)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, *, timeout: float = 5.0) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/sim/sms/send"
        self.timeout = timeout

    async def send(self, phone: str, text: str, *, out_id: str) -> str:
        try:
            async with self.http.post(
                self.url, json={"phone": phone, "text": text, "out_id": out_id},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                if resp.status != 200:
                    raise SmsError(BUSY, f"HTTP {resp.status}")
                data: dict[str, Any] = await resp.json()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SmsError(BUSY, f"{type(exc).__name__}: {exc}") from None
        code = int(data.get("code", -1))
        if code != 0:
            raise SmsError(code, str(data.get("message", "")))
        return str(data.get("message_id", ""))
