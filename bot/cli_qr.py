"""`qianmian qr create --store S001 | --guide G001 [--oa APPID] [--new]` and `qianmian qr list`:
the 「联系我」 QR codes of stores and guides (bot/qr.py), made from the command line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import aiohttp
import typer
from rich.table import Table

from bot import texts
from bot.cli_common import CommandFailed, open_database, run, settings_or_fail, stdout_console
from bot.qr import OfficialAccountQrApi, QrError, QrMaker, describe
from bot.settings import Settings
from bot.tencent.wechat import OfficialAccountClient
from bot.tencent.wecom import WeComClient
from profile_store.contact_ways import StoredQr, list_contact_ways
from profile_store.db import Database

qr_app = typer.Typer(help="QR codes (「联系我」 / follow) of stores and guides.", no_args_is_help=True)


@asynccontextmanager
async def _maker(settings: Settings, oa: str | None) -> AsyncIterator[QrMaker]:
    """A QrMaker with the Tencent clients this command can have (a missing one is reported by
    the maker only if it is actually needed: a stored code needs no Tencent call)."""
    db = await open_database(settings)
    try:
        timeout = aiohttp.ClientTimeout(total=settings.api_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            wecom = None
            if settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id:
                wecom = WeComClient.from_settings(http, db, settings)
            wechat: dict[str, OfficialAccountQrApi] = {}
            if oa is not None and oa in settings.official_accounts():
                try:
                    wechat[oa] = OfficialAccountClient.from_settings(http, db, settings, oa)
                except ValueError:
                    pass  # configured without a secret: the maker says so when it needs it
            yield QrMaker(db, settings, wecom=wecom, wechat=wechat)
    finally:
        await db.dispose()


@qr_app.command("create")
def create_command(
    store: Annotated[str | None, typer.Option("--store", help="A store's code (store_id of stores.csv).")] = None,
    guide: Annotated[str | None, typer.Option("--guide", help="A guide's own code (guide_id = WeCom userid).")] = None,
    oa: Annotated[
        str | None, typer.Option("--oa", help="An official account's follow code (its appid) instead of WeCom's.")
    ] = None,
    new: Annotated[bool, typer.Option("--new", help="Ask Tencent for a new code instead of the stored one.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who asks (WeCom userid or operator name), for the record.")] = "cli",
) -> None:
    """Make a store's or a guide's QR code (or find the stored one) and save its picture."""
    if (store is None) == (guide is None):
        raise typer.BadParameter(texts.QR_CLI_ONE_TARGET)

    async def main() -> str:
        async with _maker(settings_or_fail(), oa) as maker:
            try:
                if store is not None:
                    qr = await maker.create_store_qr(store, by=by, oa=oa, new=new)
                else:
                    assert guide is not None
                    qr = await maker.create_guide_qr(guide, by=by, oa=oa, new=new)
            except QrError as exc:
                raise CommandFailed(str(exc)) from None
        return describe(qr)

    stdout_console().print(run(main), highlight=False, markup=False)


@qr_app.command("list")
def list_command(
    store: Annotated[str | None, typer.Option("--store", help="Only this store's codes.")] = None,
) -> None:
    """Every QR code made so far: channel, state, store, guide, whom it rotates among, picture."""

    async def main() -> list[StoredQr]:
        db: Database = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                return await list_contact_ways(session, store_id=store)
        finally:
            await db.dispose()

    ways = run(main)
    out = stdout_console()
    if not ways:
        out.print(texts.QR_LIST_NONE, highlight=False)
        return
    table = Table(title=texts.QR_LIST_TITLE)
    for column in texts.QR_LIST_COLUMNS:
        table.add_column(column)
    for way in ways:
        table.add_row(
            way.channel, way.state, way.store_id, way.guide_id, "、".join(way.users), way.image_path,
            way.created_by, way.created_at.strftime("%Y-%m-%d %H:%M") if way.created_at else "",
        )
    out.print(table)
