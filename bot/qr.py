"""QR codes for stores and guides: WeCom 「联系我」 contact ways and official-account follow codes.

- A store's WeCom code is a multi-person contact way (type 2, scene 2 = QR) over the store's
  guides (its managers when it has none): WeCom rotates new customers among them. A guide's code
  is a single-person way (type 1). `skip_verify` adds the customer without the guide confirming.
- An official-account code is a permanent `QR_LIMIT_STR_SCENE` with the same string as scene.
- The state (`store_<id>` / `guide_<id>`) comes back in the add-contact / subscribe callback, so
  a scan is attributed to its store or guide. Tencent caps it (30 characters for WeCom, 64 for an
  OA's scene_str): a longer one is refused here, before any Tencent call.
- Creating a code spends Tencent's quota (500 000 contact ways per corp): a code asked for again
  is taken from `contact_way` unless a new one is asked for. The row is written as soon as
  Tencent answers, before the picture is fetched, so a failed download never costs a second code.
- The picture is saved under QIANMIAN_MEDIA_DIR/qr/, written atomically (temp file + rename).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bot import texts
from bot.settings import Settings
from bot.tencent.errors import TencentError
from profile_store import contact_ways, staff
from profile_store.contact_ways import WECOM, StoredQr, state_for
from profile_store.db import Database

log = logging.getLogger(__name__)

Kind = Literal["store", "guide"]
# Tencent's limits on what comes back in the callback: WeCom `state` (doc 92228), OA `scene_str`.
WECOM_STATE_MAX = 30
OA_SCENE_MAX = 64
PICTURE_SUFFIXES = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"))


class QrError(Exception):
    """A QR code that cannot be made; `str()` is the Chinese message for whoever asked, `code` is
    for logs and tests (state_too_long, unknown_store, unknown_guide, no_staff, not_configured,
    tencent, not_a_picture)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WeComQrApi(Protocol):
    async def add_contact_way(
        self, *, user: list[str], state: str | None = ..., type: int = ..., scene: int = ..., skip_verify: bool = ...
    ) -> dict[str, Any]: ...

    async def download(self, url: str) -> bytes: ...


class OfficialAccountQrApi(Protocol):
    async def create_qrcode(self, scene_str: str, permanent: bool) -> dict[str, Any]: ...

    def qrcode_picture_url(self, ticket: str) -> str: ...

    async def download(self, url: str) -> bytes: ...


@dataclass(frozen=True)
class QrCode:
    """A QR code ready to hand out."""

    kind: Kind
    channel: str  # "wecom" or the OA's appid
    state: str
    store_id: str
    guide_id: str
    name: str  # the store's or the guide's name
    users: list[str]  # the guides the code leads to (WeCom); empty for an OA code
    image_path: Path
    qr_url: str
    config_id: str  # WeCom config_id, or the OA ticket
    reused: bool
    user_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    kind: Kind
    channel: str
    state: str
    store_id: str
    guide_id: str
    name: str


def check_state(kind: Kind, target: str, channel: str) -> str:
    """The state of a code, or QrError when Tencent would refuse it."""
    if not target.strip():
        raise QrError("state_empty", texts.QR_STATE_EMPTY.format(kind=texts.QR_KINDS[kind]))
    state = state_for(kind, target)
    limit = WECOM_STATE_MAX if channel == WECOM else OA_SCENE_MAX
    if len(state) > limit:
        raise QrError(
            "state_too_long",
            texts.QR_STATE_TOO_LONG.format(state=state, length=len(state), limit=limit, kind=texts.QR_KINDS[kind]),
        )
    return state


class QrMaker:
    """Makes (or finds again) the QR codes of stores and guides."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        wecom: WeComQrApi | None = None,
        wechat: Mapping[str, OfficialAccountQrApi] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.wecom = wecom
        self.wechat = dict(wechat or {})

    async def create_store_qr(
        self, store_id: str, *, by: str, oa: str | None = None, new: bool = False, asked_at: datetime | None = None
    ) -> QrCode:
        """A store's code. `new`: replace the stored one (unless it was made after `asked_at`,
        i.e. by this very request, run again after a crash)."""
        channel = oa or WECOM
        state = check_state("store", store_id, channel)
        async with self.db.transaction() as session:
            name = await staff.store_name(session, store_id)
            if name is None:
                raise QrError("unknown_store", texts.QR_UNKNOWN_STORE.format(store_id=store_id))
            users = await staff.store_guides(session, store_id) if channel == WECOM else []
            names = await contact_ways.staff_names(session, users)
            stored = await contact_ways.get_contact_way(session, channel, state)
        target = _Target("store", channel, state, store_id, "", name)
        return await self._made(target, users, names, stored, by=by, new=new, asked_at=asked_at)

    async def create_guide_qr(
        self, guide_id: str, *, by: str, oa: str | None = None, new: bool = False, asked_at: datetime | None = None
    ) -> QrCode:
        """A guide's own code (any staff member of guides.csv may have one)."""
        channel = oa or WECOM
        state = check_state("guide", guide_id, channel)
        async with self.db.transaction() as session:
            member = await staff.staff_of(session, guide_id)
            stored = await contact_ways.get_contact_way(session, channel, state)
        if member is None:
            raise QrError("unknown_guide", texts.QR_UNKNOWN_GUIDE.format(guide_id=guide_id))
        users = [guide_id] if channel == WECOM else []
        names = {guide_id: member.name} if member.name else {}
        target = _Target("guide", channel, state, member.store_id, guide_id, member.name or guide_id)
        return await self._made(target, users, names, stored, by=by, new=new, asked_at=asked_at)

    # ------------------------------------------------------------------ the steps

    async def _made(
        self,
        target: _Target,
        users: list[str],
        names: dict[str, str],
        stored: StoredQr | None,
        *,
        by: str,
        new: bool,
        asked_at: datetime | None,
    ) -> QrCode:
        if stored is not None and _reusable(stored, new=new, asked_at=asked_at):
            # The code leads to whom it led to when made (guides may have changed since).
            if stored.users != users:
                names = await self._names(stored.users)
            return _code(target, stored, await self._picture(stored), reused=True, names=names)
        config_id, qr_url = await self._create(target, users)
        row = StoredQr(
            channel=target.channel, state=target.state, store_id=target.store_id, guide_id=target.guide_id,
            config_id=config_id, qr_url=qr_url, image_path="", users=users, created_by=by, created_at=datetime.now(UTC),
        )
        async with self.db.transaction() as session:
            await contact_ways.save_contact_way(session, row)
        log.info("qr: created %s %s (%s) for %s", target.channel, target.state, config_id, by)
        return _code(target, row, await self._picture(row), reused=False, names=names)

    async def _create(self, target: _Target, users: list[str]) -> tuple[str, str]:
        """Ask Tencent for a new code → (config_id or ticket, picture URL)."""
        channel, state = target.channel, target.state
        try:
            if channel == WECOM:
                if not users:  # a store nobody works in (yet): WeCom would refuse (40058)
                    raise QrError("no_staff", texts.QR_NO_STAFF.format(store_id=target.store_id))
                if self.wecom is None:
                    raise QrError("not_configured", texts.QR_NO_WECOM)
                # Store: several guides, WeCom rotates among them (type 2); guide: one person (type 1).
                answer = await self.wecom.add_contact_way(
                    user=users, state=state, type=2 if target.kind == "store" else 1, scene=2, skip_verify=True
                )
                return str(answer["config_id"]), str(answer["qr_code"])
            client = self.wechat.get(channel)
            if client is None:
                raise QrError("not_configured", texts.QR_NO_OA.format(appid=channel))
            answer = await client.create_qrcode(state, permanent=True)
            ticket = str(answer["ticket"])
            return ticket, client.qrcode_picture_url(ticket)
        except TencentError as exc:
            raise QrError("tencent", texts.QR_TENCENT_FAILED.format(error=exc)) from exc

    async def _picture(self, qr: StoredQr) -> Path:
        """The code's picture on disk: the saved one, else fetched from Tencent and saved."""
        if qr.image_path and Path(qr.image_path).is_file():
            return Path(qr.image_path)
        client = self.wecom if qr.channel == WECOM else self.wechat.get(qr.channel)
        if client is None:
            raise QrError(
                "not_configured", texts.QR_NO_WECOM if qr.channel == WECOM else texts.QR_NO_OA.format(appid=qr.channel)
            )
        try:
            data = await client.download(qr.qr_url)
        except TencentError as exc:
            raise QrError("tencent", texts.QR_TENCENT_FAILED.format(error=exc)) from exc
        suffix = next((s for magic, s in PICTURE_SUFFIXES if data.startswith(magic)), None)
        if suffix is None:
            raise QrError("not_a_picture", texts.QR_NOT_A_PICTURE.format(url=qr.qr_url))
        path = _save(Path(self.settings.media_dir) / "qr", picture_name(qr.channel, qr.state) + suffix, data)
        async with self.db.transaction() as session:
            await contact_ways.set_image_path(session, qr.channel, qr.state, str(path))
        return path

    async def _names(self, userids: list[str]) -> dict[str, str]:
        async with self.db.transaction() as session:
            return await contact_ways.staff_names(session, userids)


def _code(target: _Target, stored: StoredQr, path: Path, *, reused: bool, names: dict[str, str]) -> QrCode:
    return QrCode(
        kind=target.kind, channel=target.channel, state=target.state, store_id=target.store_id,
        guide_id=target.guide_id, name=target.name, users=list(stored.users), image_path=path,
        qr_url=stored.qr_url, config_id=stored.config_id, reused=reused, user_names=names,
    )


def _reusable(stored: StoredQr, *, new: bool, asked_at: datetime | None) -> bool:
    if not new:
        return True
    # A re-run of the same request (after a crash) finds the code it made: that one is "new".
    return asked_at is not None and stored.created_at is not None and stored.created_at >= asked_at


def picture_name(channel: str, state: str) -> str:
    """wecom_store_S001 / oa_<appid>_guide_G001: one file per code, safe whatever the ids hold."""
    prefix = "wecom" if channel == WECOM else f"oa_{channel}"
    return re.sub(r"[^0-9A-Za-z_.@-]", "_", f"{prefix}_{state}").lstrip(".")


def _save(directory: Path, name: str, data: bytes) -> Path:
    # Write then rename: a reader (the outbox sender) never sees half a picture.
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".qr-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return (directory / name).resolve()


# ---------------------------------------------------------------- what the asker is told


def describe(qr: QrCode) -> str:
    """The code in a few lines: what it is, its state, whom it leads to, where its picture is."""
    if qr.kind == "store":
        who = texts.QR_WHO_STORE.format(name=qr.name, store_id=qr.store_id)
    else:
        who = texts.QR_WHO_GUIDE.format(name=qr.name, guide_id=qr.guide_id)
    channel = texts.QR_CHANNEL_WECOM if qr.channel == WECOM else texts.QR_CHANNEL_OA.format(appid=qr.channel)
    lines = [(texts.QR_REUSED if qr.reused else texts.QR_CREATED).format(who=who, channel=channel)]
    lines.append(texts.QR_STATE_LINE.format(state=qr.state))
    if qr.users:
        guides = "、".join(
            texts.QR_GUIDE_NAME.format(name=qr.user_names[u], guide_id=u) if qr.user_names.get(u) else u
            for u in qr.users
        )
        line = texts.QR_ROTATES_LINE if len(qr.users) > 1 else texts.QR_SERVED_BY_LINE
        lines.append(line.format(guides=guides))
    lines.append(texts.QR_PICTURE_LINE.format(path=qr.image_path))
    return "\n".join(lines)
