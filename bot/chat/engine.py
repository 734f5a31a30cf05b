"""The chat assistant: one staff member's Chinese command → the bot's answer.

The same path serves WeCom (handlers/messages.py, in the dispatcher's prefetch step, outside the
callback's transaction) and `qianmian ask`. Reading is done in short read transactions; what a
command changes (a saved segment, the conversation state, labels on confirmation) is written in
its own short transaction; the caller writes the audit row and sends the answer.

Roles (guides.csv): a guide works within the customers they hold as WeCom contacts, a manager
within their store's customers (preferred store, or held by its staff), marketers and admins
with everyone; labelling and campaigns need marketer or admin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot import texts
from bot.chat.reply import Reply
from bot.portrait_links import PortraitLinks
from bot.settings import Settings
from nlp import segment as seg
from nlp.describe import describe, describe_report
from nlp.examples import EXAMPLES
from nlp.intent import (
    CampaignCommand,
    CampaignControlCommand,
    Command,
    HelpCommand,
    JourneyCommand,
    LabelCommand,
    NotUnderstood,
    PersonRef,
    PortraitCommand,
    ReplyCommand,
    ReportCommand,
    SegmentCommand,
)
from nlp.lexicon import lexicon_for
from nlp.parse import parse_command
from nlp.vocabulary import Vocabulary
from profile_store import chat as chat_store
from profile_store.access import can_view
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.labels import LabelError
from profile_store.lookup import Brief, briefs, find_person, persons_named
from profile_store.segments import sql as segments
from profile_store.segments.asof import profile_relation
from profile_store.staff import Staff, staff_of, store_name
from profile_store.vocabulary import Stamp, refresh_vocabulary

log = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
SAMPLES = 5
# The vocabulary (stores, categories, labels, saved segments …) is looked at again after this
# long (a cheap stamp, the words reloaded only when it changed); our own changes (a new label, a
# saved segment) reload it at once.
VOCABULARY_SECONDS = 60.0
WRITE_ROLES = frozenset({"marketer", "admin"})


@dataclass(frozen=True)
class Scope:
    """Whom a staff member may work with: `segment` None means everyone."""

    segment: seg.Segment | None
    note: str = ""  # said after a segment's reading
    report_note: str = ""  # said after a report's figures


class Assistant:
    def __init__(self, db: Database, graph: IdentityGraph, settings: Settings, links: PortraitLinks | None) -> None:
        self.db = db
        self.graph = graph
        self.settings = settings
        self.links = links
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_stamp: Stamp | None = None
        self._vocabulary_at = 0.0
        self._vocabulary_lock = asyncio.Lock()
        self.vocabulary_loads = 0  # full loads of the words (the stamp unchanged: none)

    # ------------------------------------------------------------------ entry point

    async def answer(
        self,
        userid: str,
        text: str,
        *,
        now: datetime | None = None,
        as_of: date | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        """The answer to one command. `now`: when it was written (aware); `as_of`: T for every
        computation (default: today in the business time zone), as `--as-of` does."""
        tz = ZoneInfo(self.settings.tz)
        moment = (now or datetime.now(UTC)).astimezone(tz)
        if as_of is not None and as_of != moment.date():
            moment = datetime.combine(as_of, moment.timetz())  # T's day, at the time of asking
        today = moment.date()
        async with self.db.read() as session:
            asker = await staff_of(session, userid)
        if asker is None:
            return Reply("unknown", "refused", texts.CHAT_UNKNOWN_STAFF)
        vocabulary = await self.vocabulary()
        command = parse_command(text, vocabulary, moment)
        context = _Context(self, asker, text, moment, today, vocabulary, progress, explicit=as_of is not None)
        return await context.act(command)

    # ------------------------------------------------------------------ shared parts

    async def vocabulary(self, *, fresh: bool = False) -> Vocabulary:
        loop = asyncio.get_running_loop()
        async with self._vocabulary_lock:
            if fresh or self._vocabulary is None or loop.time() - self._vocabulary_at > VOCABULARY_SECONDS:
                kept = None if fresh else self._vocabulary
                async with self.db.read() as session:
                    self._vocabulary, self._vocabulary_stamp, loaded = await refresh_vocabulary(
                        session, kept, self._vocabulary_stamp
                    )
                self._vocabulary_at = loop.time()
                self.vocabulary_loads += int(loaded)
                # A new dictionary takes jieba about a second to build: not on the event loop
                # (the same words: the cached one, at once).
                await asyncio.to_thread(lexicon_for, self._vocabulary)
            return self._vocabulary

    def forget_vocabulary(self) -> None:
        self._vocabulary = None


def help_text() -> str:
    return texts.CHAT_HELP.format(examples="\n".join(texts.CHAT_SUGGEST_LINE.format(example=e) for e in EXAMPLES))


def not_understood_text(command: NotUnderstood) -> str:
    lines = [texts.CHAT_NOT_UNDERSTOOD]
    if command.variant_issue is not None:  # which version of a campaign, and why
        lines.append(texts.CAMPAIGN_VARIANT_ISSUES[command.variant_issue].format(who=command.variant))
    for kind, name in command.unknown:
        if kind == "city":  # a real city, just not one of this retailer's
            lines.append(texts.CHAT_UNKNOWN_CITY.format(name=name))
        else:
            lines.append(texts.CHAT_UNKNOWN_NAME.format(name=name, kind=texts.CHAT_UNKNOWN_KINDS.get(kind, kind)))
    if command.unplaced:
        lines.append(texts.CHAT_UNPLACED.format(words="、".join(f"“{w}”" for w in command.unplaced)))
    if command.reason:
        lines.append(command.reason)
    suggestions = command.suggestions or EXAMPLES[:3]
    lines.append(
        texts.CHAT_SUGGEST.format(examples="\n".join(texts.CHAT_SUGGEST_LINE.format(example=e) for e in suggestions))
    )
    return "\n".join(lines)


@dataclass
class _Context:
    """One command being answered: who asks, when, with which words."""

    a: Assistant
    asker: Staff
    text: str
    moment: datetime
    today: date
    vocabulary: Vocabulary
    progress: Progress | None
    # `--as-of`: profiles of exactly that day (computed when the stored ones are of another);
    # otherwise the stored profiles, which the live path and the nightly refresh keep current.
    explicit: bool

    async def act(self, command: Command) -> Reply:
        if isinstance(command, ReplyCommand):
            return await self.confirm(command.yes)
        if isinstance(command, HelpCommand):
            return Reply("help", "done", help_text())
        if isinstance(command, NotUnderstood):
            return Reply("unknown", "not_understood", not_understood_text(command))
        if isinstance(command, SegmentCommand):
            return await self.segment(command)
        if isinstance(command, LabelCommand):
            return await self.label(command)
        if isinstance(command, PortraitCommand):
            return await self.portrait(command.person)
        if isinstance(command, ReportCommand):
            return await self.report(command)
        if isinstance(command, CampaignCommand):
            return await self.campaign(command)
        if isinstance(command, CampaignControlCommand):
            return await self.control(command)
        if isinstance(command, JourneyCommand):
            return await self.journey(command)
        raise TypeError(f"unknown command {command!r}")

    # ------------------------------------------------------------------ segments

    async def scope(self) -> Scope:
        role = self.asker.role
        if role in WRITE_ROLES:
            return Scope(None)
        if role == "manager" and self.asker.store_id:
            async with self.a.db.read() as session:
                staff = await _store_staff(session, self.asker.store_id)
                name = await store_name(session, self.asker.store_id) or self.asker.store_id
            held = [seg.GuideHolds(g) for g in staff]
            return Scope(
                seg.any_of(seg.Tag("preferred_store", seg.eq(self.asker.store_id)), *held),
                texts.CHAT_SCOPE_MANAGER.format(store=name),
                texts.CHAT_REPORT_SCOPE_MANAGER.format(store=name),
            )
        return Scope(seg.GuideHolds(self.asker.guide_id), texts.CHAT_SCOPE_GUIDE, texts.CHAT_REPORT_SCOPE_GUIDE)

    async def resolve(self, tree: seg.Segment) -> seg.Segment | Reply:
        """`Saved` references replaced by the saved trees (刚才那批人 = the asker's last one)."""
        saved = [n for n in seg.walk(tree) if isinstance(n, seg.Saved)]
        if not saved:
            return tree
        found: dict[str, seg.Segment] = {}
        async with self.a.db.read() as session:
            state = await chat_store.state_of(session, self.asker.guide_id)
            for node in saved:
                name = node.name or state.last_segment or ""
                if not name:
                    return Reply("segment", "refused", texts.CHAT_NO_LAST_SEGMENT)
                stored = await chat_store.saved_segment(session, name)
                if stored is None:
                    return Reply("segment", "refused", texts.CHAT_NO_SUCH_SEGMENT.format(name=name))
                found[node.name] = seg.from_json(stored.tree)
        return _substitute(tree, found)

    def read(self, tree: seg.Segment) -> str:
        return describe(tree, self.vocabulary, self.today)

    async def evaluate(self, tree: seg.Segment, *, samples: int = 0) -> tuple[int, list[str]]:
        """(count, first few person_ids) of `tree` within the asker's scope; sends the working
        notice first when it takes a while."""

        async def run() -> tuple[int, list[str]]:
            async with self.a.db.read() as session:
                relation = await profile_relation(session, self.today) if self.explicit else "profile"
                total = await segments.count(session, tree, self.today, profile=relation)
                chosen = (
                    await segments.sample(session, tree, self.today, profile=relation, n=samples) if samples else []
                )
                return total, chosen

        task = asyncio.ensure_future(run())
        if self.progress is not None:
            done, _ = await asyncio.wait({task}, timeout=self.a.settings.working_notice_seconds)
            if not done:
                await self.progress(texts.CHAT_WORKING)
        return await task

    async def scoped(self, tree: seg.Segment) -> tuple[seg.Segment, seg.Segment, Scope] | Reply:
        """(the segment with saved ones resolved, the same within the asker's scope, the scope)."""
        resolved = await self.resolve(tree)
        if isinstance(resolved, Reply):
            return resolved
        scope = await self.scope()
        return resolved, (resolved if scope.segment is None else seg.all_of(scope.segment, resolved)), scope

    async def segment(self, command: SegmentCommand) -> Reply:
        found = await self.scoped(command.segment)
        if isinstance(found, Reply):
            return found
        resolved, tree, scope = found
        reading = self.read(resolved)
        total, chosen = await self.evaluate(tree, samples=0 if command.count_only else SAMPLES)
        lines = [texts.CHAT_READING.format(reading=reading) + scope.note]
        if total:
            lines.append(texts.CHAT_SEGMENT_COUNT.format(count=total))
        else:
            lines.append(texts.CHAT_SEGMENT_EMPTY)
            why = contradiction(tree)
            if why:
                lines.append(texts.CHAT_SEGMENT_EMPTY_WHY.format(why=why))
        if chosen:
            async with self.a.db.read() as session:
                shown = await briefs(session, self.a.graph, chosen)
            lines.append(texts.CHAT_SEGMENT_SAMPLES.format(samples="；".join(_brief(b) for b in shown)))
        name = command.save_as or segment_name(self.text)
        async with self.a.db.transaction() as session:
            await chat_store.save_segment(
                session,
                name=name,
                tree=seg.to_json(tree),
                text_=self.text,
                reading=reading,
                owner=self.asker.guide_id,
                size=total,
            )
            await chat_store.remember(session, self.asker.guide_id, last_segment=name)
        self.a.forget_vocabulary()
        lines.append(texts.CHAT_SEGMENT_SAVED.format(name=name))
        return Reply("segment", "done", "\n".join(lines), reading=reading, size=total)

    # ------------------------------------------------------------------ labels

    async def label(self, command: LabelCommand) -> Reply:
        if self.asker.role not in WRITE_ROLES:
            return Reply("tag", "refused", texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_LABEL))
        try:
            from profile_store.labels import clean_label

            label = clean_label(command.label)
        except LabelError as exc:
            reason = texts.CHAT_LABEL_REASONS.get(str(exc), str(exc))
            return Reply("tag", "refused", texts.CHAT_LABEL_BAD.format(label=command.label, reason=reason))
        if command.person is not None:
            person = await self.find(command.person)
            if isinstance(person, Reply):
                return replace(person, family="tag")
            reading = texts.CHAT_PERSON_ONE.format(who=_who(command.person))
            total = 1
            pending = {"kind": "label", "label": label, "add": command.add, "person_id": person, "reading": reading}
        else:
            found = await self.scoped(command.segment or seg.Everyone())
            if isinstance(found, Reply):
                return replace(found, family="tag")
            resolved, tree, scope = found
            reading = self.read(resolved) + scope.note
            total, _ = await self.evaluate(tree)
            pending = {
                "kind": "label",
                "label": label,
                "add": command.add,
                "tree": seg.to_json(tree),
                "reading": reading,
            }
        minutes = self.a.settings.confirm_minutes
        async with self.a.db.transaction() as session:
            await chat_store.remember(
                session,
                self.asker.guide_id,
                pending={**pending, "count": total, "text": self.text},
                expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
            )
        verb = texts.CHAT_LABEL_VERB_ADD if command.add else texts.CHAT_LABEL_VERB_REMOVE
        answer = "\n".join(
            (
                texts.CHAT_READING.format(reading=reading),
                texts.CHAT_LABEL_PREVIEW.format(count=total, verb=verb, label=label, minutes=_minutes(minutes)),
            )
        )
        return Reply("tag", "preview", answer, reading=reading, size=total)

    async def confirm(self, yes: bool) -> Reply:
        async with self.a.db.transaction() as session:
            state = await chat_store.state_of(session, self.asker.guide_id)
            if state.pending is None:
                text = (
                    texts.CHAT_PENDING_LAPSED.format(minutes=_minutes(self.a.settings.confirm_minutes))
                    if state.lapsed
                    else texts.CHAT_NO_PENDING
                )
                if state.lapsed:
                    await chat_store.remember(session, self.asker.guide_id, clear_pending=True)
                return Reply("confirm", "refused", text)
            await chat_store.remember(session, self.asker.guide_id, clear_pending=True)
            pending = state.pending
            if not yes:
                return Reply("confirm", "done", texts.CHAT_CANCELLED, reading=pending.get("reading", ""))
            if pending.get("kind") == "label":
                return await self._apply_label(session, pending)
            if pending.get("kind") == "campaign_control":
                return await self._apply_control(session, pending)
            if pending.get("kind") == "journey":
                return await self._apply_journey(session, pending)
        if pending.get("kind") == "campaign":  # planning takes its own transaction
            return await self._schedule(pending)
        return Reply("confirm", "refused", texts.CHAT_NO_PENDING)

    async def _apply_label(self, session: Any, pending: dict[str, Any]) -> Reply:
        label, add = str(pending["label"]), bool(pending["add"])
        if "person_id" in pending:
            from profile_store.labels import add_label, remove_label

            change = add_label if add else remove_label
            changed = int(await change(session, str(pending["person_id"]), label, self.asker.guide_id))
            total = 1
        else:
            tree = seg.from_json(str(pending["tree"]))
            relation = await profile_relation(session, self.today) if self.explicit else "profile"
            query = segments.compile_segment(tree, today=self.today, profile=relation)
            changed = await chat_store.label_segment(session, query, label, self.asker.guide_id, add=add)
            total = int(pending.get("count", changed))
        self.a.forget_vocabulary()
        verb = texts.CHAT_LABEL_VERB_ADD if add else texts.CHAT_LABEL_VERB_REMOVE
        already = texts.CHAT_LABEL_ALREADY_ADD if add else texts.CHAT_LABEL_ALREADY_REMOVE
        answer = texts.CHAT_LABEL_DONE.format(
            changed=changed,
            verb=verb,
            label=label,
            count=max(total, changed),
            same=max(total - changed, 0),
            already=already,
        )
        return Reply("tag", "done", answer, reading=str(pending.get("reading", "")), size=changed)

    # ------------------------------------------------------------------ one person

    async def find(self, ref: PersonRef) -> str | Reply:
        """The one active person `ref` names, if the asker may see them."""
        async with self.a.db.read() as session:
            if ref.phone or ref.member_id:
                identity = f"phone:{ref.phone}" if ref.phone else f"member_id:{ref.member_id}"
                try:
                    person = await find_person(session, self.a.graph, identity)
                except ValueError:
                    person = None
                found = [person] if person else []
            else:
                found = await persons_named(session, ref.name or "", ref.store_id)
            if not found:
                return Reply("portrait", "failed", texts.CHAT_PORTRAIT_NOT_FOUND.format(who=_who(ref)))
            if len(found) > 1:
                shown = await briefs(session, self.a.graph, found[:SAMPLES])
                return Reply(
                    "portrait",
                    "failed",
                    texts.CHAT_PORTRAIT_SEVERAL.format(
                        count=len(found), who=_who(ref), people="\n".join(_brief(b) for b in shown)
                    ),
                )
            decision = await can_view(session, self.asker.guide_id, found[0], now=self.moment.replace(tzinfo=None))
        if not decision.allowed:
            return Reply("portrait", "refused", texts.CHAT_PORTRAIT_DENIED)
        return found[0]

    async def portrait(self, ref: PersonRef) -> Reply:
        from bot.portrait_text import render
        from profile_store.portrait import portrait

        person = await self.find(ref)
        if isinstance(person, Reply):
            return person
        async with self.a.db.read() as session:
            shown = await portrait(session, self.a.graph, person, self.today, stored=not self.explicit)
        if shown is None:
            return Reply("portrait", "failed", texts.CHAT_PORTRAIT_NOT_FOUND.format(who=_who(ref)))
        lines = [render(shown)]
        if self.a.links is not None:
            token, _ = self.a.links.issue(person, self.asker.guide_id)
            lines.append(
                texts.CHAT_PORTRAIT_LINK.format(
                    hours=_minutes(self.a.settings.portrait_link_hours), url=self.a.links.url(token)
                )
            )
        return Reply("portrait", "done", "\n".join(lines), reading=_who(ref), size=1)

    # ------------------------------------------------------------------ reports

    async def report(self, command: ReportCommand) -> Reply:
        from bot.report_chart import render_chart, render_text, save_chart
        from profile_store.reports import report

        if command.campaign and command.segment is None:
            measured = await self.campaign_effect(command.campaign)
            if measured is not None:
                return measured
        scope = await self.scope()
        restrict = command.segment
        if restrict is not None:
            resolved = await self.resolve(restrict)
            if isinstance(resolved, Reply):
                return replace(resolved, family="report")
            restrict = resolved
        # the reading names the segment the words gave (刚才那批人: the one it stands for)
        reading = describe_report(replace(command, segment=restrict), self.vocabulary, self.today)
        if scope.segment is not None:
            restrict = scope.segment if restrict is None else seg.all_of(scope.segment, restrict)
        async with self.a.db.read() as session:
            relation = await profile_relation(session, self.today) if self.explicit else "profile"
            # the segment goes to the report as its compiled SELECT: no person id through Python
            figures = await report(session, command, self.today, profile=relation, segment=restrict)
        text = "\n".join((texts.CHAT_READING.format(reading=reading), render_text(figures)))
        text += scope.report_note
        image: str | None = None
        if getattr(figures, "rows", None):
            png = render_chart(figures)
            key = hashlib.sha256(f"{self.asker.guide_id}|{self.text}|{self.moment.isoformat()}".encode()).hexdigest()[
                :16
            ]
            image = str(save_chart(png, Path(self.a.settings.media_dir), key))
        return Reply("report", "done", text, image_path=image, reading=reading, size=figures.members)

    async def campaign_effect(self, name: str) -> Reply | None:
        """"统计双11活动的效果": the effect report of a campaign we ran (targeted, sent,
        conversion against the control group, uplift); None when no campaign has that name (the
        figures then come from the events that carry it)."""
        from bot.effect_chart import render_effect_chart, render_effect_text
        from bot.report_chart import save_chart
        from campaigns.measure import UnknownCampaign, effect

        if self.asker.role not in WRITE_ROLES:
            return Reply("report", "refused", texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_REPORT))
        try:
            measured = await effect(self.a.db, name, today=self.today, tz=self.a.settings.tz)
        except UnknownCampaign:
            return None
        key = hashlib.sha256(f"effect|{name}|{self.moment.isoformat()}".encode()).hexdigest()[:16]
        image = str(save_chart(render_effect_chart(measured), Path(self.a.settings.media_dir), key))
        return Reply("report", "done", render_effect_text(measured), image_path=image, reading=name,
                     size=measured.total.targeted)

    # ------------------------------------------------------------------ campaigns (drafts)

    async def campaign(self, command: CampaignCommand) -> Reply:
        """A preview of what the campaign would do now: who, how many messages through which
        channel, and how many are held back (control group, caps, opt-outs, unreachable)."""
        from campaigns.drafts import campaign_name, campaign_of, draft_of, offer_text
        from campaigns.plan import PlanRules, preview

        if self.asker.role not in WRITE_ROLES:
            return Reply("campaign", "refused", texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_CAMPAIGN))
        found = await self.scoped(command.segment)
        if isinstance(found, Reply):
            return replace(found, family="campaign")
        resolved, tree, _ = found
        reading = self.read(resolved)
        whens = await self.variant_conditions(command)
        if isinstance(whens, Reply):
            return replace(whens, family="campaign")
        offer = offer_text(command, dict(self.vocabulary.coupons))
        if command.variants:
            offer = texts.CAMPAIGN_VARIANTS_NAME.format(n=len(command.variants))
        name = campaign_name(self.text, offer, self.moment)
        draft = draft_of(
            command, tree, name=name, reading=reading, by=self.asker.guide_id, coupons=dict(self.vocabulary.coupons),
            whens=whens,
        )
        planned = await preview(
            self.a.db, campaign_of(draft), now=self.moment, today=self.today,
            rules=PlanRules.from_settings(self.a.settings),
        )
        answer = "\n".join((
            texts.CHAT_READING.format(reading=reading),
            texts.CHAT_CAMPAIGN_PREVIEW.format(
                name=draft["name"],
                content=_variant_lines(draft, planned) if command.variants else _offer(command, self.vocabulary),
                when=_local(planned.due_at, self.a.settings.tz),
                **_plan_figures(planned),
                minutes=_minutes(self.a.settings.confirm_minutes),
            ),
        ))
        async with self.a.db.transaction() as session:
            await chat_store.remember(
                session,
                self.asker.guide_id,
                pending={"kind": "campaign", "draft": draft, "reading": reading, "text": self.text},
                expires_at=datetime.now(UTC) + timedelta(minutes=self.a.settings.confirm_minutes),
            )
        return Reply("campaign", "preview", answer, reading=reading, size=planned.targeted)

    async def variant_conditions(self, command: CampaignCommand) -> list[tuple[seg.Segment | None, str]] | Reply:
        """(condition with saved segments resolved, its reading) of each variant (千人千面)."""
        found: list[tuple[seg.Segment | None, str]] = []
        for variant in command.variants:
            if variant.when is None:
                found.append((None, texts.CAMPAIGN_VARIANT_EVERYONE_LEFT))
                continue
            when = await self.resolve(variant.when)
            if isinstance(when, Reply):
                return when
            found.append((when, self.read(when)))
        return found

    async def control(self, command: CampaignControlCommand) -> Reply:
        """暂停 / 恢复 / 取消 a campaign: what it would change, then 确认."""
        from profile_store.campaigns import STATUS_CHANGES, campaign_state

        if self.asker.role not in WRITE_ROLES:
            return Reply("campaign", "refused", texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_CAMPAIGN))
        async with self.a.db.read() as session:
            state = await campaign_state(session, command.campaign)
        if state is None:
            return Reply("campaign", "refused", texts.CHAT_UNKNOWN_NAME.format(name=command.campaign, kind="活动"))
        verb = texts.CHAT_CONTROL_VERBS[command.action]
        if state.status not in STATUS_CHANGES[command.action][0]:
            status = texts.CHAT_CAMPAIGN_STATUS.get(state.status, state.status)
            refusal = texts.CHAT_CONTROL_NOT_NOW.format(name=state.name, status=status, verb=verb)
            return Reply("campaign", "refused", refusal)
        minutes = self.a.settings.confirm_minutes
        async with self.a.db.transaction() as session:
            await chat_store.remember(
                session, self.asker.guide_id,
                pending={"kind": "campaign_control", "action": command.action, "campaign_id": state.campaign_id,
                         "name": state.name, "reading": f"{verb} {state.name}"},
                expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
            )
        answer = texts.CHAT_CONTROL_PREVIEW.format(
            verb=verb, name=state.name, waiting=state.waiting, minutes=_minutes(minutes),
            status=texts.CHAT_CAMPAIGN_STATUS.get(state.status, state.status),
        )
        return Reply("campaign", "preview", answer, reading=f"{verb} {state.name}", size=state.waiting)

    async def _apply_control(self, session: Any, pending: dict[str, Any]) -> Reply:
        from profile_store.campaigns import change_status

        name, action = str(pending["name"]), str(pending["action"])
        verb = texts.CHAT_CONTROL_VERBS[action]
        new = await change_status(session, int(pending["campaign_id"]), action)
        if new is None:  # changed meanwhile (by someone else, or by the sender finishing it)
            return Reply("campaign", "refused", texts.CHAT_CONTROL_CHANGED.format(name=name, verb=verb))
        return Reply("campaign", "done", texts.CHAT_CONTROL_DONE.format(
            name=name, status=texts.CHAT_CAMPAIGN_STATUS.get(new, new)), reading=str(pending.get("reading", "")))

    # ------------------------------------------------------------------ journeys

    async def journey(self, command: JourneyCommand) -> Reply:
        """旅程: the list (no confirmation), or turning one on or off, or setting a step's content:
        a preview, then 确认. Marketers and admins only."""
        from campaigns.journeys import JOURNEYS, JourneyRules, journey_list

        if self.asker.role not in WRITE_ROLES:
            return Reply("campaign", "refused", texts.CHAT_ROLE_NEEDED.format(action=texts.CHAT_ACTION_JOURNEY))
        rules = JourneyRules.from_settings(self.a.settings)
        listed = {j.key: j for j in await journey_list(self.a.db, now=self.moment, rules=rules)}
        if command.action == "list":
            lines = [texts.JOURNEY_LIST_HEAD]
            for j in listed.values():
                state = texts.JOURNEY_ON if j.on else texts.JOURNEY_OFF
                lines.append(texts.JOURNEY_LIST_LINE.format(name=j.name, state=state, entries=j.entries, sent=j.sent))
                lines.extend(texts.JOURNEY_STEP_LINE.format(n=i + 1, content=c) for i, c in enumerate(j.steps))
            return Reply("campaign", "done", "\n".join(lines), reading="旅程列表", size=len(listed))
        found = listed.get(command.journey)
        if found is None:
            return Reply("campaign", "refused", texts.JOURNEY_NAMES_HINT)
        minutes = self.a.settings.confirm_minutes
        pending: dict[str, Any] = {"kind": "journey", "action": command.action, "key": found.key, "name": found.name}
        if command.action == "content":
            if not 0 <= command.step < len(found.steps):
                return Reply("campaign", "refused", texts.JOURNEY_CONTENT_NO_STEP.format(
                    name=found.name, steps=len(found.steps), n=command.step + 1))
            pending.update(step=command.step, content=command.content,
                           reading=f"{found.name} 第{command.step + 1}步内容")
            answer = texts.JOURNEY_CONTENT_PREVIEW.format(
                name=found.name, n=command.step + 1, old=found.steps[command.step], new=command.content,
                minutes=_minutes(minutes),
            )
        else:
            on = command.action == "on"
            verb = texts.JOURNEY_ON if on else texts.JOURNEY_OFF
            state = texts.JOURNEY_ON if found.on else texts.JOURNEY_OFF
            if found.on == on:
                return Reply("campaign", "refused", texts.JOURNEY_SWITCH_SAME.format(name=found.name, state=state,
                                                                                     verb=verb))
            pending["reading"] = f"{verb} {found.name}"
            answer = texts.JOURNEY_SWITCH_PREVIEW.format(
                verb=verb, name=found.name, reading=JOURNEYS[found.key].reading, state=state,
                minutes=_minutes(minutes),
            )
        async with self.a.db.transaction() as session:
            await chat_store.remember(
                session, self.asker.guide_id, pending=pending,
                expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
            )
        return Reply("campaign", "preview", answer, reading=str(pending["reading"]))

    async def _apply_journey(self, session: Any, pending: dict[str, Any]) -> Reply:
        from campaigns.journeys import JourneyRules, set_content, switch

        rules = JourneyRules.from_settings(self.a.settings)
        name, key, action = str(pending["name"]), str(pending["key"]), str(pending["action"])
        reading = str(pending.get("reading", ""))
        if action == "content":
            step = int(pending["step"])
            await set_content(session, key, step, str(pending["content"]), now=self.moment, rules=rules)
            return Reply("campaign", "done", texts.JOURNEY_CONTENT_DONE.format(name=name, n=step + 1), reading=reading)
        on = action == "on"
        changed, ended = await switch(session, key, on=on, by=self.asker.guide_id, now=self.moment, rules=rules)
        verb = texts.JOURNEY_ON if on else texts.JOURNEY_OFF
        if not changed:
            return Reply("campaign", "refused", texts.JOURNEY_SWITCH_SAME.format(name=name, state=verb, verb=verb))
        done = texts.JOURNEY_SWITCH_DONE.format(verb=verb, name=name) if on else texts.JOURNEY_SWITCH_DONE_OFF.format(
            name=name, ended=ended)
        return Reply("campaign", "done", done, reading=reading)

    async def _schedule(self, pending: dict[str, Any]) -> Reply:
        """The confirmed draft stored (status scheduled) and planned: one row per person."""
        from campaigns.drafts import campaign_of
        from campaigns.plan import PlanRules, plan
        from profile_store.campaigns import create_campaign, name_taken

        draft = dict(pending["draft"])
        async with self.a.db.transaction() as session:
            base, n = str(draft["name"]), 1
            while await name_taken(session, str(draft["name"])):
                n += 1
                draft["name"] = f"{base}-{n}"
            campaign = campaign_of(draft, status="scheduled")
            campaign.confirmed_by, campaign.confirmed_at = self.asker.guide_id, datetime.now(UTC)
            campaign_id = await create_campaign(session, campaign)
        planned = await plan(
            self.a.db, campaign_id, now=self.moment, today=self.today, rules=PlanRules.from_settings(self.a.settings)
        )
        self.a.forget_vocabulary()  # its name is a word now ("统计<name>的效果")
        answer = texts.CHAT_CAMPAIGN_SCHEDULED.format(
            name=draft["name"], when=_local(planned.due_at, self.a.settings.tz), **_plan_figures(planned)
        )
        if len(draft.get("variants") or ()) > 1:
            answer += "\n" + _variant_lines(draft, planned)
        return Reply("campaign", "done", answer, reading=str(pending.get("reading", "")), size=planned.targeted)


# ---------------------------------------------------------------------------------- helpers


async def _store_staff(session: Any, store_id: str) -> list[str]:
    from profile_store.staff import all_staff

    return [g for g, s in await all_staff(session) if s == store_id]


def _substitute(tree: seg.Segment, found: dict[str, seg.Segment]) -> seg.Segment:
    if isinstance(tree, seg.Saved):
        return found[tree.name]
    if isinstance(tree, seg.And):
        return seg.all_of(*(_substitute(p, found) for p in tree.parts))
    if isinstance(tree, seg.Or):
        return seg.any_of(*(_substitute(p, found) for p in tree.parts))
    if isinstance(tree, seg.Not):
        return seg.Not(_substitute(tree.part, found))
    return tree


_COMMAND_WORDS = re.compile(
    r"^(?:请|帮我|帮忙|给我)?(?:圈选|圈出|筛选|找出|找一下|拉一下|看看|看一下|查一下|查询|统计一下)?(?:一下)?"
)
_QUESTION_WORDS = re.compile(r"有多少人?|有几个人?|有哪些人?|是哪些人?|的人数|多少人|的名单|名单")


def segment_name(text: str) -> str:
    """A name for a segment from its words: "看看上海有多少高价值会员" → "上海高价值会员"."""
    name = _COMMAND_WORDS.sub("", text.strip())
    name = _QUESTION_WORDS.sub("", name).strip(" ，,。.!！?？的")
    return (name or text.strip())[:30]


def contradiction(tree: seg.Segment) -> str:
    """Why an empty answer is necessarily empty, when the conditions exclude each other:
    沉睡 / 流失 (no order in the last 365 days) with an order condition inside that year."""
    parts = tree.parts if isinstance(tree, seg.And) else (tree,)
    lifecycle = {p.cmp.value for p in parts if isinstance(p, seg.Tag) and p.key == "lifecycle" and p.cmp.op == "eq"}
    if not lifecycle & {"沉睡", "流失"}:
        return ""
    recent = any(_needs_recent_order(p) for p in parts)
    if not recent:
        return ""
    return texts.CHAT_CONTRADICTION_DORMANT if "沉睡" in lifecycle else texts.CHAT_CONTRADICTION_LOST


def _needs_recent_order(part: seg.Segment) -> bool:
    if isinstance(part, seg.Bought):
        return part.window.kind == "days" and part.window.n <= seg.DEFAULT_DAYS
    if isinstance(part, seg.OrderMetric):
        if part.window.kind != "days" or part.window.n > seg.DEFAULT_DAYS:
            return False
        if part.measure in ("aov", "max"):
            return True
        cmp = part.cmp  # a count or sum that 0 does not satisfy needs an order
        return not cmp.test(0) and cmp.op not in ("lt", "le", "ne")
    return False


def _brief(b: Brief) -> str:
    return texts.CHAT_SEGMENT_SAMPLE.format(name=b.name or "-", phone=b.phone or "-", lifecycle=b.lifecycle or "-")


def _who(ref: PersonRef) -> str:
    from profile_store.pii import mask_phone

    if ref.phone:
        return mask_phone(re.sub(r"\D", "", ref.phone)[-11:])
    if ref.member_id:
        return ref.member_id
    return f"{ref.name or ''}{'（' + ref.store_id + '）' if ref.store_id else ''}"


def _local(moment: datetime | None, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _plan_figures(planned: Any) -> dict[str, Any]:
    """The counts of a PlanReport as the preview and the confirmation say them."""
    channels = "、".join(
        f"{texts.CHAT_CAMPAIGN_CHANNEL_NAMES.get(c, c)} {n}" for c, n in sorted(planned.by_channel.items()) if n
    )
    return {
        "targeted": planned.targeted, "planned": planned.planned, "channels": channels or "-",
        "control": planned.control, "capped": planned.capped, "opted_out": planned.opted_out,
        "unreachable": planned.unreachable, "quota": planned.wecom_quota_exhausted,
    }


def _variant_lines(draft: dict[str, Any], planned: Any) -> str:
    """Each variant of a campaign (千人千面) with its own figures: whom, how many, what."""
    lines = [texts.CAMPAIGN_VARIANTS_HEAD.format(n=len(draft["variants"]))]
    for v in draft["variants"]:
        lines.append(texts.CAMPAIGN_VARIANT_LINE.format(
            who=v.get("who") or v["name"], targeted=planned.by_variant.get(v["name"], 0),
            planned=planned.planned_by_variant.get(v["name"], 0), content=v["content"],
        ))
    if planned.no_variant:
        lines.append(texts.CAMPAIGN_VARIANTS_NONE.format(n=planned.no_variant))
    return "\n".join(lines)


def _minutes(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _offer(command: CampaignCommand, vocabulary: Vocabulary) -> str:
    from campaigns.drafts import offer_text

    return offer_text(command, dict(vocabulary.coupons)) or texts.CHAT_CAMPAIGN_NO_CONTENT
