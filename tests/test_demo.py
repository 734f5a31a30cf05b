"""`qianmian demo` end to end: generator, import, simulator, bot and callbacks, as a person runs it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from rich.console import Console

from bot import texts
from bot.demo import run_demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_plays_the_story_and_shows_no_phone(tmp_path: Path) -> None:
    console = Console(record=True, width=200, force_terminal=False)
    outcome = await run_demo(tmp_path / "demo", customers=120, port=_free_port(), keep_running=False, console=console)
    printed = console.export_text()

    assert outcome.member_person  # the scanning member was recognised as an existing person
    assert outcome.follower_merged_with_contact  # OA follower + WeCom contact with one unionid: one person
    assert outcome.duplicate_recorded_once  # Tencent's retry answered, recorded once
    assert outcome.forged_status == 403
    # Without --wait the bot stops with the story, and the ending says so (not "still running").
    assert "演示结束，机器人已停止" in printed and "机器人仍在" not in printed
    assert "member_id MDEMO0001" in printed and "unionid oUDemoNewFollower01" in printed
    # Phones are masked in everything the demo prints.
    assert re.search(r"(?<!\d)1\d{10}(?!\d)", printed) is None
    assert "139****2026" in printed
    # The demo's secret stays beside its database, readable by its owner only.
    assert (tmp_path / "demo" / ".secret").stat().st_mode & 0o077 == 0
    # Tags: computed, shown as the guide's portrait, changes listed, mirrored as WeCom corp tags.
    assert "生命周期分布" in printed
    card = outcome.pushed_card  # the guide's WeCom card, pushed right after the scan
    assert card is not None and "/p/" in card["card_action"]["url"]
    assert any(row["keyname"] == "生命周期" for row in card["horizontal_content_list"])
    assert outcome.member_portrait.startswith("【顾客画像】") and "建议话术" in outcome.member_portrait
    assert "企微好友" in printed or "所属导购" in printed
    assert outcome.corp_tags_sent >= 1 and outcome.member_corp_tags and "爱穿裙子" in outcome.member_corp_tags
    # Scene 8: the marketer's Chinese commands, answered in WeCom.
    answers = dict(outcome.chat_answers or [])
    assert set(answers) == set(texts.DEMO_CHAT_COMMANDS)
    for command in texts.DEMO_CHAT_COMMANDS[:3]:
        assert any(a.startswith("我理解为：") for a in answers[command]), (command, answers[command])
    assert any("已给" in a and "高潜客" in a for a in answers["确认"])  # the label, after the preview
    assert texts.DEMO_CHAT_PICTURE in answers["对比一下各渠道上个月的销售额"]
    assert any("预览" in a for a in answers["给上海门店的价格导向会员下周一上午10点发30元无门槛券"])
    assert any("没能理解" in a or "没有完全听懂" in a for a in answers["圈选喜欢火星的会员"])
    # Scene 9: a campaign sent through the guides and measured against its control group.
    assert outcome.campaign_sent > 0
    assert outcome.campaign_effect and any("对照" in a for a in outcome.campaign_effect), outcome.campaign_effect
