"""`qianmian segment "TEXT"` and `qianmian ask "TEXT" --as USERID` (runtime.md "Command line").

`segment` evaluates a segment written as in commands.md and prints its people; `ask` runs one
chat command exactly as if it was typed in WeCom by that user (same assistant, same roles, same
audit) and prints the answer; `--yes` confirms a preview at once.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from bot import texts
from bot.cli_common import (
    AsOf,
    CommandFailed,
    IncludePii,
    open_database,
    parse_as_of,
    run,
    settings_or_fail,
    stderr,
    today,
    vault_or_fail,
)

FORMATS = ("count", "csv", "jsonl")


def segment_command(
    text: Annotated[str, typer.Argument(help="The segment, in Chinese (圈选近90天消费2次以上的会员).")],
    as_of: AsOf = None,
    fmt: Annotated[str, typer.Option("--format", help="count, csv or jsonl.", metavar="count|csv|jsonl")] = "count",
    include_pii: IncludePii = False,
) -> None:
    """Evaluate a segment written as in commands.md: its size, or its people as profile lines."""
    from bot.chat.engine import not_understood_text
    from nlp.describe import describe
    from nlp.intent import NotUnderstood
    from nlp.parse import parse_segment
    from profile_store.export import export_profiles
    from profile_store.segments.asof import profile_relation
    from profile_store.segments.sql import members
    from profile_store.tagging.refresh import enrich
    from profile_store.vocabulary import load_vocabulary

    when = parse_as_of(as_of)
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: choose count, csv or jsonl", param_hint="--format")

    async def main() -> None:
        settings = settings_or_fail()
        vault = vault_or_fail(settings)
        db = await open_database(settings)
        day = when or today(settings)
        try:
            async with db.read() as session:
                vocabulary = await load_vocabulary(session)
            parsed = parse_segment(text, vocabulary, day)
            if isinstance(parsed, NotUnderstood):
                raise CommandFailed(not_understood_text(parsed))
            async with db.read() as session:
                relation = await profile_relation(session, day)
                people = await members(session, parsed, day, profile=relation)
            stderr.print(texts.CHAT_READING.format(reading=describe(parsed, vocabulary, day)), highlight=False)
            if fmt == "count":
                print(len(people))
                return
            await export_profiles(
                db,
                sys.stdout,
                vault,
                as_of=day,
                fmt=fmt,  # type: ignore[arg-type]
                include_pii=include_pii,
                enrich=enrich,
                only=people,
            )
            sys.stdout.flush()
            stderr.print(texts.CHAT_SEGMENT_COUNT.format(count=len(people)), highlight=False)
        finally:
            await db.dispose()

    run(main)


def ask_command(
    text: Annotated[str, typer.Argument(help="The command, as typed in WeCom.")],
    userid: Annotated[str, typer.Option("--as", help="The WeCom userid of the staff member (guides.csv).")],
    as_of: AsOf = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a preview at once (as replying 确认).")] = False,
) -> None:
    """Run one chat command as that WeCom user and print the bot's answer."""
    from bot.chat.engine import Assistant
    from bot.chat.reply import Reply, audit
    from bot.portrait_links import PortraitLinks
    from profile_store.identity import IdentityGraph

    when = parse_as_of(as_of)

    async def main() -> None:
        settings = settings_or_fail()
        vault = vault_or_fail(settings)
        db = await open_database(settings)
        try:
            links = PortraitLinks(
                settings.secret_key or "", settings.public_url, ttl_seconds=settings.portrait_link_hours * 3600
            )
            assistant = Assistant(db, IdentityGraph(vault, settings.identity_blocklist), settings, links)

            async def working(notice: str) -> None:
                stderr.print(notice, highlight=False)

            async def one(words: str) -> Reply:
                reply = await assistant.answer(userid, words, now=datetime.now(UTC), as_of=when, progress=working)
                async with db.transaction() as session:
                    await audit(session, userid, words, reply)
                for message in reply.messages:
                    print(message if message == reply.text else texts.CHAT_ASK_SENT_IMAGE.format(path=message))
                return reply

            reply = await one(text)
            if yes and reply.outcome == "preview":
                print()
                reply = await one(texts.CHAT_CONFIRM_WORD)
            if reply.outcome in ("refused", "failed", "not_understood"):
                raise typer.Exit(1)
        finally:
            await db.dispose()

    run(main)
