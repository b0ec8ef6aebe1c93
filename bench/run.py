"""TrustGate's own benchmark: mock upstream + proxy + load generator, one table.

Starts ``mock_upstream.py`` (JSON and SSE ports, and a second pair with a 50 ms delay) and
``serve_trustgate.py`` (a proxy with a private NATS, configured through config events),
pins the proxy to one core when ``taskset`` exists, and runs the scenarios of the shared
harness with ``loadgen.py`` (or ``wrk`` with ``--wrk``): straight at the mock (``direct``)
and through the proxy. Reports req/s, p50/p99, added latency over direct, the proxy's CPU
µs per request (from ``/proc``) and its peak RSS.

    .venv/bin/python bench/run.py                 # scenarios a-g, 10 s each
    python bench/run.py --scenarios a,b --duration 5
    python bench/run.py --scenarios a,e,b,f,c,g   # OpenAI vs Anthropic pass-through
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "ag_benchmark-key-0123456789abcdefghijklmnopqrstuv"
SCENARIOS = {  # key: (kind, stream, connections)
    "a": ("json", False, 1),
    "b": ("json", False, 32),
    "c": ("sse", True, 32),
    "d": ("json_slow", False, 64),
    # Anthropic Messages passed through to an Anthropic-format upstream (compare with a-c)
    "e": ("anthropic_json", False, 1),
    "f": ("anthropic_json", False, 32),
    "g": ("anthropic_sse", True, 32),
}


def api_path(kind: str) -> tuple[str, str]:
    """The loadgen format and the API path of a scenario's kind."""
    if kind.startswith("anthropic"):
        return "anthropic", "/messages"
    return "openai", "/chat/completions"


CLK_TCK = os.sysconf("SC_CLK_TCK")


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus and shutil.which("taskset") else argv


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def load(
    url: str,
    headers: list[str],
    model: str,
    stream: bool,
    conns: int,
    args: argparse.Namespace,
    fmt: str = "openai",
) -> dict[str, float]:
    if args.wrk:
        raise SystemExit("--wrk: use the shared harness (../shared/bench) for wrk runs")
    argv = [
        sys.executable,
        str(HERE / "loadgen.py"),
        url,
        "-c",
        str(conns),
        "-d",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--model",
        model,
        "--format",
        fmt,
    ]
    for h in headers:
        argv += ["-H", h]
    if stream:
        argv.append("--stream")
    out = subprocess.run(
        pinned(argv, args.loadgen_cpus), capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="a,b,c,d,e,f,g")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--gateway-cpus", default="1")
    parser.add_argument("--loadgen-cpus", default="0")
    parser.add_argument("--port", type=int, default=18241)
    parser.add_argument("--mock-port", type=int, default=18201)
    parser.add_argument("--wrk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        argv: list[str], cpus: str | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            pinned(argv, cpus),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(p)
        return p

    mp = args.mock_port
    try:
        spawn(
            [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(mp)], args.loadgen_cpus
        )
        spawn(
            [
                sys.executable,
                str(HERE / "mock_upstream.py"),
                "--port",
                str(mp + 2),
                "--delay-ms",
                "50",
            ],
            args.loadgen_cpus,
        )
        mocks = {
            "json": f"http://127.0.0.1:{mp}/v1",
            "sse": f"http://127.0.0.1:{mp + 1}/v1",
            "json_slow": f"http://127.0.0.1:{mp + 2}/v1",
            # the same mock answers /v1/messages in Anthropic's format
            "anthropic_json": f"http://127.0.0.1:{mp}/v1",
            "anthropic_sse": f"http://127.0.0.1:{mp + 1}/v1",
        }
        for url in mocks.values():
            wait_http(url + "/models")
        gateway = spawn(
            [
                sys.executable,
                str(HERE / "serve_trustgate.py"),
                "--port",
                str(args.port),
                *(a for k, u in mocks.items() for a in ("--upstream", f"{k}={u}")),
                "--nats-cpus",
                args.loadgen_cpus,
            ],
            args.gateway_cpus,
        )
        wait_http(f"http://127.0.0.1:{args.port}/readyz")
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_bytes(gateway.pid))
                time.sleep(0.25)

        threading.Thread(target=sample, daemon=True).start()
        rows = []
        for key in args.scenarios.split(","):
            kind, stream, conns = SCENARIOS[key]
            fmt, path = api_path(kind)
            direct = load(mocks[kind] + path, [], "gpt-4o-mini", stream, conns, args, fmt)
            before = cpu_seconds(gateway.pid)
            through = load(
                f"http://127.0.0.1:{args.port}/bench/v1{path}",
                ["X-AG-Gateway-Slug: bench", f"X-AG-API-Key: {KEY}"],
                kind,
                stream,
                conns,
                args,
                fmt,
            )
            used = cpu_seconds(gateway.pid) - before
            # the loadgen's warm-up also ran through the proxy: count the measured share only
            share = args.duration / (args.duration + args.warmup)
            cpu_us = used * share / max(1, through["requests"]) * 1e6
            rows.append((key, kind, conns, direct, through, cpu_us))
        stop.set()
        print(
            "| scenario | direct req/s | trustgate req/s | p50 ms | p99 ms | +p50 ms | +p99 ms "
            "| CPU µs/req | errors | peak RSS MiB |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for key, kind, conns, d, t, cpu_us in rows:
            print(
                f"| {key}: {kind} c={conns} | {d['rps']:,.0f} | {t['rps']:,.0f} | {t['p50_ms']} | {t['p99_ms']} "
                f"| {t['p50_ms'] - d['p50_ms']:.2f} | {t['p99_ms'] - d['p99_ms']:.2f} | {cpu_us:.0f} "
                f"| {t['errors']} | {peak[0] / 2**20:.0f} |"
            )
        print(
            "\nCPU µs/req is approximate (the warm-up share is prorated); the shared harness "
            "(../shared/bench, wrk) is the reference measurement."
        )
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
