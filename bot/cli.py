"""The `qianmian` command (runtime.md "Command line").

Results go to stdout, progress and messages to stderr. Exit status: 0 done, 1 the command failed
(one clear message on stderr), 2 usage error (typer/click's own).

Adding a command is one function here: `@app.command("serve")` for a command, or
`app.add_typer(other_app, name="deadletter")` for a group living in its own module; use
`run(...)` to drive a coroutine with the exit-status rules, and `settings_or_fail`,
`vault_or_fail`, `open_database` for what every command needs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bot.cli_campaign import report_app
from bot.cli_campaigns import campaign_app
from bot.cli_chat import ask_command, segment_command
from bot.cli_common import (
    AsOf,
    CommandFailed,
    IncludePii,
    open_database,
    parse_as_of,
    run,
    settings_or_fail,
    stderr,
    stdout_console,
    today,
    vault_or_fail,
)
from bot.cli_ops import deadletter
from bot.cli_qr import qr_app
from bot.cli_tags import history_command, labels_app, portrait_command, tags_app
from bot.cli_welcome import outbox_command, welcome_app

app = typer.Typer(
    name="qianmian",
    help="千面 qianmian — a customer-data bot for retailers on WeCom and WeChat official accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
export_app = typer.Typer(help="Export data from the profile store.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(report_app, name="report")
app.add_typer(campaign_app, name="campaign")
app.command("segment")(segment_command)
app.command("ask")(ask_command)

# ---------------------------------------------------------------------------------- import


class _RichProgress:
    """The importer's progress as a bar per file on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, file: str, total_bytes: int) -> None:
        self.tasks[file] = self.progress.add_task(file, total=max(total_bytes, 1))

    def update(self, file: str, bytes_read: int) -> None:
        self.progress.update(self.tasks[file], completed=bytes_read)


@app.command("import")
def import_command(
    directory: Annotated[
        Path, typer.Argument(help="Folder with stores/products/guides/coupons/members/orders/order_items/events.csv")
    ],
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="Where to write the rejects report (default DIR/rejects.csv)."),
    ] = None,
    refresh_tags: Annotated[
        bool, typer.Option("--tags/--no-tags", help="Recompute every person's tags afterwards (default).")
    ] = True,
) -> None:
    """Load the CSV files of the data contract; print a summary and write a rejects report."""
    from profile_store.identity import IdentityGraph
    from profile_store.importer import import_dir
    from profile_store.tagging.refresh import refresh_all

    async def main() -> None:
        settings = settings_or_fail()
        vault = vault_or_fail(settings)
        if not directory.is_dir():
            raise CommandFailed(f"{directory} is not a folder")
        db = await open_database(settings)
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                console=stderr, transient=False,
            ) as progress:
                report = await import_dir(
                    db, directory, vault,
                    graph=IdentityGraph(vault, settings.identity_blocklist),
                    rejects_path=rejects, tz=settings.tz, progress=_RichProgress(progress),
                )
            tagged = await refresh_all(db, today(settings)) if refresh_tags else None
        finally:
            await db.dispose()
        table = Table(title=f"import {directory}")
        for column in ("file", "read", "imported", "updated", "unchanged", "rejected", "warnings"):
            table.add_column(column, justify="left" if column == "file" else "right", no_wrap=True)
        for f in report.files:
            counts = (f.read, f.imported, f.updated, f.unchanged, f.rejected, f.warnings)
            table.add_row(f.file, *(str(v) for v in counts))
        out = stdout_console()
        out.print(table)
        for f in report.files:
            if f.missing_columns:
                out.print(f"{f.file}: no column {', '.join(f.missing_columns)} (read as empty)")
        out.print(f"persons: {report.persons}")
        if tagged is not None:
            out.print(f"tags: {tagged.persons} persons refreshed, {tagged.changes} tag changes", highlight=False)
        out.print(f"rejects report: {report.rejects_path} ({report.rejected} rejected)", highlight=False)

    run(main)


# ---------------------------------------------------------------------------------- export


@export_app.command("profiles")
def export_profiles_command(
    as_of: AsOf = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.", metavar="jsonl|csv")] = "jsonl",
    include_pii: IncludePii = False,
) -> None:
    """Every person with identities, metrics, tags and labels, one line each."""
    from profile_store.export import export_profiles
    from profile_store.tagging.refresh import enrich

    when = parse_as_of(as_of)
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter(f"{fmt!r}: choose jsonl or csv", param_hint="--format")

    async def main() -> None:
        settings = settings_or_fail()
        vault = vault_or_fail(settings)
        db = await open_database(settings)
        try:
            count = await export_profiles(
                db, sys.stdout, vault, as_of=when or today(settings), fmt=fmt,  # type: ignore[arg-type]
                include_pii=include_pii, enrich=enrich,
            )
        finally:
            await db.dispose()
        sys.stdout.flush()
        stderr.print(f"{count} profiles", highlight=False)

    run(main)


# ---------------------------------------------------------------------------------- generate


@app.command("generate")
def generate_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the CSV files into (created if needed).")],
    customers: Annotated[int, typer.Option("--customers", min=1, help="How many customers.")] = 1_000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files.")] = 1,
    end_date: Annotated[
        str | None, typer.Option("--end-date", help="Last day of the data (YYYY-MM-DD).", metavar="DATE")
    ] = None,
) -> None:
    """Write a realistic, messy retailer data set (for demos and benchmarks)."""
    from profile_store.generator import DEFAULT_END_DATE, generate

    end = parse_as_of(end_date) or DEFAULT_END_DATE

    async def main() -> Any:
        return generate(directory, customers=customers, seed=seed, end_date=end)

    result = run(main)
    out = stdout_console()
    for name, rows in result.rows.items():
        out.print(f"{name}.csv: {rows} rows", highlight=False)
    out.print(f"rows that must be rejected: {len(result.bad_rows)}; invalid phones: {len(result.bad_phones)}")


@app.command("serve")
def serve_command(
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="all: the HTTP edge here plus worker processes; edge: only record and answer; "
            "worker: only process and send (no HTTP); sender: only send (no HTTP, no processing).",
        ),
    ] = "all",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=0, help="Worker processes beside the edge (QIANMIAN_SERVE_WORKERS; 0: one process)."
        ),
    ] = None,
) -> None:
    """The production bot: callback endpoints, health and metrics (settings from the environment)."""
    from bot.serve import ROLES, MissingSettings, serve

    if role not in ROLES:
        stderr.print(f"[red]error:[/red] --role must be one of {', '.join(ROLES)}", highlight=False)
        raise typer.Exit(2)
    settings = settings_or_fail()
    try:
        serve(settings, role=role, workers=workers)
    except MissingSettings as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command("demo")
def demo_command(
    workdir: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its database and files.")] = Path(
        "qianmian-demo"
    ),
    customers: Annotated[int, typer.Option("--customers", min=20, help="Size of the sample retailer.")] = 400,
    port: Annotated[int, typer.Option("--port", help="Where the bot listens (127.0.0.1).")] = 8080,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Keep the bot running after the story.")] = True,
) -> None:
    """The whole product on this machine: simulator, bot and a sample retailer, no account needed."""
    from bot.demo import run_demo

    workdir.mkdir(parents=True, exist_ok=True)
    # The story goes to the terminal; the bot's own log lines to a file beside the demo's data.
    logging.basicConfig(level=logging.INFO, filename=workdir / "demo.log",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        await run_demo(workdir, customers=customers, port=port, keep_running=wait, console=stdout_console())

    try:
        run(main)
    except typer.Exit as exc:
        if exc.exit_code == 1 and wait:  # Ctrl-C ends a demo that was left running: that is success
            raise typer.Exit(0) from None
        raise


identity_app = typer.Typer(help="Look into One ID: who is one person, and why.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")


@identity_app.command("explain")
def identity_explain_command(
    kind: Annotated[str, typer.Argument(help="member_id, phone, unionid, openid (appid/openid), "
                                             "miniapp_openid or external_userid.")],
    value: Annotated[str, typer.Argument(help="The identifier's value.")],
    include_pii: Annotated[bool, typer.Option("--include-pii", help="Show phones and names unmasked.")] = False,
) -> None:
    """The person an identifier belongs to: all their identifiers, and the merges and splits behind it."""
    from profile_store.identity import IdentityGraph
    from profile_store.lookup import person_card
    from profile_store.normalize import IDENTIFIER_KINDS

    if kind not in IDENTIFIER_KINDS:
        stderr.print(f"[red]error:[/red] unknown identifier kind {kind!r}; one of {', '.join(IDENTIFIER_KINDS)}")
        raise typer.Exit(2)
    settings = settings_or_fail()
    vault = vault_or_fail(settings)

    async def main() -> None:
        db = await open_database(settings)
        try:
            graph = IdentityGraph(vault, settings.identity_blocklist)
            async with db.transaction() as session:
                person = await graph.person_for(session, kind, value)
                card = await person_card(session, graph, person, include_pii=include_pii) if person else None
        finally:
            await db.dispose()
        if card is None:
            raise CommandFailed(f"no person holds {kind} {value!r} (unknown, or a shared identifier)")
        out = stdout_console()
        out.print(f"person {card.person_id}", highlight=False)
        for k, values in sorted(card.identities.items()):
            out.print(f"  {k}: {', '.join(values)}", highlight=False)
        out.print(f"  paid orders: {card.orders_paid}, {card.amount_paid_fen / 100:.2f} yuan; "
                  f"events: {', '.join(f'{t}×{n}' for t, n in card.events.items()) or '-'}", highlight=False)
        for at, action, why in card.history:
            out.print(f"  {at:%Y-%m-%d %H:%M:%S} {action}: {why}", highlight=False)

    run(main)


app.add_typer(deadletter, name="deadletter")
app.add_typer(tags_app, name="tags")
app.add_typer(labels_app, name="labels")
app.add_typer(qr_app, name="qr")
app.add_typer(welcome_app, name="welcome")
app.command("outbox")(outbox_command)
app.command("history")(history_command)
app.command("portrait")(portrait_command)


def main() -> None:
    """Console entry point (`qianmian`)."""
    app()


if __name__ == "__main__":
    main()
