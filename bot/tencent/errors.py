"""Errors of Tencent API calls and how each errcode is to be treated (tencent.md "Error codes").

Every code not listed as retryable is final: the caller gets `TencentAPIError` at once. A retry
of a final code would at best waste quota and at worst repeat a side effect (41051).
"""

from __future__ import annotations

# -1: system busy; the docs ask for at most 3 retries (WeCom doc 90313/90455).
SYSTEM_BUSY = -1
# 45009 frequency limit, 45033 concurrency limit: wait longer than for -1 before retrying.
RATE_LIMITED = frozenset({45009, 45033})
# 41096: another app is sending the welcome message right now; trying again may succeed.
RETRYABLE = frozenset({SYSTEM_BUSY, 41096}) | RATE_LIMITED

# Token invalid (40014) or expired (42001): refresh the token and retry once. An official account
# also answers 40001 ("invalid credential, access_token is invalid or not latest") when another
# process fetched a newer token; for WeCom 40001 means a wrong secret, which no retry cures.
WECOM_TOKEN_ERRORS = frozenset({40014, 42001})
WECHAT_TOKEN_ERRORS = frozenset({40001, 40014, 42001})

# Named final codes callers branch on.
WELCOME_ALREADY_SENT = 41051
WELCOME_CODE_INVALID = 41050
UNKNOWN_USERID = 60111
INVALID_EXTERNAL_USERID = 40096
NOT_EXTERNAL_CONTACT = 84061
CUSTOM_MESSAGE_WINDOW_CLOSED = 45015


class TencentError(Exception):
    """Any failure of a Tencent API call."""


class TencentAPIError(TencentError):
    """Tencent answered with a non-zero errcode (after any retries it deserved)."""

    def __init__(self, errcode: int, errmsg: str, path: str) -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def retryable(self) -> bool:
        return self.errcode in RETRYABLE


class TencentNetworkError(TencentError):
    """No usable answer: connection failure, timeout, non-200 status or a body that is not JSON."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def is_retryable(exc: BaseException) -> bool:
    """Whether one more attempt of the same request may succeed."""
    if isinstance(exc, TencentAPIError):
        return exc.retryable
    return isinstance(exc, TencentNetworkError)
