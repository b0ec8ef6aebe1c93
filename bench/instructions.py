"""Instructions per proxied request, counted by valgrind (callgrind): a figure the VM's
speed drift does not move, for comparing two builds of the proxy.

For each checkout given, the proxy (``bench/serve_trustgate.py`` from that checkout, with
its own venv) runs under callgrind against ``bench/mock_upstream.py``; one client sends
``--warm`` requests, then ``--few`` or ``--many`` more, one at a time on a keep-alive
connection. The difference of the two runs' totals over ``many - few`` requests is what one
request costs: the ASGI server, the pipeline, the upstream client, the request event's
publishing, everything the process does for it.

    python3 bench/instructions.py . ../parent-checkout             # needs valgrind
    python3 bench/instructions.py --kind sse . ../parent-checkout  # streamed (20 chunks)

Each run takes about a minute (the proxy is ~50 times slower under valgrind).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORT, MOCK_PORT = 18151, 18201
KEY = "ag_benchmark-key-0123456789abcdefghijklmnopqrstuv"


def body(kind: str) -> str:
    """A chat completion for the upstream of ``kind`` (``json``; ``sse``: streamed)."""
    doc = {
        "model": kind,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."},
        ],
    }
    if kind == "sse":
        doc["stream"] = True
    return json.dumps(doc)


def send(count: int, kind: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    headers = {"X-AG-Gateway-Slug": "bench", "X-AG-API-Key": KEY}
    for _ in range(count):
        conn.request("POST", "/bench/v1/chat/completions", body(kind), headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"the proxy answered {resp.status}: {data[:200]!r}")
    conn.close()


def ready(within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the proxy did not become ready under valgrind")


def total(checkout: Path, kind: str, warm: int, count: int) -> int:
    """The instructions the proxy process executed for ``warm`` + ``count`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        proxy = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                str(checkout / ".venv/bin/python"),
                "bench/serve_trustgate.py",
                "--port",
                str(PORT),
                "--upstream",
                f"json=http://127.0.0.1:{MOCK_PORT}/v1",
                "--upstream",
                f"sse=http://127.0.0.1:{MOCK_PORT + 1}/v1",
            ],
            cwd=checkout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready(300)
            send(warm, kind)
            send(count, kind)
        finally:
            proxy.send_signal(signal.SIGINT)
            proxy.wait(timeout=300)
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit("callgrind wrote no totals")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--kind", choices=["json", "sse"], default="json")
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    args = parser.parse_args()
    venv = REPO / ".venv/bin/python"
    python = str(venv) if venv.exists() else sys.executable
    mock = subprocess.Popen(
        [python, str(REPO / "bench/mock_upstream.py"), "--port", str(MOCK_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        for checkout in args.checkouts:
            checkout = checkout.resolve()
            few = total(checkout, args.kind, args.warm, args.few)
            many = total(checkout, args.kind, args.warm, args.many)
            per = (many - few) / (args.many - args.few)
            print(f"{checkout} ({args.kind}): {per / 1000:.1f}k instructions per request")
    finally:
        mock.terminate()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
