"""Opting out of marketing through real OA callbacks: "退订" / "TD" written to the official account,
or unfollowing it, records an opt-out of the OA channel for that person, for good; other words do
not; a stranger's "退订" (an openid never seen) opts nobody out."""

from __future__ import annotations

import time

import pytest

from tests import callback_kit as kit
from tests.test_callbacks import Bot
from tests.test_callbacks import bot as bot  # the fixture
from tests.test_callbacks import sim as sim  # the fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def opt_outs(bot: Bot) -> list[tuple[str, str, str]]:
    rows = await bot.rows(
        "SELECT n.value, o.channel, o.reason FROM opt_out o JOIN identity_node n"
        " ON n.person_id = o.person_id AND n.kind = 'openid' ORDER BY n.value"
    )
    return [(str(r[0]).split("/", 1)[1], str(r[1]), str(r[2])) for r in rows]


async def test_unsubscribe_words_and_unfollows_opt_out_of_the_official_account(bot: Bot) -> None:
    t = int(time.time()) - 100
    for openid in ("oAnn", "oBen", "oCat"):  # followers, known as persons before they write
        assert await bot.post("/wechat/callback", kit.oa_plain_post(kit.oa_event("subscribe", openid, t))) == (
            200, "success",
        )
    await bot.settle()
    posts = [
        kit.oa_text("oAnn", "31000000000001", " 退订。", t + 1),
        kit.oa_text("oBen", "31000000000002", "TD", t + 1),
        kit.oa_text("oCat", "31000000000003", "有退订的活动吗", t + 1),  # a question, not a request
        kit.oa_text("oNew", "31000000000004", "退订", t + 1),  # never followed: nobody to opt out
    ]
    for xml in posts:
        assert await bot.post("/wechat/callback", kit.oa_plain_post(xml)) == (200, "success")
    await bot.settle()
    assert await opt_outs(bot) == [("oAnn", "oa", "退订。"), ("oBen", "oa", "TD")]

    for xml in (kit.oa_event("unsubscribe", "oCat", t + 2), kit.oa_event("subscribe", "oCat", t + 3)):
        assert await bot.post("/wechat/callback", kit.oa_plain_post(xml)) == (200, "success")
    await bot.settle()
    # Following again does not undo it: an opt-out is for good.
    assert ("oCat", "oa", "unsubscribe") in await opt_outs(bot)
