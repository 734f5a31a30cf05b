"""The real `qianmian` command, run as a subprocess on a temporary SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET

QIANMIAN = str(Path(sys.executable).with_name("qianmian"))


def qianmian(*args: str, cwd: Path, secret: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANMIAN_", "DATABASE_URL"))}
    env["DATABASE_URL"] = f"sqlite:///{cwd / 'qianmian.db'}"
    if secret:
        env["QIANMIAN_SECRET_KEY"] = TEST_SECRET
    return subprocess.run(
        [QIANMIAN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_import_then_export(tmp_path: Path, sample_dir: Path) -> None:
    done = qianmian("import", str(sample_dir), "--rejects", str(tmp_path / "rejects.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "persons: 672" in done.stdout
    assert "8 rejected" in done.stdout and str(tmp_path / "rejects.csv") in done.stdout
    assert "orders.csv" in done.stdout and "events.csv" in done.stdout
    assert (tmp_path / "rejects.csv").read_text(encoding="utf-8").count("\n") == 9

    exported = qianmian("export", "profiles", "--as-of", "2026-11-01", "--format", "jsonl", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 672
    assert "672 profiles" in exported.stderr  # progress and notes on stderr, data on stdout
    as_csv = qianmian("export", "profiles", "--format", "csv", "--include-pii", cwd=tmp_path)
    assert as_csv.returncode == 0 and len(as_csv.stdout.splitlines()) == 673


def test_default_rejects_report_beside_the_data(tmp_path: Path, sample_dir: Path) -> None:
    done = qianmian("import", str(sample_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (sample_dir / "rejects.csv").exists()
    assert str(sample_dir / "rejects.csv") in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("import",),
        ("export",),
        ("export", "profiles", "--format", "xml"),
        ("export", "profiles", "--as-of", "2026-13-01"),
        ("generate", "x", "--customers", "0"),
        ("nonsense",),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = qianmian(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert not (tmp_path / "qianmian.db").exists()  # a usage error touches nothing


@pytest.mark.parametrize("command", [("import", "DIR"), ("export", "profiles")])
def test_missing_secret_exits_1_naming_it(tmp_path: Path, sample_dir: Path, command: tuple[str, ...]) -> None:
    args = [str(sample_dir) if a == "DIR" else a for a in command]
    done = qianmian(*args, cwd=tmp_path, secret=False)
    assert done.returncode == 1
    assert "QIANMIAN_SECRET_KEY" in done.stderr
    assert "Traceback" not in done.stderr


def test_failures_exit_1_with_a_message(tmp_path: Path) -> None:
    done = qianmian("import", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 1 and "missing" in done.stderr and "Traceback" not in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = qianmian("import", str(empty), cwd=tmp_path)
    assert done.returncode == 1 and "none of the import files" in done.stderr


def test_every_subcommand_has_help(tmp_path: Path) -> None:
    for args in (("--help",), ("import", "--help"), ("export", "--help"), ("export", "profiles", "--help"),
                 ("generate", "--help")):
        done = qianmian(*args, cwd=tmp_path)
        assert done.returncode == 0, args
        assert "Usage" in done.stdout


def test_generate_then_import(tmp_path: Path) -> None:
    done = qianmian("generate", str(tmp_path / "data"), "--customers", "150", "--seed", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "orders.csv" in done.stdout
    again = qianmian("import", str(tmp_path / "data"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "persons:" in again.stdout


def test_identity_explain(tmp_path: Path, sample_dir: Path) -> None:
    assert qianmian("import", str(sample_dir), cwd=tmp_path).returncode == 0
    # Two member cards on one phone (the sample's M000002 / M000003): one person, phone masked.
    done = qianmian("identity", "explain", "member_id", "M000002", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "M000002, M000003" in done.stdout
    assert "131****7436" in done.stdout and "13142177436" not in done.stdout
    # The same person, asked for by phone in any written form.
    by_phone = qianmian("identity", "explain", "phone", "+86 131 4217 7436", cwd=tmp_path)
    assert by_phone.returncode == 0 and by_phone.stdout.splitlines()[0] == done.stdout.splitlines()[0]
    # A store phone shared by several cards belongs to no one; an unknown kind is a usage error.
    shared = qianmian("identity", "explain", "phone", "13979262243", cwd=tmp_path)
    assert shared.returncode == 1 and "shared" in shared.stderr
    wrong = qianmian("identity", "explain", "wechat", "x", cwd=tmp_path)
    assert wrong.returncode == 2 and "unknown identifier kind" in wrong.stderr
