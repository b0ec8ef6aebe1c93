"""The PII regex-and-checksum tier's latency (issue 15's budget: at most 2 ms p95 on a
2 KB prompt): ``find`` over a fixed 2 KB prompt, timed call by call after a warm-up.

The default prompt mixes prose, code and log lines (timestamps, UUIDs, versions, IPs,
ports) with one paragraph holding a dozen entities of every group. ``--dense`` repeats
the three parts in turn, so a third of the text is PII (about 30 matches in 2 KB): the
worst case, since the numeric detectors scan only around digit runs.

    .venv/bin/python bench/pii_bench.py [--runs N] [--size BYTES] [--dense]

Prints the prompt's size, how many matches it holds, and p50/p95/p99/max in ms of wall
time and of the thread's CPU time (on a shared machine the wall time's tail is mostly
other processes' turn on the CPU)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from trustgate_core.pii import find

_PROSE = (
    "Please summarise the attached incident report for the review board. The service "
    "restarted at 2026-12-07T10:22:33Z after build v1.24.3 (commit 9f3c2ab) shipped; "
    "request 550e8400-e29b-41d4-a716-446655440000 failed with code 503 on 10.0.12.7. "
)
_CODE = (
    "def retry(n: int = 3, delay_ms: int = 250) -> None:\n"
    "    for attempt in range(n):  # 1733541234 is the epoch of the last deploy\n"
    "        print(f'attempt {attempt}/{n}: 0x7fff5fbff8a8 port=8080 pid=48213')\n"
)
_PII = (
    "Customer: jane.doe@example.com, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 "
    "0130 00, SSN 123-45-6789, phone (415) 555-2671, NI AB 12 34 56 C, Steuer-IdNr "
    "86 095 742 719, DNI 54362315K, 身份证号11010519491231002X, tel +86 138 0013 8000, "
    "RRN 900101-1234568, Emirates ID 784-1968-6570305-0, hetu 131052-308T. "
)


def prompt(size: int, *, dense: bool = False) -> str:
    """A mixed prompt of ``size`` characters: one PII paragraph in prose and code, or
    (``dense``) prose, code and PII in turn."""
    if not dense:
        filler = _PROSE + _CODE
        body = _PROSE + _PII + _CODE
        while len(body) < size:
            body += filler
        return body[:size]
    parts = [_PROSE, _CODE, _PII]
    text = ""
    i = 0
    while len(text) < size:
        text += parts[i % len(parts)]
        i += 1
    return text[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dense", action="store_true")
    args = parser.parse_args()
    text = prompt(args.size, dense=args.dense)
    for _ in range(200):
        find(text)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(args.runs):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        find(text)
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - start) / 1e6)
    sys.stdout.write(f"prompt {len(text)} chars, {len(find(text))} matches, {args.runs} runs\n")
    for name, timings in (("wall", wall), ("cpu", cpu)):
        q = statistics.quantiles(timings, n=100)
        sys.stdout.write(
            f"  {name:4} p50 {q[49]:.3f} ms  p95 {q[94]:.3f} ms  p99 {q[98]:.3f} ms  "
            f"max {max(timings):.3f} ms\n"
        )


if __name__ == "__main__":
    main()
