"""What every `qianmian` command needs: settings, the vault, the database, and `run(...)`, which
drives a command's coroutine with the exit-status rules (0 done, 1 failed with one message on
stderr, 2 usage error)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from bot.settings import Settings
from profile_store.db import Database
from profile_store.pii import PiiVault

T = TypeVar("T")

stderr = Console(stderr=True)
log = logging.getLogger("qianmian")


class CommandFailed(Exception):
    """A failure the user can act on: its message is printed as it is, exit status 1."""


def settings_or_fail() -> Settings:
    try:
        settings = Settings()  # type: ignore[call-arg]  # pydantic-settings fills every field from the env
    except Exception as exc:  # pydantic's validation error names the variable
        raise CommandFailed(f"invalid configuration: {exc}") from exc
    # Our own modules log at QIANMIAN_LOG_LEVEL; libraries (alembic's migration chatter) only
    # when something is wrong.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    for name in ("qianmian", "bot", "handlers", "profile_store", "campaigns", "nlp"):
        logging.getLogger(name).setLevel(level)
    return settings


def vault_or_fail(settings: Settings) -> PiiVault:
    """Commands that touch phones need the key that encrypts them."""
    if not settings.secret_key:
        raise CommandFailed(
            "QIANMIAN_SECRET_KEY is not set: it encrypts phones at rest and is needed to read or "
            "write them. Set it in the environment (or .env), the same value for every process."
        )
    return PiiVault(settings.secret_key)


async def open_database(settings: Settings) -> Database:
    """The profile store, migrated to the newest schema."""
    db = Database(settings.database_url, slow_sql_ms=settings.slow_sql_ms)
    try:
        await db.migrate()
    except Exception as exc:
        await db.dispose()
        raise CommandFailed(f"cannot open the database at DATABASE_URL: {exc}") from exc
    return db


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; a failure becomes one message on stderr and exit status 1."""
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except typer.Exit:
        raise
    except CommandFailed as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and nothing to flush at exit.
        sys.stdout = open(os.devnull, "w")
        raise typer.Exit(0) from None
    except (OSError, ValueError) as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        stderr.print("interrupted")
        raise typer.Exit(1) from None
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        stderr.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None


def stdout_console() -> Console:
    """Results on stdout; wide enough for the summary tables when piped to a file."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def parse_as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def today(settings: Settings) -> date:
    """T by default: today in the business time zone."""
    return settings.today()


AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Compute as of this date (YYYY-MM-DD); default today.", metavar="DATE"),
]
IncludePii = Annotated[
    bool, typer.Option("--include-pii", help="Show phones and names in clear (default: masked).")
]
