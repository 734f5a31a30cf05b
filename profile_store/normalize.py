"""Identifier normalisation of data.md §1, shared by import and live callbacks."""

from __future__ import annotations

import re
from typing import NamedTuple

_NON_DIGIT = re.compile(r"\D")

IDENTIFIER_KINDS = ("member_id", "phone", "unionid", "openid", "miniapp_openid", "external_userid")


def normalize_phone(raw: str | None) -> str | None:
    """Digits only, +86/0086 dropped; None unless a mainland mobile (11 digits starting with 1)."""
    if not raw:
        return None
    if len(raw) == 11 and raw[0] == "1" and raw.isdigit():
        return raw  # already clean (the import normalises once; callers may pass it again)
    digits = _NON_DIGIT.sub("", raw)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    if len(digits) == 11 and digits.startswith("1"):
        return digits
    return None


def openid_value(appid: str, openid: str) -> str:
    """An openid is only unique with its appid: the pair is one node value."""
    return f"{appid}/{openid}"


class Identifier(NamedTuple):
    """One identifier observed on a row: kind and normalised clear value. (A tuple: millions are
    made and sent between processes during an import.)"""

    kind: str
    value: str


def identifiers_of(
    *,
    member_id: str | None = None,
    phone: str | None = None,
    unionid: str | None = None,
    appid: str | None = None,
    openid: str | None = None,
    miniapp_openid: str | None = None,
    external_userid: str | None = None,
) -> list[Identifier]:
    """Every usable identifier of one row (an invalid phone is simply not one)."""
    found: list[Identifier] = []
    if member_id and member_id.strip():
        found.append(Identifier("member_id", member_id.strip()))
    clean_phone = normalize_phone(phone)
    if clean_phone:
        found.append(Identifier("phone", clean_phone))
    if unionid and unionid.strip():
        found.append(Identifier("unionid", unionid.strip()))
    if openid and openid.strip():
        found.append(Identifier("openid", openid_value((appid or "").strip(), openid.strip())))
    if miniapp_openid and miniapp_openid.strip():
        found.append(Identifier("miniapp_openid", miniapp_openid.strip()))
    if external_userid and external_userid.strip():
        found.append(Identifier("external_userid", external_userid.strip()))
    return found
