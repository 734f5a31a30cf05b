"""Every user-facing Chinese string of the bot, in one place (later issues add theirs here)."""

from __future__ import annotations

# ---------------------------------------------------------------- operators: dead letters (CLI)
DEADLETTER_NONE = "没有待处理的死信。"
DEADLETTER_TITLE = "死信（无法处理的回调）"
DEADLETTER_COLUMNS = ("编号", "回调编号", "渠道", "账号", "去重键", "原因", "时间", "状态")
DEADLETTER_REPLAYED = "已重新排队 {count} 条回调，运行中的服务会尽快处理。"
DEADLETTER_NOTHING_TO_REPLAY = "没有可重放的死信。"
DEADLETTER_REPLAY_NEEDS_TARGET = "请给出死信编号，或使用 --all 重放全部。"
