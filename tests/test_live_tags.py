"""Tags fresh within seconds of a callback, and mirrored onto the customer in WeCom (corp tags),
end to end: the real app, the real database (both back-ends), the Tencent simulator."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import DISPATCHER
from bot.corp_tags import CorpTagMirror
from profile_store.corp_tags import queue_corp_tags
from profile_store.labels import add_label
from profile_store.models import CorpTagSync, PersonProfile, TagHistory
from profile_store.tagging.refresh import refresh_all
from tests import callback_kit as kit
from tests.tag_kit import Retailer, person_of
from tests.test_callbacks import Bot, bot, sim  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def follow_tags(bot: Bot,  # noqa: F811
                external_userid: str, userid: str) -> list[str]:
    return bot.sim.wecom.follow_tag_names(external_userid, userid)


async def _profile(bot: Bot,  # noqa: F811
                    person: str) -> PersonProfile:
    async with bot.db.transaction() as session:
        found = await session.get(PersonProfile, person)
    assert found is not None
    return found


async def test_a_new_contact_updates_tags_and_wecom_corp_tags(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    shop = Retailer()
    shop.member("M1", unionid="uCarol", level="V3")
    bought = date.today() - timedelta(days=200)
    shop.order("M1", f"{bought.isoformat()} 10:00:00", "2500")  # loyal, RFM M high
    await shop.load(bot.db, tmp_path)
    await refresh_all(bot.db, bot.settings.today())
    person = await person_of(bot.db, "member_id:M1")
    before = await _profile(bot, person)
    assert before.wecom_contact is None and before.guides is None

    bot.sim.add_staff("guide01")
    bot.sim.add_external_contact("wmCarol", unionid="uCarol", follow_userid="guide01", state="store_S001")
    xml = kit.wecom_contact(
        "add_external_contact", "guide01", "wmCarol", int(time.time()) - 5, corp_id=bot.corp, State="store_S001"
    )
    assert await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)) == (200, "success")
    await bot.settle()

    after = await _profile(bot, person)  # fresh as soon as the callback is processed
    assert (after.wecom_contact, json.loads(after.guides or "[]"), after.source) == ("是", ["guide01"], "store_S001")
    async with bot.db.transaction() as session:
        changes = {(h.tag, h.old_value, h.new_value, h.changed_on) for h in
                   (await session.execute(select(TagHistory).where(col(TagHistory.person_id) == person))).scalars()}
    assert ("wecom_contact", None, "是", bot.settings.today()) in changes

    # The corp tags wait in the outbox; the sender mirrors them (group 千面 created on the way).
    wecom = bot.app[DISPATCHER].services["wecom"]
    mirror = CorpTagMirror(bot.db, wecom, per_second=1000)
    report = await mirror.drain()
    assert report.sent == 1 and report.failed == 0
    assert follow_tags(bot, "wmCarol", "guide01") == sorted([after.lifecycle, after.rfm or ""])
    assert [g.group_name for g in bot.sim.wecom.tag_groups.values()] == ["千面"]

    # A manual label joins them; only the difference is sent.
    async with bot.db.transaction() as session:
        await add_label(session, person, "爱穿裙子", by="guide01")
        await queue_corp_tags(session, [person])
    calls = len(bot.sim.calls("/cgi-bin/externalcontact/mark_tag"))
    assert (await mirror.drain()).sent == 1
    body = bot.sim.calls("/cgi-bin/externalcontact/mark_tag")[calls:][0].body
    assert len(body["add_tag"]) == 1 and body["remove_tag"] == []
    assert "爱穿裙子" in follow_tags(bot, "wmCarol", "guide01")
    assert (await mirror.drain()).sent == 0  # nothing left to say


async def test_corp_tags_retry_with_backoff_and_forget_deleted_tags(bot: Bot, tmp_path: Path) -> None:  # noqa: F811
    shop = Retailer()
    shop.member("M1", unionid="uDan")
    await shop.load(bot.db, tmp_path)
    bot.sim.add_staff("guide02")
    bot.sim.add_external_contact("wmDan", unionid="uDan", follow_userid="guide02")
    xml = kit.wecom_contact("add_external_contact", "guide02", "wmDan", int(time.time()) - 5, corp_id=bot.corp)
    assert (await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)))[0] == 200
    await bot.settle()
    wecom = bot.app[DISPATCHER].services["wecom"]
    mirror = CorpTagMirror(bot.db, wecom, per_second=1000)
    bot.sim.inject("/cgi-bin/externalcontact/mark_tag", 45009, times=10)  # frequency limit
    report = await mirror.run_once()
    assert report.failed == 1 and report.sent == 0
    row: Any
    async with bot.db.transaction() as session:
        row = (await session.execute(select(CorpTagSync))).scalars().one()
    assert row.dirty and row.attempts == 1 and "45009" in row.last_error
    assert (await mirror.run_once()).failed == 0  # not due yet: backing off, nothing sent


async def test_a_failing_tag_update_loses_no_event(bot: Bot) -> None:  # noqa: F811
    async def broken(session: object, persons: set[str], sightings: object) -> None:
        raise RuntimeError("tags are broken today")

    bot.app[DISPATCHER].person_hooks[:] = [broken]
    bot.sim.add_staff("guide03")
    bot.sim.add_external_contact("wmEve", unionid="uEve", follow_userid="guide03")
    xml = kit.wecom_contact("add_external_contact", "guide03", "wmEve", int(time.time()) - 5, corp_id=bot.corp)
    assert (await bot.post("/wecom/callback", kit.wecom_post(xml, corp_id=bot.corp)))[0] == 200
    await bot.settle()
    assert [r[0] for r in await bot.rows("SELECT status FROM raw_event")] == ["done"]
    assert await bot.count("event") == 1  # the fact is kept; the nightly refresh computes its tags
    metrics = bot.app[DISPATCHER].metrics
    assert metrics is not None
    assert metrics.handler_errors.labels(where="person hook")._value.get() == 1
