"""Mirror our tags onto customers in WeCom (`externalcontact/mark_tag`), from the outbox that
profile_store/corp_tags.py keeps: batched, rate-limited, retried with backoff, never on the
event path. Tag ids are learnt once (group "千面", created with `add_corp_tag` when missing)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.tencent.errors import TencentAPIError, TencentError
from profile_store import corp_tags
from profile_store.corp_tags import GROUP_NAME, PendingTags
from profile_store.db import Database

log = logging.getLogger(__name__)

NOT_A_CONTACT = 84061  # the customer removed the guide: nothing to tag any more
INVALID_TAG = 40068  # a tag (or group) was deleted in WeCom: learn the ids again


@dataclass
class MirrorReport:
    sent: int = 0
    unchanged: int = 0
    failed: int = 0
    gone: int = 0
    errors: list[str] = field(default_factory=list)


class CorpTagMirror:
    def __init__(
        self, db: Database, wecom: Any, *, batch: int = 50, per_second: float = 20.0, max_backoff: float = 3600.0
    ) -> None:
        self.db = db
        self.wecom = wecom
        self.batch = batch
        self.interval = 1.0 / per_second
        self.max_backoff = max_backoff

    async def run_once(self) -> MirrorReport:
        """Send one batch of due rows; returns what happened."""
        report = MirrorReport()
        if self.wecom is None:
            return report
        async with self.db.transaction() as session:
            due = await corp_tags.claim_due(session, self.batch)
        if not due:
            return report
        try:
            ids = await self._tag_ids({n for item in due for n in (*item.desired, *item.mirrored)})
        except TencentError as exc:
            await self._all_failed(due, exc, report)
            return report
        for item in due:
            await self._send(item, ids, report)
            await asyncio.sleep(self.interval)
        return report

    async def drain(self, rounds: int = 100) -> MirrorReport:
        """Run batches until nothing is due (used by the demo and tests)."""
        total = MirrorReport()
        for _ in range(rounds):
            report = await self.run_once()
            total.sent += report.sent
            total.unchanged += report.unchanged
            total.failed += report.failed
            total.gone += report.gone
            total.errors += report.errors
            if not (report.sent or report.unchanged or report.gone):
                break
        return total

    async def _send(self, item: PendingTags, ids: dict[str, str], report: MirrorReport) -> None:
        add = [ids[n] for n in item.desired if n not in item.mirrored and n in ids]
        remove = [ids[n] for n in item.mirrored if n not in item.desired and n in ids]
        try:
            if add or remove:
                await self.wecom.mark_tag(item.userid, item.external_userid, add_tag=add, remove_tag=remove)
                report.sent += 1
            else:
                report.unchanged += 1
        except TencentAPIError as exc:
            if exc.errcode == NOT_A_CONTACT:
                report.gone += 1
                async with self.db.transaction() as session:
                    await corp_tags.mark_mirrored(session, item)  # nothing left to mirror onto
                return
            if exc.errcode == INVALID_TAG:
                async with self.db.transaction() as session:
                    await corp_tags.forget_tag_ids(session, [*item.desired, *item.mirrored])
            await self._failed(item, exc, report)
            return
        except TencentError as exc:
            await self._failed(item, exc, report)
            return
        async with self.db.transaction() as session:
            await corp_tags.mark_mirrored(session, item)

    async def _tag_ids(self, names: set[str]) -> dict[str, str]:
        async with self.db.transaction() as session:
            ids = await corp_tags.known_tag_ids(session, sorted(names))
        missing = sorted(names - ids.keys())
        if not missing:
            return ids
        learnt: dict[str, str] = {}
        group_id = ""
        listing = await self.wecom.get_corp_tag_list()
        for group in listing.get("tag_group", []):
            if group.get("group_name") == GROUP_NAME:
                group_id = str(group.get("group_id", ""))
                learnt.update({t["name"]: t["id"] for t in group.get("tag", []) if t.get("name") in missing})
        still = [n for n in missing if n not in learnt]
        if still:
            created = await self.wecom.add_corp_tag(still, group_name=GROUP_NAME)
            group = created.get("tag_group", {})
            group_id = str(group.get("group_id", group_id))
            learnt.update({t["name"]: t["id"] for t in group.get("tag", [])})
        async with self.db.transaction() as session:
            await corp_tags.remember_tag_ids(session, learnt, group_id)
        return {**ids, **learnt}

    async def _failed(self, item: PendingTags, exc: Exception, report: MirrorReport) -> None:
        report.failed += 1
        report.errors.append(str(exc))
        backoff = min(self.max_backoff, 5.0 * 2 ** min(item.attempts, 12))
        log.warning("corp tags for %s/%s not mirrored (retry in %.0fs): %s", item.userid, item.external_userid,
                    backoff, exc)
        async with self.db.transaction() as session:
            await corp_tags.mark_failed(session, item, str(exc), timedelta(seconds=backoff))

    async def _all_failed(self, due: list[PendingTags], exc: Exception, report: MirrorReport) -> None:
        for item in due:
            await self._failed(item, exc, report)
