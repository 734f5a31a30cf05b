"""`qianmian tags …`, `history`, `labels …` and `portrait`, run as the real command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLE_DIR
from tests.test_cli import qianmian


def a_member_with_aov_between(low: float, high: float) -> str:
    with (SAMPLE_DIR / "expected_profiles.jsonl").open(encoding="utf-8") as handle:
        for p in map(json.loads, handle):
            if low <= p["metrics"].get("aov_365d", -1) < high and len(p["identities"].get("member_id", [])) == 1:
                return str(p["identities"]["member_id"][0])
    raise LookupError


def test_tags_settings_refresh_history_labels_portrait(tmp_path: Path, sample_dir: Path) -> None:
    assert qianmian("import", str(sample_dir), "--no-tags", cwd=tmp_path).returncode == 0
    done = qianmian("tags", "refresh", "--as-of", "2026-11-01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "672 位顾客" in done.stdout and "0 处标签变化" in done.stdout

    shown = qianmian("tags", "settings", cwd=tmp_path)
    assert shown.returncode == 0 and "power_high" in shown.stdout and "购买力高" in shown.stdout
    assert qianmian("tags", "set", "power_high", "800", "--by", "marketer1", cwd=tmp_path).returncode == 0
    bad = qianmian("tags", "set", "power_high", "lots", cwd=tmp_path)
    assert bad.returncode == 1 and "power_high" in bad.stderr and "无效" in bad.stderr
    unknown = qianmian("tags", "set", "no_such", "1", cwd=tmp_path)
    assert unknown.returncode == 1 and "no_such" in unknown.stderr
    done = qianmian("tags", "refresh", "--as-of", "2026-11-02", cwd=tmp_path)
    assert done.returncode == 0 and "0 处标签变化" not in done.stdout

    history = qianmian("history", f"member_id:{a_member_with_aov_between(500, 800)}", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert "2026-11-02 购买力 由 高 变为 中" in history.stdout
    missing = qianmian("history", "phone:13000000000", cwd=tmp_path)
    assert missing.returncode == 1 and "找不到顾客" in missing.stderr

    assert qianmian("labels", "add", "M000007", "爱穿裙子", "--by", "GS0060", cwd=tmp_path).returncode == 0
    again = qianmian("labels", "add", "M000007", "爱穿裙子", cwd=tmp_path)
    assert again.returncode == 0 and "已有标签" in again.stdout
    bad_label = qianmian("labels", "add", "M000007", "a,b", cwd=tmp_path)
    assert bad_label.returncode == 1 and "逗号" in bad_label.stderr
    listed = qianmian("labels", "list", "M000007", cwd=tmp_path)
    assert "爱穿裙子" in listed.stdout and "GS0060" in listed.stdout

    card = qianmian("portrait", "M000007", "--as-of", "2026-11-01", cwd=tmp_path)
    assert card.returncode == 0, card.stderr
    assert "【顾客画像】" in card.stdout and "生命周期：忠诚" in card.stdout and "标签：爱穿裙子" in card.stdout
    exported = qianmian("export", "profiles", "--as-of", "2026-11-01", cwd=tmp_path)
    assert '"labels": ["爱穿裙子"]' in exported.stdout
