"""What this build is: its version, the commit it was built from and when.

A container image has the commit and date baked in at build time (``TRUSTGATE_COMMIT``,
``TRUSTGATE_BUILD_DATE``: ``deploy/Dockerfile``'s build arguments). A git checkout (an
editable install) asks git, once, with a short timeout. Anything else says "unknown".
Reading it never fails.
"""

from __future__ import annotations

import functools
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TypedDict

UNKNOWN = "unknown"
GIT_TIMEOUT_SECONDS = 2.0


class BuildInfo(TypedDict):
    version: str
    commit: str
    build_date: str


@functools.cache
def build_info() -> BuildInfo:
    """The version, commit and build date (ISO 8601) of this process's TrustGate.

    Blocking the first time (it may run git): call it from a thread in async code.
    """
    commit = os.environ.get("TRUSTGATE_COMMIT", "").strip()
    build_date = os.environ.get("TRUSTGATE_BUILD_DATE", "").strip()
    if not commit:
        commit, git_date = _from_git(Path(__file__).resolve().parent)
        build_date = build_date or git_date
    return {
        "version": _version(),
        "commit": commit or UNKNOWN,
        "build_date": build_date or UNKNOWN,
    }


def _version() -> str:
    for distribution in ("trustgate", "trustgate-core"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return UNKNOWN


def _from_git(source: Path) -> tuple[str, str]:
    """HEAD's commit and commit date when ``source`` is in a git checkout, else blanks."""
    if "site-packages" in source.parts:  # an installed copy: a repo around it is another's
        return "", ""
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "log", "-1", "--format=%H %cI", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "", ""
    commit, _, date = out.stdout.strip().partition(" ")
    if out.returncode != 0 or len(commit) != 40:
        return "", ""
    return commit, date
