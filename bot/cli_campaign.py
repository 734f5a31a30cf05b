"""`qianmian report campaign NAME [--as-of D] [--chart PATH]`: a campaign's effect (campaigns.measure),
the same text the chat answers "统计双11活动的效果" with, and optionally its chart as a PNG file.

Registered in bot/cli.py as `app.add_typer(report_app, name="report")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot import texts
from bot.cli_common import AsOf, CommandFailed, open_database, parse_as_of, run, settings_or_fail, today
from bot.effect_chart import render_effect_chart, render_effect_text
from campaigns.measure import UnknownCampaign, effect

report_app = typer.Typer(help="Reports: the effect of a campaign.", no_args_is_help=True)

Chart = Annotated[
    Path | None,
    typer.Option("--chart", help="Also write the effect chart (PNG, 800×500) to this file.", metavar="PATH"),
]


@report_app.callback()
def _reports() -> None:
    """Reports (a group even with one command: `report campaign NAME`)."""


@report_app.command("campaign")
def campaign_command(
    name: Annotated[str, typer.Argument(help="The campaign's name (or its numeric id).", metavar="NAME")],
    as_of: AsOf = None,
    chart: Chart = None,
) -> None:
    """Print a campaign's effect: reach, coupons, conversion and uplift over the control group
    (95 % interval), revenue, by wave, store and guide, and across channels."""
    when = parse_as_of(as_of)

    async def main() -> None:
        settings = settings_or_fail()
        db = await open_database(settings)
        try:
            try:
                measured = await effect(db, name, today=when or today(settings), tz=settings.tz)
            except UnknownCampaign:
                raise CommandFailed(texts.EFFECT_UNKNOWN.format(campaign=name)) from None
        finally:
            await db.dispose()
        typer.echo(render_effect_text(measured))
        if chart is not None:
            chart.parent.mkdir(parents=True, exist_ok=True)
            chart.write_bytes(render_effect_chart(measured))

    run(main)


__all__ = ["campaign_command", "report_app"]
