"""`qianmian welcome list|set|reset` and `qianmian outbox`, run as the real command."""

from __future__ import annotations

from pathlib import Path

from bot import texts
from tests.test_cli import qianmian


def test_welcome_templates_are_listed_changed_refused_and_reset(tmp_path: Path) -> None:
    listed = qianmian("welcome", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert texts.WELCOME_DEFAULTS["loyal"][:10] in listed.stdout

    done = qianmian("welcome", "set", "loyal", "{guide}想您了，新品已到{store}", "--link-url", "https://shop.example/new",
                    "--by", "marketer1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = qianmian("welcome", "list", cwd=tmp_path)
    assert "{guide}想您了" in listed.stdout and "marketer1" in listed.stdout

    for args, words in (
        (("welcome", "set", "vip", "hi"), "vip"),  # no such kind
        (("welcome", "set", "new", "你好{name}"), "{name}"),  # unknown placeholder
        (("welcome", "set", "new", "  "), "不能为空"),
        (("welcome", "set", "new", "hi", "--link-url", "ftp://x"), "https://"),
    ):
        refused = qianmian(*args, cwd=tmp_path)
        assert refused.returncode == 1 and words in refused.stderr, (args, refused.stderr)

    assert qianmian("welcome", "reset", "loyal", cwd=tmp_path).returncode == 0
    listed = qianmian("welcome", "list", cwd=tmp_path)
    assert "{guide}想您了" not in listed.stdout

    counts = qianmian("outbox", cwd=tmp_path)
    assert counts.returncode == 0 and "待发 0" in counts.stdout
