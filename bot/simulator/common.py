"""Pieces shared by the simulated WeCom and official-account APIs."""

from __future__ import annotations

import io
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

import segno

_ALNUM = string.ascii_letters + string.digits


class SimError(Exception):
    """An errcode answer: HTTP 200 with exactly {"errcode": N, "errmsg": "..."}, as Tencent does."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


class Clock:
    """The simulator's time: wall clock plus an offset tests move forward (`advance`)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def random_id(prefix: str = "", length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass
class Ctx:
    """One API request as a handler sees it."""

    query: dict[str, str]
    body: Any  # parsed JSON (dict) or, for media/upload, an `UploadedFile` or None
    owner: str = ""  # corp id or appid the access token belongs to
    agent_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            return {}
        return self.body


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


def text_of(value: Any, key: str) -> str:
    """`value[key]` as a stripped string ('' when absent or not a string)."""
    if isinstance(value, dict):
        item = value.get(key)
        if isinstance(item, str):
            return item.strip()
    return ""


def qr_png(content: str) -> bytes:
    """A real QR code picture (PNG) encoding `content`, as Tencent's QR image URLs serve."""
    buffer = io.BytesIO()
    # Medium error correction and a 4-module quiet zone: what phone scanners expect of a printed code.
    segno.make(content, error="m").save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()
