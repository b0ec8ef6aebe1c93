#!/usr/bin/env python3
"""Developer entry point: set up the venv, then run, test or lint TrustGate.

    python3 scripts/dev.py run [args]      install if needed, then `trustgate run [args]`
    python3 scripts/dev.py test [args]     install, start local services, lint, pytest [args]
    python3 scripts/dev.py lint            install, then ruff, mypy and lint-imports
    python3 scripts/dev.py install         only create/update the venv

The venv is `.venv` in the repository. Every package (`libs/*`, `services/*` and the root
with its `embedded` and `dev` extras) is installed editable in one pip command, so the
local packages satisfy each other's dependencies. The install is skipped while the
pyproject files are unchanged (a stamp in the venv records them). Standard library only.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".trustgate-install-stamp"
MIN_PYTHON = (3, 11)
ROOT_EXTRAS = "embedded,dev"


def say(message: str) -> None:
    print(f"dev: {message}", flush=True)


# --- the venv ----------------------------------------------------------------------------


def package_dirs() -> list[Path]:
    """Every local distribution: libs first, then services (sorted, stable)."""
    found = sorted(glob.glob(str(REPO / "libs" / "*" / "pyproject.toml")))
    found += sorted(glob.glob(str(REPO / "services" / "*" / "pyproject.toml")))
    return [Path(p).parent for p in found]


def pip_command() -> list[str]:
    cmd = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for directory in package_dirs():
        cmd += ["-e", str(directory.relative_to(REPO))]
    cmd += ["-e", f".[{ROOT_EXTRAS}]"]
    return cmd


def install_fingerprint(cmd: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(" ".join(cmd[1:]).encode())
    for directory in [*package_dirs(), REPO]:
        pyproject = directory / "pyproject.toml"
        digest.update(str(pyproject.relative_to(REPO)).encode())
        digest.update(pyproject.read_bytes())
    return digest.hexdigest()


def find_base_python() -> str:
    """An interpreter new enough to build the venv: this one, or python3.1x on PATH."""
    if sys.version_info >= MIN_PYTHON:
        return sys.executable
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        candidate = shutil.which(f"python3.{minor}")
        if candidate:
            return candidate
    raise SystemExit(
        f"dev: TrustGate needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ "
        f"(this is {sys.version.split()[0]}); install one and rerun"
    )


def create_venv() -> None:
    base = find_base_python()
    say(f"creating .venv with {base}")
    result = subprocess.run([base, "-m", "venv", str(VENV)], check=False)
    if result.returncode == 0 and PYTHON.exists():
        return
    # Debian ships the venv module without ensurepip unless python3-venv is installed.
    shutil.rmtree(VENV, ignore_errors=True)
    version = subprocess.run(
        [base, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing python{version}-venv with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", f"python{version}-venv"],
            check=False,
            env=env,
            timeout=600,
        )
        if subprocess.run([base, "-m", "venv", str(VENV)], check=False).returncode == 0:
            return
    raise SystemExit("dev: could not create .venv (is the python venv module installed?)")


def ensure_installed() -> None:
    if not PYTHON.exists():
        create_venv()
    cmd = pip_command()
    fingerprint = install_fingerprint(cmd)
    if STAMP.exists() and STAMP.read_text(encoding="utf-8").strip() == fingerprint:
        return
    say("installing: " + " ".join(cmd[3:]))
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"dev: pip install failed (exit {result.returncode})")
    STAMP.write_text(fingerprint + "\n", encoding="utf-8")
    say(f"installed in {time.monotonic() - started:.0f}s")


# --- steps -------------------------------------------------------------------------------


class Steps:
    """Runs commands one after another, keeps going after a failure, and sums up."""

    def __init__(self) -> None:
        self.results: list[tuple[str, int, float]] = []

    def run(self, name: str, cmd: list[str]) -> int:
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run(cmd, cwd=REPO, check=False).returncode
        except FileNotFoundError as exc:
            print(f"dev: {exc}", flush=True)
            code = 127
        self.results.append((name, code, time.monotonic() - started))
        return code

    def summary(self) -> int:
        print("\n=== summary", flush=True)
        for name, code, seconds in self.results:
            verdict = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"  {name:<14} {verdict:<20} {seconds:6.1f}s", flush=True)
        failed = [name for name, code, _ in self.results if code != 0]
        print(f"=== {'FAILED: ' + ', '.join(failed) if failed else 'all steps passed'}")
        for name, code, _ in self.results:
            if name == "pytest" and code != 0:
                return code
        return 1 if failed else 0


def mypy_command() -> list[str]:
    targets = ["libs/trustgate-core/src", "libs/trustgate-testkit/src"]
    targets += sorted(
        str(Path(p).relative_to(REPO)) for p in glob.glob(str(REPO / "services" / "*" / "src"))
    )
    targets.append("src")
    return [str(BIN / "mypy"), *targets]


def lint_steps(steps: Steps) -> None:
    steps.run("ruff check", [str(BIN / "ruff"), "check", "."])
    steps.run("ruff format", [str(BIN / "ruff"), "format", "--check", "."])
    steps.run("mypy", mypy_command())
    # module boundaries: the contracts in pyproject.toml's [tool.importlinter]
    cache = str(VENV / ".import_linter_cache")
    steps.run("lint-imports", [str(BIN / "lint-imports"), "--no-logo", "--cache-dir", cache])


# --- commands ----------------------------------------------------------------------------


def cmd_run(args: list[str]) -> int:
    ensure_installed()
    trustgate = BIN / "trustgate"
    os.execv(str(trustgate), [str(trustgate), "run", *args])
    return 0  # not reached


def cmd_test(args: list[str]) -> int:
    ensure_installed()
    steps = Steps()
    if steps.run("services", [str(PYTHON), "scripts/services.py", "ensure"]) != 0:
        return steps.summary()
    lint_steps(steps)
    steps.run("pytest", [str(BIN / "pytest"), *args])
    return steps.summary()


def cmd_lint(args: list[str]) -> int:
    ensure_installed()
    steps = Steps()
    lint_steps(steps)
    return steps.summary()


def cmd_install(args: list[str]) -> int:
    ensure_installed()
    say("the venv is up to date")
    return 0


COMMANDS = {"run": cmd_run, "test": cmd_test, "lint": cmd_lint, "install": cmd_install}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
