"""Understanding a staff member's request for a QR code, in their own words:
"给S001门店生成二维码", "生成导购G001的二维码", "S001门店的二维码", "上海一店的公众号二维码",
"生成我的二维码", "重新生成S001门店的二维码".

Pure functions (no database, no I/O): the caller passes the store names it knows. The whole
command language is a later issue; this only has to tell a QR request from anything else, and
what it is about.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

QrKind = Literal["store", "guide"]

# What makes a text about QR codes at all ("渠道码" and "活码" are what retail staff call them).
_QR_WORDS = re.compile(r"二维码|渠道码|活码|联系我码|(?<![a-z])qr(?:\s*code)?(?![a-z])", re.IGNORECASE)
# A WeCom userid / store id: letters, digits and a few separators (never Chinese).
_ID = r"([A-Za-z0-9][A-Za-z0-9_.@-]*)"
_SEP = r"\s*[:：#]?\s*"
_GUIDE_WORDS = r"(?:导购|店员|员工|顾问|店长|同事)"
_STORE_WORDS = r"(?:门店|店铺|分店)"
_GUIDE_PATTERNS = (
    re.compile(_GUIDE_WORDS + _SEP + _ID),  # 导购G001 / 导购：G001
    re.compile(_ID + r"\s*(?:号)?" + _GUIDE_WORDS),  # G001导购
)
_STORE_PATTERNS = (
    re.compile(_STORE_WORDS + _SEP + _ID),  # 门店S001
    re.compile(_ID + r"\s*(?:号)?(?:门店|店铺|分店|店)"),  # S001门店 / S001店
)
# A bare id shaped like a store code (S001) is a store even without the word 门店.
_BARE_STORE = re.compile(r"(?<![A-Za-z0-9_.@-])([Ss]\d{1,8})(?![A-Za-z0-9_.@-])")
_OWN_STORE = re.compile(r"本店|我们店|我们门店|我的门店|我店|咱们店|咱店")
_MINE = re.compile(r"我的|我自己|本人")
_OA = re.compile(r"公众号|服务号|关注")
_RENEW = re.compile(r"重新生成|重新做|重做|换一个|换个|新的二维码|新码")
# Words that look like ids to the patterns above but are not (e.g. "QR码" before 门店 words).
_NOT_IDS = frozenset({"qr", "qrcode", "code"})


@dataclass(frozen=True)
class QrRequest:
    """What was asked for. `kind` None: the text is about QR codes but names no store or guide."""

    kind: QrKind | None
    target: str | None  # store_id or guide_id; None with `mine` (the asker's own store or guide QR)
    mine: bool = False
    oa: bool = False  # the official account's QR (follow) rather than WeCom's (add a guide)
    new: bool = False  # a fresh code instead of the stored one
    by_name: bool = False  # the store was named, not given by id


def normalise(text: str) -> str:
    # Full-width letters and digits (ｓ００１) are common from Chinese input methods.
    return unicodedata.normalize("NFKC", text).strip()


def mentions_qr(text: str) -> bool:
    return bool(_QR_WORDS.search(normalise(text)))


def parse_qr_request(text: str, stores: Mapping[str, str] | None = None) -> QrRequest | None:
    """The QR request in `text`, or None when it is not about QR codes.

    `stores` maps store names to ids, so a store can be named ("上海一店的二维码")."""
    clean = normalise(text)
    if not _QR_WORDS.search(clean):
        return None
    flags = {"oa": bool(_OA.search(clean)), "new": bool(_RENEW.search(clean))}
    # A guide is more specific than a store: "S001门店的导购G001的二维码" is G001's.
    guide = _first_id(clean, _GUIDE_PATTERNS)
    if guide is not None:
        return QrRequest("guide", guide, **flags)
    store = _first_id(clean, _STORE_PATTERNS) or _first_id(clean, (_BARE_STORE,))
    if store is not None:
        return QrRequest("store", _known_id(store, (stores or {}).values()), **flags)
    named = _store_by_name(clean, stores or {})
    if named is not None:
        return QrRequest("store", named, by_name=True, **flags)
    if _OWN_STORE.search(clean):
        return QrRequest("store", None, mine=True, **flags)
    if _MINE.search(clean):
        return QrRequest("guide", None, mine=True, **flags)
    return QrRequest(None, None, **flags)


def _first_id(text: str, patterns: tuple[re.Pattern[str], ...]) -> str | None:
    for pattern in patterns:
        for match in pattern.finditer(text):
            value = match.group(1).rstrip("._@-")  # "导购G001." ends a sentence, not the id
            if value and value.lower() not in _NOT_IDS:
                return value
    return None


def _known_id(value: str, known: Iterable[str]) -> str:
    # Ids compare case-sensitively (data.md), but "s001" typed on a phone means the store S001.
    ids = list(known)
    if value in ids:
        return value
    folded = [k for k in ids if k.lower() == value.lower()]
    return folded[0] if len(folded) == 1 else value


def _store_by_name(text: str, stores: Mapping[str, str]) -> str | None:
    # Longest name first: "上海一店" must not be taken for a store called "上海".
    for name in sorted(stores, key=len, reverse=True):
        if name and normalise(name) in text:
            return stores[name]
    return None
