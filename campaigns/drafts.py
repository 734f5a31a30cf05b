"""A campaign command ("给上海门店的价格导向会员下周一上午10点发30元无门槛券") as a campaign draft:
the `Campaign` row the planner previews and, once confirmed, stores and plans.

A draft travels between the preview and the confirmation as plain JSON (the pending action of
the conversation, profile_store/chat.py), so any `serve` process can take the "确认".
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from nlp import segment as seg
from nlp.intent import CampaignCommand
from profile_store.models import Campaign

# The channel words of a command → the channels a person may be reached by (Campaign.channel).
CHANNELS = {"wecom": "wecom", "oa": "oa", "any": "any"}
DEFAULT_CONTROL_PCT = 10.0


def draft_of(
    command: CampaignCommand, tree: seg.Segment, *, name: str, reading: str, by: str
) -> dict[str, Any]:
    """The draft as JSON-ready data: one variant for everyone (content and coupon of the command)."""
    variant: dict[str, Any] = {"name": "default", "when": None, "content": command.content}
    if command.coupon is not None:
        variant["coupon"] = asdict(command.coupon)
    return {
        "name": command.name or name,
        "segment": seg.to_json(tree),
        "reading": reading,
        "variants": [variant],
        "channel": CHANNELS.get(command.channel, "any"),
        "send_at": command.send_at.isoformat() if command.send_at else None,
        "control_pct": DEFAULT_CONTROL_PCT,
        "created_by": by,
    }


def campaign_of(draft: dict[str, Any], *, status: str = "draft") -> Campaign:
    """The `Campaign` row of a draft."""
    send_at = draft.get("send_at")
    return Campaign(
        name=str(draft["name"]),
        kind="campaign",
        segment=str(draft["segment"]),
        reading=str(draft.get("reading", "")),
        variants=json.dumps(draft.get("variants", []), ensure_ascii=False),
        channel=str(draft.get("channel", "any")),
        send_at=datetime.fromisoformat(send_at) if send_at else None,
        control_pct=float(draft.get("control_pct", DEFAULT_CONTROL_PCT)),
        status=status,
        created_by=str(draft.get("created_by", "")),
    )
