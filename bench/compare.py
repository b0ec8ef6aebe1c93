"""The shared harness with two builds of TrustGate in one run: ``custom`` (this checkout)
and ``baseline`` (another checkout, e.g. the parent commit), so their figures come from the
same run on the same machine, round-robin with ``--repeat``.

    python3 bench/compare.py --baseline-dir /tmp/parent -- --scenarios a,b,c --repeat 2

Everything after ``--`` goes to the harness (``../shared/bench/bench.py`` by default,
``--harness`` to change). Both builds run ``bench/serve_trustgate.py`` from their own
checkout and venv (this one on port 18141, the baseline on 18142). Like the harness, it
runs inside a network namespace with only loopback when it can (``unshare --net``).

The same checkout with and without policies, in one run (``--policies``: a rate limiter and
a token budget on the bench consumer, counters in a private Redis on the load generator's
core):

    python3 bench/compare.py --baseline-dir . --baseline-name no-policies \
        --name policies --serve-args=--policies -- --scenarios a,b --repeat 3

A JWT consumer against an API-key one, in one run (``--jwt``: this checkout is called with
``bench/jwt_bench.py``'s OIDC token instead of the API key):

    python3 bench/compare.py --baseline-dir . --baseline-name api-key --name jwt \\
        --serve-args=--jwt --jwt -- --scenarios a,b --repeat 3
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KEY = "ag_benchmark-key-0123456789abcdefghijklmnopqrstuv"
_IN_NETNS = "TRUSTGATE_COMPARE_NETNS"


def serve(checkout: Path, port: int, extra: str = "") -> str:
    return (
        f"cd '{checkout}' && exec .venv/bin/python bench/serve_trustgate.py --port {port} {extra}"
    ).rstrip()


def harness_args(
    port: int, name: str, checkout: Path, extra: str = "", bearer: str | None = None
) -> list[str]:
    credential = f"Authorization: Bearer {bearer}" if bearer else f"X-AG-API-Key: {KEY}"
    return [
        "--custom-name", name,
        "--custom-start", serve(checkout, port, extra),
        "--custom-url", f"http://127.0.0.1:{port}/bench/v1/chat/completions",
        "--custom-header", "X-AG-Gateway-Slug: bench",
        "--custom-header", credential,
        "--custom-model", "{kind}",
    ]  # fmt: skip


def _bench_token() -> str:
    """``bench/jwt_bench.py``'s token, made with this checkout's venv (pyjwt is there)."""
    made = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", "import jwt_bench; print(jwt_bench.token())"],
        cwd=REPO / "bench",
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def in_netns() -> None:
    """Run this script again inside a loopback-only network namespace."""
    if os.environ.get(_IN_NETNS) or not (shutil.which("unshare") and shutil.which("ip")):
        return
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    script = 'ip link set lo up && exec "$0" "$@"'
    argv = [*unshare, "sh", "-c", script, sys.executable, str(Path(__file__).resolve())]
    env = dict(os.environ, **{_IN_NETNS: "1"})
    raise SystemExit(subprocess.run([*argv, *sys.argv[1:]], env=env, check=False).returncode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-dir", required=True, type=Path)
    parser.add_argument("--baseline-name", default="baseline")
    parser.add_argument("--name", default="trustgate")
    parser.add_argument("--harness", type=Path, default=REPO.parent / "shared/bench/bench.py")
    parser.add_argument(
        "--serve-args", default="", help="extra serve_trustgate.py arguments for this checkout"
    )
    parser.add_argument(
        "--jwt",
        action="store_true",
        help="this checkout is called with bench/jwt_bench.py's token (serve it with --jwt)",
    )
    parser.add_argument(
        "--baseline-serve-args",
        default="",
        help="extra serve_trustgate.py arguments for the baseline",
    )
    ours, rest = parser.parse_known_args()
    rest = [a for a in rest if a != "--"]
    in_netns()
    spec = importlib.util.spec_from_file_location("bench", ours.harness)
    assert spec is not None and spec.loader is not None
    bench: Any = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = bench
    spec.loader.exec_module(bench)
    baseline = harness_args(
        18142, ours.baseline_name, ours.baseline_dir.resolve(), ours.baseline_serve_args
    )

    def target_baseline(mock: Any, args: Any) -> Any:
        values = dict(zip(baseline[::2], baseline[1::2], strict=False))
        copy = SimpleNamespace(**vars(args))
        copy.custom_name = values["--custom-name"]
        copy.custom_start = values["--custom-start"]
        copy.custom_url = values["--custom-url"]
        # its own headers (the credential may differ: an API key against our bearer token)
        pairs = zip(baseline[::2], baseline[1::2], strict=True)
        copy.custom_header = [v for k, v in pairs if k == "--custom-header"]
        return bench.target_custom(mock, copy)

    bench.TARGET_BUILDERS["baseline"] = target_baseline
    bearer = _bench_token() if ours.jwt else None
    sys.argv = [
        str(ours.harness),
        "run",
        *harness_args(18141, ours.name, REPO, ours.serve_args, bearer),
    ]
    sys.argv += ["--targets", "direct,baseline,custom", "--netns", "off", *rest]
    return int(bench.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
