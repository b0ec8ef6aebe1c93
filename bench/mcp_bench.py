"""The MCP plane's benchmark: what ``tools/call`` through the gateway costs.

Issue 14's budget: a ``tools/call`` through the gateway adds at most 1 ms p50 over calling
the upstream directly at concurrency 1, and one MCP process sustains at least 1,000
calls/s on one core. This script starts, all on 127.0.0.1:

- ``mock_mcp_upstream.py`` (a fast MCP server with one tool, ``echo``);
- a private nats-server (``serve_trustgate.start_nats``) and the config published as the
  admin's outbox would (``trustgate_testkit``'s ``Tenant``): gateway ``bench``, an MCP
  registry on the mock, an MCP consumer (slug ``mcpbench``) bound to it, an API key;
- the plane as its own process, ``trustgate mcp``, pinned to core 0 (``taskset``);

then measures

(a) latency at concurrency 1: the same raw aiohttp JSON-RPC client (``initialize`` once,
    then N ``tools/call`` with the session header) straight at the mock and through the
    gateway, in alternating blocks so drift hits both; the added p50 is the figure;
(b) throughput: ``wrk`` (one thread, ``--connections`` keep-alive connections, a Lua
    script that sets the headers and body and counts answers that are not a successful
    ``echo`` result) pinned to core 1, against the gateway (and, for reference, the mock);
    the gateway's CPU time per call comes from ``/proc``, and with it how busy the process
    was and what one core would serve (1e6 / CPU µs per call). On a machine shared with
    other work, calls/s is what the process got; the per-core figure is what it costs.

The mock, NATS and wrk share core 1: ``direct`` throughput is bounded by them, not the
mock. Without wrk, (b) is skipped (``apt-get install -y wrk``).

    .venv/bin/python bench/mcp_bench.py                         # ~40 s
    .venv/bin/python bench/mcp_bench.py --calls 5000 --duration 20 --json mcp.json
    .venv/bin/python bench/mcp_bench.py --direct-only           # the mock alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from run import cpu_seconds, pinned, rss_bytes  # bench/, beside this file
from serve_trustgate import start_nats, stop

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.embedded import EmbeddedError, free_port, wait_port
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import requests_stream
from trustgate_testkit.proxy.tenant import new_tenant

HERE = Path(__file__).resolve().parent
SECRET = "mcp-benchmark-secret-key-0123456789abcdef"
KEY = "ag_mcp-benchmark-key-0123456789abcdefghijklmnopq"
GATEWAY = "bench"
CONSUMER = "mcpbench"
PROTOCOL = "2025-06-18"
BASE_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}
GATEWAY_HEADERS = {"X-AG-API-Key": KEY, "X-AG-Gateway-Slug": GATEWAY}
TEXT = "the quick brown fox jumps over the lazy dog"


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]


class RpcClient:
    """A minimal MCP client: one session, raw JSON-RPC over POST, JSON or SSE answers."""

    def __init__(self, http: aiohttp.ClientSession, target: Target) -> None:
        self.http = http
        self.url = target.url
        self.headers = {**BASE_HEADERS, **target.headers}
        self.next_id = 0

    async def _post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
        async with self.http.post(
            self.url, data=orjson.dumps(message), headers=self.headers
        ) as resp:
            raw = await resp.read()
            session = resp.headers.get("Mcp-Session-Id", "")
            if resp.status != 200 or not raw:
                return resp.status, None, session
            if resp.content_type == "text/event-stream":
                raw = next(
                    line[5:] for line in raw.splitlines() if line.startswith(b"data:")
                ).strip()
            return resp.status, orjson.loads(raw), session

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        status, doc, _ = await self._post(message)
        if doc is None or "result" not in doc:
            raise SystemExit(f"{method} at {self.url}: HTTP {status}, {doc}")
        result: dict[str, Any] = doc["result"]
        return result

    async def initialize(self) -> str:
        """The handshake; the session id (every later request carries it)."""
        params = {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "mcp-bench", "version": "1.0"},
        }
        status, doc, session = await self._post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        )
        if doc is None or "result" not in doc:
            raise SystemExit(f"initialize at {self.url}: HTTP {status}, {doc}")
        if session:
            self.headers["Mcp-Session-Id"] = session
        self.headers["MCP-Protocol-Version"] = doc["result"]["protocolVersion"]
        status, _, _ = await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status != 202:
            raise SystemExit(f"notifications/initialized at {self.url}: HTTP {status}")
        return session

    async def echo_tool(self) -> str:
        """The name under which the mock's ``echo`` is listed (a gateway may rename it)."""
        tools = (await self.request("tools/list", {}))["tools"]
        names = [t["name"] for t in tools if t["name"].endswith("echo")]
        if len(names) != 1:
            raise SystemExit(f"tools/list at {self.url}: no single echo tool in {tools}")
        return str(names[0])

    async def timed_calls(self, tool: str, count: int) -> list[float]:
        """``count`` sequential ``tools/call``, each checked; their latencies in ms."""
        params = {"name": tool, "arguments": {"text": TEXT}}
        out = []
        for _ in range(count):
            start = time.perf_counter_ns()
            result = await self.request("tools/call", params)
            out.append((time.perf_counter_ns() - start) / 1e6)
            if result.get("isError") or result["content"][0]["text"] != TEXT:
                raise SystemExit(f"tools/call at {self.url}: {result}")
        return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(targets: list[Target], calls: int, blocks: int) -> dict[str, dict[str, float]]:
    """(a): each target's p50/p99 over ``calls`` calls at concurrency 1, in ``blocks``
    alternating blocks after a warm-up."""
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        clients = [RpcClient(http, t) for t in targets]
        tools = []
        for client in clients:
            await client.initialize()
            tools.append(await client.echo_tool())
            await client.timed_calls(tools[-1], min(500, calls))  # warm-up
        samples: list[list[float]] = [[] for _ in targets]
        for _ in range(blocks):
            for i, client in enumerate(clients):
                samples[i] += await client.timed_calls(tools[i], calls // blocks)
    return {
        t.name: {
            "calls": len(s),
            "p50_ms": statistics.median(s),
            "p99_ms": percentile(s, 0.99),
            "mean_ms": statistics.fmean(s),
        }
        for t, s in zip(targets, samples, strict=True)
    }


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = {body}
{headers}
bad = 0  -- global: done() reads it with thread:get
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then
    bad = bad + 1
  end
end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("BAD %d\\n", total))
  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua one for ASCII text


def wrk_script(path: Path, headers: dict[str, str], tool: str) -> None:
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": TEXT}},
        }
    ).decode()
    lines = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    path.write_text(WRK_SCRIPT.format(body=lua_string(body), headers=lines), encoding="utf-8")


async def session_for(target: Target) -> tuple[dict[str, str], str]:
    """The headers of an initialized session on ``target`` and its echo tool's name."""
    async with aiohttp.ClientSession() as http:
        client = RpcClient(http, target)
        await client.initialize()
        return client.headers, await client.echo_tool()


def throughput(
    target: Target, args: argparse.Namespace, store: Path, pid: int | None
) -> dict[str, float]:
    """(b): ``wrk`` against ``target``; calls/s, wrk's p50/p99, failed answers, and the
    CPU µs per call of process ``pid`` (the gateway)."""
    headers, tool = asyncio.run(session_for(target))
    script = store / f"{target.name}.lua"
    wrk_script(script, headers, tool)
    argv = ["wrk", "-t1", f"-c{args.connections}", "-s", str(script), target.url]
    subprocess.run(  # warm-up
        pinned([*argv[:3], f"-d{args.warmup}s", *argv[3:]], args.loadgen_cpus),
        capture_output=True,
        check=True,
    )
    cpu_before = cpu_seconds(pid) if pid else 0.0
    wall = time.monotonic()
    done = subprocess.run(
        pinned([*argv[:3], f"-d{args.duration}s", *argv[3:]], args.loadgen_cpus),
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    wall = time.monotonic() - wall
    fields: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.strip().partition(" ")
        fields[key.rstrip(":")] = value.strip()
    requests = int(done.stdout.split(" requests in ")[0].split()[-1])
    out = {
        "calls_per_s": float(fields["Requests/sec"]),
        "p50_ms": float(fields["P50"]) / 1000,
        "p99_ms": float(fields["P99"]) / 1000,
        "failed": int(fields["BAD"]),
        "calls": requests,
    }
    if pid:
        out["cpu_us_per_call"] = cpu / max(requests, 1) * 1e6
        # below 100 %: the process waited (on its upstream, or for a core other work took)
        out["cpu_busy_pct"] = cpu / wall * 100
        # what one core would serve if the process had it to itself
        out["calls_per_core_s"] = 1e6 / max(out["cpu_us_per_call"], 1e-9)
        out["rss_mb"] = rss_bytes(pid) / 2**20
    return out


async def seed(nats_url: str, upstream: str, policies: bool) -> None:
    """Gateway ``bench``, an MCP registry on the mock, consumer ``mcpbench`` with KEY;
    with ``policies``, the consumer's calls also pass a request limit, a per-tool limit
    and a tool allow-list, each set high enough never to refuse one."""
    nc = await connect(nats_url, name="mcp-bench-seed")
    try:
        await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
        tenant = await new_tenant(nc, SECRET, slug=GATEWAY)
        await tenant.add_mcp_registry("bench-echo", upstream)
        await tenant.add_consumer(
            CONSUMER, ["bench-echo"], slug=CONSUMER, key=KEY, type="MCP", fail_mode="closed"
        )
        if policies:
            window = {"duration": "1m", "max": 100_000_000}
            await tenant.add_policy("calls", "rate_limiter", {"limit": 100_000_000, "window": "1m"})
            await tenant.add_policy(
                "echo-calls",
                "per_tool_rate_limiter",
                {"rules": [{"tool": "echo", "windows": [window]}]},
            )
            await tenant.add_policy("tools", "tool_allowlist", {"allow_tools": ["echo"]})
            await tenant.put_consumer(CONSUMER, policy_ids=[p.id for p in tenant.policies.values()])
        await nc.flush()
    finally:
        await nc.close()


def start_plane(
    nats_url: str, store: Path, cpus: str | None, redis_url: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    """``trustgate mcp`` on a free port, pinned to ``cpus``, until its port listens."""
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "SERVER_SECRET_KEY": SECRET,
        "SERVER_MCP_HOST": "127.0.0.1",
        "SERVER_MCP_PORT": str(port),
        "SERVER_MCP_METRICS_PORT": str(free_port()),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }
    env.pop("TRUSTGATE_SECRETS_KEY", None)  # the config is sealed with SECRET
    # without --redis: sessions and counters in the process, as a single replica keeps them
    env.pop("REDIS_URL", None)
    if redis_url:  # as deployed: session state and counters shared through Redis
        env["REDIS_URL"] = redis_url
    binary = shutil.which("trustgate", path=str(Path(sys.executable).parent)) or "trustgate"
    log = (store / "mcp.log").open("wb")
    proc = subprocess.Popen(
        pinned([binary, "mcp"], cpus), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_port("127.0.0.1", port, timeout=30, process=proc)
    except EmbeddedError as failure:
        proc.terminate()
        log_text = (store / "mcp.log").read_text()
        raise SystemExit(f"trustgate mcp did not start:\n{log_text}") from failure
    return proc, port


async def until_served(target: Target, within: float = 30.0) -> None:
    """Until the gateway serves the consumer (its replica has caught up with the config)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                client = RpcClient(http, target)
                await client.initialize()
                await client.echo_tool()
                return
            except (SystemExit, aiohttp.ClientError, StopIteration) as failure:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the gateway never served {target.url}: {failure}") from None
                await asyncio.sleep(0.2)


def checkout_commit() -> str | None:
    """The commit the measured plane comes from (uncommitted changes not shown)."""
    done = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or None


def cell(doc: dict[str, Any], key: str, fmt: str) -> str:
    return format(doc[key], fmt) if key in doc else "-"


def table(results: dict[str, Any]) -> str:
    rows = ["| measure | direct | gateway | added |", "|---|---|---|---|"]
    lat = results.get("latency", {})
    if lat:
        d, g = lat.get("direct", {}), lat.get("gateway", {})
        for key in ("p50_ms", "p99_ms"):
            if key in d and key in g:
                rows.append(
                    f"| c=1 {key[:3]} (ms) | {d[key]:.3f} | {g[key]:.3f} | {g[key] - d[key]:+.3f} |"
                )
            elif key in d:
                rows.append(f"| c=1 {key[:3]} (ms) | {d[key]:.3f} | - | - |")
    thr = results.get("throughput", {})
    if thr:
        d, g = thr.get("direct", {}), thr.get("gateway", {})
        rows.append(
            f"| c={results['connections']} calls/s | {cell(d, 'calls_per_s', '.0f')} "
            f"| {cell(g, 'calls_per_s', '.0f')} | |"
        )
        rows.append(
            f"| c={results['connections']} p50 (ms) | {cell(d, 'p50_ms', '.3f')} "
            f"| {cell(g, 'p50_ms', '.3f')} | |"
        )
        if "cpu_us_per_call" in g:
            rows.append(f"| gateway CPU µs/call | | {g['cpu_us_per_call']:.0f} | |")
            rows.append(f"| gateway CPU busy | | {g['cpu_busy_pct']:.0f} % | |")
            rows.append(f"| calls/s per core (1e6 / µs) | | {g['calls_per_core_s']:.0f} | |")
        failed = d.get("failed", 0) + g.get("failed", 0)
        rows.append(f"| failed answers | {d.get('failed', '-')} | {g.get('failed', '-')} | |")
        if failed:
            rows.append("\n**some answers were not a successful echo result**")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per target at c=1")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks at c=1")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds")
    parser.add_argument("--gateway-cpus", default="0", help="CPUs for trustgate mcp")
    parser.add_argument("--loadgen-cpus", default="1", help="CPUs for wrk, the mock, NATS")
    parser.add_argument("--direct-only", action="store_true", help="measure the mock alone")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--redis", default=None, help="REDIS_URL for the plane (as deployed)")
    parser.add_argument(
        "--policies", action="store_true", help="a rate limit, a per-tool limit, an allow-list"
    )
    args = parser.parse_args()
    # the seed's connection closing ("nats: disconnected") is not news in a report
    logging.getLogger("trustgate_core.bus").setLevel(logging.ERROR)

    store = Path(tempfile.mkdtemp(prefix="trustgate-mcp-bench-"))
    mock_port = free_port()
    mock = subprocess.Popen(
        pinned(
            [sys.executable, str(HERE / "mock_mcp_upstream.py"), "--port", str(mock_port)],
            args.loadgen_cpus,
        ),
        stdout=subprocess.DEVNULL,
    )
    nats_pid: int | None = None
    plane: subprocess.Popen[bytes] | None = None
    try:
        wait_port("127.0.0.1", mock_port, timeout=15)
        direct = Target("direct", f"http://127.0.0.1:{mock_port}/mcp", {})
        targets = [direct]
        if not args.direct_only:
            nats_pid, nats_url = start_nats(str(store), args.loadgen_cpus, attached=False)
            asyncio.run(seed(nats_url, direct.url, args.policies))
            plane, port = start_plane(nats_url, store, args.gateway_cpus, args.redis)
            gateway = Target("gateway", f"http://127.0.0.1:{port}/{CONSUMER}/mcp", GATEWAY_HEADERS)
            asyncio.run(until_served(gateway))
            targets.append(gateway)
        results: dict[str, Any] = {
            "commit": checkout_commit(),
            "connections": args.connections,
            "protocol": PROTOCOL,
            "redis": bool(args.redis),
            "policies": args.policies,
        }
        results["latency"] = asyncio.run(latency(targets, args.calls, args.blocks))
        if shutil.which("wrk"):
            results["throughput"] = {
                t.name: throughput(
                    t, args, store, plane.pid if plane and t.name == "gateway" else None
                )
                for t in targets
            }
        if "gateway" in results["latency"]:
            lat = results["latency"]
            results["added_p50_ms"] = lat["gateway"]["p50_ms"] - lat["direct"]["p50_ms"]
        sys.stdout.write(table(results) + "\n")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        if plane is not None:
            plane.terminate()
            plane.wait(15)
        mock.terminate()
        mock.wait(5)
        if nats_pid is not None:
            stop(nats_pid)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
