"""Signed, expiring portrait links (`GET /p/{token}`), bound to the guide they were sent to.

The token carries the person, the guide, its own id and its expiry; it is signed with a key derived
from QIANMIAN_SECRET_KEY (HKDF, its own purpose, so it reveals nothing about the PII keys), by
itsdangerous. Nothing is stored per link: any `serve` process can check any link.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeSerializer


class LinkRefused(Exception):
    """A link that cannot be honoured; `reason` is one of forged | expired. An expired link is
    still ours (its signature holds), so it comes along: the audit can say whose link it was."""

    def __init__(self, reason: str, link: PortraitLink | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.link = link


@dataclass(frozen=True)
class PortraitLink:
    link_id: str
    person_id: str
    guide_id: str  # the WeCom userid the link was sent to
    expires_at: int  # epoch seconds


def link_key(secret: str, purpose: bytes) -> bytes:
    """The signing key of one kind of link (portrait, coupon claim), derived from
    QIANMIAN_SECRET_KEY: a token of one kind never verifies as another."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"qianmian-links-v1", info=purpose).derive(
        secret.encode("utf-8")
    )


class PortraitLinks:
    def __init__(
        self,
        secret_key: str,
        public_url: str,
        *,
        ttl_seconds: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ValueError("QIANMIAN_SECRET_KEY is empty: portrait links cannot be signed")
        self._serializer = URLSafeSerializer(link_key(secret_key, b"portrait-link"), salt="portrait")
        self.public_url = public_url.rstrip("/")
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def issue(
        self, person_id: str, guide_id: str, *, link_id: str | None = None, issued_at: float | None = None
    ) -> tuple[str, PortraitLink]:
        """A new link. The outbox passes its own id and time, so a retried card carries the very
        same link (and WeCom's duplicate check can recognise it)."""
        link = PortraitLink(
            link_id=link_id or secrets.token_hex(8),
            person_id=person_id,
            guide_id=guide_id,
            expires_at=int((self.clock() if issued_at is None else issued_at) + self.ttl_seconds),
        )
        token = self._serializer.dumps({"i": link.link_id, "p": person_id, "g": guide_id, "e": link.expires_at})
        return token, link

    def url(self, token: str) -> str:
        return f"{self.public_url}/p/{token}"

    def read(self, token: str) -> PortraitLink:
        """The link a token stands for; LinkRefused("forged") if it was not signed by us (or was
        altered), LinkRefused("expired") once its time is up."""
        try:
            data: Any = self._serializer.loads(token)
            link = PortraitLink(str(data["i"]), str(data["p"]), str(data["g"]), int(data["e"]))
        except (BadSignature, KeyError, TypeError, ValueError) as exc:
            raise LinkRefused("forged") from exc
        if self.clock() >= link.expires_at:
            raise LinkRefused("expired", link)
        return link
