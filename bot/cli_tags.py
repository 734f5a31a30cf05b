"""Operator commands for tags: `qianmian tags refresh|settings|set|reset`, `qianmian history
<identity>` and `qianmian labels add|remove|list`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.cli_common import (
    AsOf,
    CommandFailed,
    open_database,
    parse_as_of,
    run,
    settings_or_fail,
    stderr,
    stdout_console,
    today,
    vault_or_fail,
)
from profile_store.identity import IdentityGraph
from profile_store.labels import LabelError, add_label, label_log, labels_of, remove_label
from profile_store.lookup import count_active_persons, find_person
from profile_store.tagging.history import tag_history
from profile_store.tagging.refresh import load_rules, refresh_all, reset_rule, set_rule
from profile_store.tagging.rules import TagRules

tags_app = typer.Typer(help="Compute tags (tags.md) and change their thresholds.", no_args_is_help=True)
labels_app = typer.Typer(help="Manual labels (自定义标签) on persons, audited.", no_args_is_help=True)

Identity = Annotated[
    str,
    typer.Argument(
        help="kind:value (phone:138…, member_id:M001, openid:appid/openid), a person_id, or a bare "
        "member_id / phone / external_userid / unionid."
    ),
]
By = Annotated[str, typer.Option("--by", help="Who does it (WeCom userid or operator name), for the audit.")]


@asynccontextmanager
async def _about(identity: str) -> AsyncIterator[tuple[IdentityGraph, AsyncSession, str]]:
    """(identity graph, a transaction, the person) for a command about one person."""
    settings = settings_or_fail()
    graph = IdentityGraph(vault_or_fail(settings), settings.identity_blocklist)
    db = await open_database(settings)
    try:
        async with db.transaction() as session:
            person = await find_person(session, graph, identity)
            if person is None:
                raise CommandFailed(texts.NO_SUCH_PERSON.format(identity=identity))
            yield graph, session, person
    finally:
        await db.dispose()


def _shown(value: Any) -> str:
    if value is None:
        return texts.TAG_NONE
    if isinstance(value, list):
        return "、".join(str(v) for v in value) or texts.TAG_NONE
    return str(value)


@tags_app.command("refresh")
def refresh_command(as_of: AsOf = None) -> None:
    """Recompute every person's metrics and tags (keeps the history of what changed)."""
    when = parse_as_of(as_of)

    async def main() -> None:
        settings = settings_or_fail()
        db = await open_database(settings)
        day = when or today(settings)
        started = time.perf_counter()
        try:
            async with db.transaction() as session:
                total = await count_active_persons(session)
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=stderr,
            ) as progress:
                task = progress.add_task(texts.TAGS_REFRESHING.format(as_of=day), total=total)
                report = await refresh_all(db, day, progress=lambda n: progress.advance(task, n))
        finally:
            await db.dispose()
        stdout_console().print(
            texts.TAGS_REFRESHED.format(
                persons=report.persons, changes=report.changes, dropped=report.dropped,
                seconds=time.perf_counter() - started,
            ),
            highlight=False,
        )

    run(main)


@tags_app.command("settings")
def settings_command() -> None:
    """Show every threshold: current value, default, meaning."""

    async def main() -> TagRules:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                return await load_rules(session)
        finally:
            await db.dispose()

    rules = run(main)
    defaults = TagRules()
    table = Table(title=texts.TAGS_SETTINGS_TITLE)
    for column in texts.TAGS_SETTINGS_COLUMNS:
        table.add_column(column)
    for key, field in TagRules.model_fields.items():
        table.add_row(key, str(getattr(rules, key)), str(getattr(defaults, key)), field.description or "")
    stdout_console().print(table)


@tags_app.command("set")
def set_command(
    key: Annotated[str, typer.Argument(help="The threshold's key (see `qianmian tags settings`).")],
    value: Annotated[str, typer.Argument(help="Its new value.")],
    by: By = "cli",
) -> None:
    """Change a threshold; the next `tags refresh` (or the nightly one) applies it."""

    async def main() -> None:
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                await set_rule(session, key, value, by)
        except KeyError:
            raise CommandFailed(texts.TAGS_UNKNOWN_KEY.format(key=key, keys=", ".join(TagRules.model_fields))) from None
        except ValidationError as exc:
            reason = "; ".join(str(e["msg"]) for e in exc.errors())
            raise CommandFailed(texts.TAGS_BAD_VALUE.format(key=key, value=value, reason=reason)) from None
        finally:
            await db.dispose()
        stdout_console().print(texts.TAGS_SET_DONE.format(key=key, value=value), highlight=False)

    run(main)


@tags_app.command("reset")
def reset_command(key: Annotated[str, typer.Argument(help="The threshold's key.")]) -> None:
    """Put a threshold back to its default."""

    async def main() -> None:
        if key not in TagRules.model_fields:
            raise CommandFailed(texts.TAGS_UNKNOWN_KEY.format(key=key, keys=", ".join(TagRules.model_fields)))
        db = await open_database(settings_or_fail())
        try:
            async with db.transaction() as session:
                await reset_rule(session, key)
        finally:
            await db.dispose()
        default = getattr(TagRules(), key)
        stdout_console().print(texts.TAGS_RESET_DONE.format(key=key, value=default), highlight=False)

    run(main)


def history_command(
    identity: Identity,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only this tag (repeatable), e.g. lifecycle.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many changes.")] = 50,
) -> None:
    """What changed in a person's tags, and when (newest first)."""

    async def main() -> None:
        async with _about(identity) as (_, session, person):
            changes = await tag_history(session, person, tags=tuple(tag or ()), limit=limit)
        out = stdout_console()
        if not changes:
            out.print(texts.HISTORY_NONE.format(person=person), highlight=False)
            return
        out.print(texts.HISTORY_TITLE.format(person=person), highlight=False)
        for c in changes:
            out.print(
                texts.TAG_CHANGE.format(
                    on=c.changed_on.isoformat(), tag=texts.TAG_NAMES.get(c.tag, c.tag),
                    old=_shown(c.old), new=_shown(c.new),
                ),
                highlight=False,
            )

    run(main)


@labels_app.command("add")
def label_add_command(
    identity: Identity, label: Annotated[str, typer.Argument(help="The label.")], by: By = "cli"
) -> None:
    """Put a label on a person."""
    _change_label(identity, label, by, add=True)


@labels_app.command("remove")
def label_remove_command(
    identity: Identity, label: Annotated[str, typer.Argument(help="The label.")], by: By = "cli"
) -> None:
    """Take a label off a person."""
    _change_label(identity, label, by, add=False)


def _change_label(identity: str, label: str, by: str, *, add: bool) -> None:
    async def main() -> None:
        try:
            async with _about(identity) as (_, session, person):
                changed = await (add_label if add else remove_label)(session, person, label, by)
        except LabelError as exc:
            raise CommandFailed(
                texts.LABEL_INVALID.format(label=label, reason=texts.LABEL_REASONS.get(str(exc), str(exc)))
            ) from None
        message = (
            (texts.LABEL_ADDED if changed else texts.LABEL_ALREADY)
            if add
            else (texts.LABEL_REMOVED if changed else texts.LABEL_ABSENT)
        )
        stdout_console().print(message.format(person=person, label=label.strip()), highlight=False)

    run(main)


@labels_app.command("list")
def label_list_command(identity: Identity) -> None:
    """A person's labels, and who put or removed which, when."""

    async def main() -> None:
        async with _about(identity) as (_, session, person):
            labels = (await labels_of(session, [person])).get(person, [])
            log = await label_log(session, person)
        out = stdout_console()
        out.print(texts.LABELS_OF.format(person=person, labels=_shown(labels)), highlight=False)
        for entry in log:
            out.print(
                texts.LABEL_LOG_LINE.format(
                    at=entry.at.strftime("%Y-%m-%d %H:%M"), who=entry.by,
                    action=texts.LABEL_ACTIONS.get(entry.action, entry.action), label=entry.label,
                ),
                highlight=False,
            )

    run(main)


def portrait_command(
    identity: Identity,
    as_of: AsOf = None,
    include_pii: Annotated[bool, typer.Option("--include-pii", help="Show name and phone unmasked.")] = False,
) -> None:
    """The customer's portrait, as a guide receives it."""
    from bot.portrait_text import render
    from profile_store.portrait import portrait

    when = parse_as_of(as_of)

    async def main() -> None:
        async with _about(identity) as (graph, session, person):
            day = when or today(settings_or_fail())
            found = await portrait(session, graph, person, day, include_pii=include_pii)
        if found is None:
            raise CommandFailed(texts.NO_SUCH_PERSON.format(identity=identity))
        stdout_console().print(render(found), highlight=False, markup=False)

    run(main)
