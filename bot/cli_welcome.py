"""Welcome messages a marketer edits, and the outbox an operator watches:
`qianmian welcome list|set|reset`, `qianmian outbox`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bot import texts
from bot.cli_common import CommandFailed, open_database, run, settings_or_fail, stdout_console
from bot.welcome import TemplateError, check_text, template_for
from profile_store import outbox
from profile_store.welcome import KINDS, Template, delete_template, save_template, stored_templates

welcome_app = typer.Typer(help="Welcome messages sent to new WeCom contacts, by kind of customer.",
                          no_args_is_help=True)

Kind = Annotated[str, typer.Argument(help="new | price | loyal | default")]


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise CommandFailed(texts.WELCOME_BAD_KIND.format(kind=kind, kinds=", ".join(KINDS)))
    return kind


@welcome_app.command("list")
def list_command() -> None:
    """Every kind's current words (built-in ones unless a marketer changed them)."""

    async def main() -> dict[str, Template]:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                return await stored_templates(session)
        finally:
            await db.dispose()

    stored = run(main)
    table = Table(title=texts.WELCOME_TITLE)
    for column in texts.WELCOME_COLUMNS:
        table.add_column(column)
    for kind in KINDS:
        t = template_for(kind, stored)
        table.add_row(kind, texts.WELCOME_KIND_NAMES[kind], t.text, t.link_url, t.card_id, t.updated_by)
    stdout_console().print(table)


@welcome_app.command("set")
def set_command(
    kind: Kind,
    text: Annotated[str, typer.Argument(help="The words; {guide} and {store} are filled in.")],
    link_title: Annotated[str, typer.Option(help="Title of a link sent with it.")] = "",
    link_url: Annotated[str, typer.Option(help="A link sent with it (e.g. the 新人礼 coupon page).")] = "",
    card_id: Annotated[str, typer.Option(help="The coupon it offers (coupons.csv card_id).")] = "",
    by: Annotated[str, typer.Option("--by", help="Who changes it, for the record.")] = "cli",
) -> None:
    """Change the welcome of one kind of new contact."""
    _kind(kind)
    try:
        check_text(text)
    except TemplateError as exc:
        raise CommandFailed(exc.message()) from None
    if link_url and not link_url.startswith(("https://", "http://")):
        raise CommandFailed(texts.WELCOME_BAD_LINK.format(url=link_url))

    async def main() -> None:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                await save_template(session, Template(kind, text, link_title, link_url, card_id, by))
        finally:
            await db.dispose()

    run(main)
    stdout_console().print(texts.WELCOME_SET_DONE.format(kind=texts.WELCOME_KIND_NAMES[kind]), highlight=False)


@welcome_app.command("reset")
def reset_command(kind: Kind) -> None:
    """Go back to the built-in words of one kind."""
    _kind(kind)

    async def main() -> None:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                await delete_template(session, kind)
        finally:
            await db.dispose()

    run(main)
    stdout_console().print(texts.WELCOME_RESET_DONE.format(kind=texts.WELCOME_KIND_NAMES[kind]), highlight=False)


def outbox_command() -> None:
    """How many portrait cards, welcomes and answers are waiting, sent, failed or expired."""

    async def main() -> dict[str, int]:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                return await outbox.counts(session)
        finally:
            await db.dispose()

    counts = run(main)
    stdout_console().print(
        texts.OUTBOX_COUNTS.format(**{s: counts.get(s, 0) for s in ("pending", "sent", "failed", "expired")}),
        highlight=False,
    )
