"""千人千面 by chat, end to end through the assistant on the sample retailer: a campaign with a
version per kind of customer is previewed with each version's figures and, confirmed, planned
with each person's version as an independent reading of the spec authors' expected tags says."""

from __future__ import annotations

import json
import re
from typing import Any

from bot import texts
from tests.test_chat import Chat, chat, expected_profiles, sample_rows, sample_url  # noqa: F401

COMMAND = (
    "给上海门店的会员下周一上午10点发消息：忠诚客户发会员专享礼，价格导向的发30元无门槛券，其他人发新品推荐"
)
CONTENTS = {"忠诚客户": "会员专享礼", "价格导向": texts.CAMPAIGN_COUPON_MESSAGE.format(offer="优惠券“30元无门槛券”"),
            "default": "新品推荐"}


def expected_versions() -> dict[str, str]:
    """member_id → version, from expected_profiles.jsonl and stores.csv: members whose 常去门店 is
    a Shanghai store; loyal first (even when also price-oriented), then price-oriented, then the rest."""
    shanghai = {s["store_id"] for s in sample_rows("stores") if s["city"] == "上海"}
    found: dict[str, str] = {}
    for person in expected_profiles():
        tags = person["tags"]
        if tags.get("is_member") != "是" or tags.get("preferred_store") not in shanghai:
            continue
        if tags.get("lifecycle") == "忠诚":
            version = "忠诚客户"
        elif tags.get("price_orientation") == "价格导向":
            version = "价格导向"
        else:
            version = "default"
        found[min(person["identities"]["member_id"])] = version
    return found


def figures(answer: str, content: str) -> tuple[int, int]:
    """(targeted, planned) the answer's line for the version with `content` says."""
    [line] = [ln for ln in answer.splitlines() if ln.endswith(f"内容：{content}")]
    found = re.search(r"目标 (\d+) 人，发出 (\d+) 条", line)
    assert found, line
    return int(found.group(1)), int(found.group(2))


async def test_versions_by_chat_match_the_tags(chat: Chat) -> None:  # noqa: F811
    want = expected_versions()
    counts = {v: list(want.values()).count(v) for v in CONTENTS}
    # the boundaries are in the sample: loyal customers who are also price-oriented go to the first
    overlap = [p for p in expected_profiles() if p["tags"].get("lifecycle") == "忠诚"
               and p["tags"].get("price_orientation") == "价格导向"]
    assert overlap and all(counts.values()), counts

    draft = await chat.say("MKT01", COMMAND)
    assert (draft.family, draft.outcome, draft.size) == ("campaign", "preview", len(want)), draft.text
    assert texts.CAMPAIGN_VARIANTS_HEAD.format(n=3) in draft.text
    for version, content in CONTENTS.items():
        assert figures(draft.text, content)[0] == counts[version], (version, draft.text)

    done = await chat.say("MKT01", "确认")
    assert (done.outcome, done.size) == ("done", len(want)), done.text
    [campaign] = await chat.rows("SELECT id, variants FROM campaign")
    rows = await chat.rows(
        "SELECT t.person_id, t.variant, t.outcome, MIN(n.value) AS member_id FROM campaign_target t"
        " JOIN identity_node n ON n.person_id = t.person_id AND n.kind = 'member_id'"
        " WHERE t.campaign_id = :c GROUP BY t.person_id, t.variant, t.outcome", c=campaign.id,
    )
    assert {r.member_id: r.variant for r in rows} == want
    planned: dict[str, int] = {}
    for r in rows:
        if r.outcome not in ("control", "capped", "opted_out", "unreachable"):
            planned[r.variant] = planned.get(r.variant, 0) + 1
    for version, content in CONTENTS.items():
        assert figures(done.text, content) == (counts[version], planned.get(version, 0))
    stored: list[dict[str, Any]] = json.loads(campaign.variants)
    assert [(v["name"], v["content"], v["when"] is None) for v in stored] == [
        ("忠诚客户", CONTENTS["忠诚客户"], False), ("价格导向", CONTENTS["价格导向"], False),
        ("default", "新品推荐", True),
    ]
    assert stored[1]["coupon"]["card_id"] == "C30"


async def test_an_unknown_condition_is_answered_in_chinese(chat: Chat) -> None:  # noqa: F811
    before = await chat.rows("SELECT id FROM campaign")
    answer = await chat.say("MKT01", "给会员发消息：价格敏感型的发30元券，其他人发新品推荐")
    assert answer.outcome == "not_understood", answer.text
    assert texts.CAMPAIGN_VARIANT_ISSUES["unknown"].format(who="价格敏感型的") in answer.text
    assert await chat.rows("SELECT id FROM campaign") == before
    assert (await chat.say("MKT01", "确认")).outcome != "done"  # nothing waits for a confirmation
    nothing = await chat.say("MKT01", "给会员发消息：价格导向的发，其他人发新品推荐")
    assert texts.CAMPAIGN_VARIANT_ISSUES["no_content"].format(who="价格导向的") in nothing.text


async def test_versions_side_by_side_are_one_campaign(chat: Chat) -> None:  # noqa: F811
    members = [p["tags"] for p in expected_profiles() if p["tags"].get("is_member") == "是"]
    price = sum(t.get("price_orientation") == "价格导向" for t in members)
    quality = sum(t.get("price_orientation") == "品质导向" for t in members)
    assert price and quality
    draft = await chat.say("MKT01", "给价格导向的会员发30元无门槛券，品质导向的会员发新品推荐")
    assert (draft.outcome, draft.size) == ("preview", price + quality), draft.text
    coupon = texts.CAMPAIGN_COUPON_MESSAGE.format(offer="优惠券“30元无门槛券”")
    assert figures(draft.text, coupon)[0] == price
    assert figures(draft.text, "新品推荐")[0] == quality
    assert (await chat.say("MKT01", "取消")).text == texts.CHAT_CANCELLED
