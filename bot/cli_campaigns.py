"""`qianmian campaign …`: campaigns from the command line (issue 6), the CLI twin of the chat's
campaign command, with variants chosen per person by tags within one campaign (千人千面).

    qianmian campaign create 双12 --segment "上海门店的会员" \\
        --variant "价格导向的人=发30元无门槛券，到店使用" --variant "品质导向的人=新品上市" \\
        --default "会员专享礼遇" --at "2026-12-01 10:00" [--yes]
    qianmian campaign list
    qianmian campaign pause|resume|cancel NAME [--yes]

Without `--yes` a command previews (stores nothing); with it, it applies. Each `--variant
"WHO=CONTENT"` is a variant whose `when` is the Chinese segment WHO; the first variant holding a
person wins (campaigns/plan.py) and `--default` holds everyone left — without it, persons no
variant holds are not targeted. Results on stdout, errors on stderr with exit status 1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

import typer

from bot import texts
from bot.cli_common import CommandFailed, open_database, run, settings_or_fail

campaign_app = typer.Typer(help="Campaigns: create (preview, then --yes), list, pause, resume, cancel.",
                           no_args_is_help=True)

CHANNELS = ("any", "wecom", "oa", "sms")
# Rows of campaign_target that are not a message (held back).
_HELD = ("control", "capped", "opted_out", "unreachable")


def split_variant(value: str) -> tuple[str, str]:
    """"价格导向的人=发30元无门槛券" → ("价格导向的人", "发30元无门槛券"); a full-width ＝ too."""
    who, sep, content = value.replace("＝", "=").partition("=")
    if not sep or not who.strip() or not content.strip():
        raise typer.BadParameter(f"{value!r}: write WHO=CONTENT, e.g. \"价格导向的人=发30元无门槛券\"",
                                 param_hint="--variant")
    return who.strip(), content.strip()


def parse_at(value: str | None, tz: str) -> datetime | None:
    """"2026-12-01 10:00" in the business time zone → aware datetime."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a time (YYYY-MM-DD HH:MM)", param_hint="--at") from None
    return moment.replace(tzinfo=ZoneInfo(tz)) if moment.tzinfo is None else moment


def _local(moment: datetime | None, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if moment else texts.CHAT_CAMPAIGN_NOW


def _figures(report: Any, variants: list[dict[str, Any]], tz: str) -> list[str]:
    channels = "、".join(
        f"{texts.CHAT_CAMPAIGN_CHANNEL_NAMES.get(c, c)} {n}" for c, n in sorted(report.by_channel.items()) if n
    )
    lines = [texts.CLI_CAMPAIGN_FIGURES.format(
        when=_local(report.due_at, tz), targeted=report.targeted, planned=report.planned, channels=channels or "-",
        control=report.control, capped=report.capped, opted_out=report.opted_out, unreachable=report.unreachable,
        quota=report.wecom_quota_exhausted, no_variant=report.no_variant,
    )]
    for v in variants:
        lines.append(texts.CLI_CAMPAIGN_VARIANT_LINE.format(
            name=v["name"], who=v.get("who") or texts.CLI_CAMPAIGN_EVERYONE_LEFT,
            targeted=report.by_variant.get(v["name"], 0), planned=report.planned_by_variant.get(v["name"], 0),
            content=v["content"],
        ))
    return lines


@campaign_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="The campaign's name (unique): 统计<name>的效果.")],
    segment: Annotated[str, typer.Option("--segment", help="Whom, in Chinese (上海门店的会员).")],
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="WHO=CONTENT, repeatable: the first WHO that holds a person wins.",
                     metavar="WHO=CONTENT"),
    ] = None,
    default: Annotated[
        str | None, typer.Option("--default", help="The content for everyone no --variant holds.")
    ] = None,
    channel: Annotated[
        str, typer.Option("--channel", help="any, wecom, oa or sms.", metavar="any|wecom|oa|sms")
    ] = "any",
    at: Annotated[
        str | None, typer.Option("--at", help="Send time, local (YYYY-MM-DD HH:MM); default now.", metavar="TIME")
    ] = None,
    control: Annotated[
        float, typer.Option("--control", min=0, max=100, help="Control group, percent of the targeted.")
    ] = 10.0,
    by: Annotated[str, typer.Option("--by", help="Who creates and confirms it (a WeCom userid).")] = "cli",
    yes: Annotated[bool, typer.Option("--yes", help="Store and plan it (default: preview only).")] = False,
) -> None:
    """Preview a campaign; with --yes store it (scheduled) and plan one row per person."""
    from bot.chat.engine import not_understood_text
    from campaigns.drafts import campaign_of, draft_of
    from campaigns.plan import PlanRules, plan, preview
    from nlp import segment as seg
    from nlp.describe import describe
    from nlp.intent import CampaignCommand, CampaignVariant, NotUnderstood
    from nlp.parse import parse_segment
    from profile_store.campaigns import create_campaign, name_taken
    from profile_store.models import Campaign
    from profile_store.vocabulary import load_vocabulary

    if channel not in CHANNELS:
        raise typer.BadParameter(f"{channel!r}: choose any, wecom, oa or sms", param_hint="--channel")
    pairs = [split_variant(v) for v in variant or []]
    if not pairs and not (default or "").strip():
        raise typer.BadParameter("give at least one --variant or a --default", param_hint="--variant")
    name = name.strip()
    if not name:
        raise typer.BadParameter("the name is empty", param_hint="NAME")

    async def main() -> None:
        settings = settings_or_fail()
        send_at = parse_at(at, settings.tz)
        now = datetime.now(UTC)
        if send_at is not None and send_at < now:
            raise CommandFailed(texts.CLI_CAMPAIGN_AT_PAST.format(at=at))
        day = settings.today()
        db = await open_database(settings)
        try:
            async with db.read() as session:
                if await name_taken(session, name):
                    raise CommandFailed(texts.CLI_CAMPAIGN_NAME_TAKEN.format(name=name))
                vocabulary = await load_vocabulary(session)

            def understood(text: str, where: str) -> seg.Segment:
                parsed = parse_segment(text, vocabulary, day)
                if isinstance(parsed, NotUnderstood):
                    raise CommandFailed(texts.CLI_CAMPAIGN_SEGMENT_BAD.format(
                        where=texts.CLI_CAMPAIGN_SEGMENT_WHERE[where], text=text, why=not_understood_text(parsed)))
                return parsed

            tree = understood(segment, "segment")
            # the variants as the chat's 千人千面 command gives them, through the same draft
            variants = [CampaignVariant(who=who, when=understood(who, "variant"), content=content)
                        for who, content in pairs]
            if default and default.strip():
                variants.append(CampaignVariant(who="", when=None, content=default.strip()))
            command = CampaignCommand(segment=tree, channel=cast(Any, channel), send_at=send_at, name=name,
                                      variants=tuple(variants))
            reading = describe(tree, vocabulary, day)
            draft = draft_of(
                command, tree, name=name, reading=reading, by=by, coupons=dict(vocabulary.coupons),
                whens=[(v.when, "" if v.when is None else describe(v.when, vocabulary, day)) for v in variants],
                control_pct=control,
            )

            def row(status: str) -> Campaign:
                return campaign_of(draft, status=status)

            rules = PlanRules.from_settings(settings)
            print(texts.CHAT_READING.format(reading=reading))
            if not yes:
                report = await preview(db, row("draft"), now=now, today=day, rules=rules)
                print(texts.CLI_CAMPAIGN_PREVIEW_HEAD.format(name=name))
                print("\n".join(_figures(report, draft["variants"], settings.tz)))
                print(texts.CLI_CAMPAIGN_CONFIRM_HINT)
                return
            async with db.transaction() as session:
                if await name_taken(session, name):  # taken meanwhile
                    raise CommandFailed(texts.CLI_CAMPAIGN_NAME_TAKEN.format(name=name))
                campaign = row("scheduled")
                campaign.confirmed_by, campaign.confirmed_at = by, datetime.now(UTC)
                campaign_id = await create_campaign(session, campaign)
            report = await plan(db, campaign_id, now=now, today=day, rules=rules)
            print(texts.CLI_CAMPAIGN_SCHEDULED_HEAD.format(name=name, id=campaign_id))
            print("\n".join(_figures(report, draft["variants"], settings.tz)))
        finally:
            await db.dispose()

    run(main)


@campaign_app.command("list")
def list_command() -> None:
    """Every campaign: name, status, send time, targeted / planned (messages) / sent."""
    from sqlalchemy import text

    from profile_store.times import read_utc as aware

    held = ", ".join(f"'{o}'" for o in _HELD)

    async def main() -> None:
        settings = settings_or_fail()
        db = await open_database(settings)
        try:
            async with db.read() as session:
                rows = (await session.execute(text(
                    "SELECT c.name, c.status, c.send_at, count(t.person_id),"
                    f" coalesce(sum(CASE WHEN t.outcome NOT IN ({held}) THEN 1 ELSE 0 END), 0),"
                    " coalesce(sum(CASE WHEN t.sent_at IS NOT NULL THEN 1 ELSE 0 END), 0)"
                    " FROM campaign c LEFT JOIN campaign_target t ON t.campaign_id = c.id"
                    " WHERE c.kind = 'campaign' GROUP BY c.id, c.name, c.status, c.send_at ORDER BY c.id"
                ))).all()
        finally:
            await db.dispose()
        if not rows:
            print(texts.CLI_CAMPAIGN_LIST_EMPTY)
            return
        print("name\tstatus\tsend_at\ttargeted\tplanned\tsent")
        for name, status, send_at, targeted, planned, sent in rows:
            when = _local(aware(send_at), settings.tz) if send_at is not None else "-"
            print(f"{name}\t{status}\t{when}\t{int(targeted)}\t{int(planned)}\t{int(sent)}")

    run(main)


def _control(action: str, name: str, yes: bool) -> None:
    from profile_store.campaigns import STATUS_CHANGES, campaign_state, change_status

    verb = texts.CHAT_CONTROL_VERBS[action]

    async def main() -> None:
        settings = settings_or_fail()
        db = await open_database(settings)
        try:
            async with db.read() as session:
                state = await campaign_state(session, name)
            if state is None:
                raise CommandFailed(texts.CLI_CAMPAIGN_UNKNOWN.format(name=name))
            status = texts.CHAT_CAMPAIGN_STATUS.get(state.status, state.status)
            if state.status not in STATUS_CHANGES[action][0]:
                raise CommandFailed(texts.CHAT_CONTROL_NOT_NOW.format(name=state.name, status=status, verb=verb))
            if not yes:
                print(texts.CLI_CAMPAIGN_CONTROL_PREVIEW.format(
                    verb=verb, name=state.name, status=status, waiting=state.waiting))
                return
            async with db.transaction() as session:
                new = await change_status(session, state.campaign_id, action)
            if new is None:
                raise CommandFailed(texts.CHAT_CONTROL_CHANGED.format(name=state.name, verb=verb))
            print(texts.CHAT_CONTROL_DONE.format(name=state.name, status=texts.CHAT_CAMPAIGN_STATUS.get(new, new)))
        finally:
            await db.dispose()

    run(main)


Name = Annotated[str, typer.Argument(help="The campaign's name.")]
Yes = Annotated[bool, typer.Option("--yes", help="Apply it (default: say what it would change).")]


@campaign_app.command("pause")
def pause_command(name: Name, yes: Yes = False) -> None:
    """Pause a scheduled or running campaign: nothing more is sent until resumed."""
    _control("pause", name, yes)


@campaign_app.command("resume")
def resume_command(name: Name, yes: Yes = False) -> None:
    """Resume a paused campaign."""
    _control("resume", name, yes)


@campaign_app.command("cancel")
def cancel_command(name: Name, yes: Yes = False) -> None:
    """Cancel a campaign: its messages not sent yet are never sent."""
    _control("cancel", name, yes)
