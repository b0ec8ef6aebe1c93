"""Build info: the image's baked-in commit and date, else git's, else "unknown"."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from trustgate_core import buildinfo
from trustgate_core.buildinfo import build_info

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TRUSTGATE_COMMIT", raising=False)
    monkeypatch.delenv("TRUSTGATE_BUILD_DATE", raising=False)
    build_info.cache_clear()
    yield
    build_info.cache_clear()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def test_in_a_checkout_the_commit_is_head_and_the_date_its_commit_date() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    info = build_info()
    assert info["commit"] == _git("rev-parse", "HEAD")
    assert info["build_date"] == _git("log", "-1", "--format=%cI", "HEAD")
    datetime.fromisoformat(info["build_date"])
    assert info["version"] not in ("", "unknown")


def test_the_values_baked_into_the_image_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTGATE_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("TRUSTGATE_BUILD_DATE", "2026-12-01T10:00:00Z")
    info = build_info()
    assert info["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert info["build_date"] == "2026-12-01T10:00:00Z"


def test_it_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTGATE_COMMIT", "first")
    assert build_info()["commit"] == "first"
    monkeypatch.setenv("TRUSTGATE_COMMIT", "second")
    assert build_info()["commit"] == "first"


def test_outside_a_checkout_it_says_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(buildinfo, "__file__", str(tmp_path / "buildinfo.py"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    info = build_info()
    assert info["commit"] == "unknown"
    assert info["build_date"] == "unknown"


@pytest.mark.parametrize(
    "failure",
    [FileNotFoundError("git"), subprocess.TimeoutExpired(["git"], 2.0), PermissionError("git")],
)
def test_git_failing_or_hanging_means_unknown_never_an_error(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(buildinfo.subprocess, "run", broken)
    assert build_info()["commit"] == "unknown"
