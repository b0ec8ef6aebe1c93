"""The CPU one ``tools/call`` costs this process: `Upstreams.request` against the SDK's own
``mcp.Client.call_tool``, on the same upstream (an SDK server in a process of its own, so
only the client's CPU is counted).

``UPSTREAM_COST_CALLS`` sets the number of sequential calls (default 300, quick; the report
used 2,000).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import pytest
from mcp import Client

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port, port_open
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller

CALLS = int(os.environ.get("UPSTREAM_COST_CALLS", "300"))
NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CALLER = Caller(
    gateway=GATEWAY,
    consumer=Consumer(
        id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
    ),
)
ARGS = {"name": "echo", "arguments": {"text": "hello"}}
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def docs() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustgate_testkit.mcp.servers", "docs", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "upstream did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


async def cpu_per_call(call: Callable[[], Awaitable[object]]) -> float:
    """Seconds of this process's CPU per call, after a warm-up."""
    for _ in range(20):
        await call()
    start = time.process_time()
    for _ in range(CALLS):
        await call()
    return (time.process_time() - start) / CALLS


async def test_a_call_costs_less_cpu_than_the_sdk_client(docs: str) -> None:
    registry = Registry(
        id=uuid4(),
        gateway_id=GATEWAY.id,
        created_at=NOW,
        updated_at=NOW,
        name="docs",
        type="MCP",
        mcp_target={"url": docs},
    )
    async with aiohttp.ClientSession() as http:
        upstreams = Upstreams(http, SecretBox("cost"), list_ttl=60.0, timeout=5.0)
        session = await upstreams.open(registry, CALLER)

        async def ours() -> object:
            return await upstreams.request(registry, session, CALLER, "tools/call", ARGS)

        assert (await ours())["content"][0]["text"] == "hello"  # type: ignore[index]
        thin = await cpu_per_call(ours)
        await upstreams.close(registry, session, CALLER)
        await upstreams.aclose()

    async with Client(docs, mode="legacy") as client:

        async def sdk() -> object:
            return await client.call_tool("echo", {"text": "hello"})

        full = await cpu_per_call(sdk)

    log.warning(
        "CPU per tools/call over %d calls: Upstreams.request %.0f µs, mcp.Client %.0f µs (x%.1f)",
        CALLS,
        thin * 1e6,
        full * 1e6,
        full / thin,
    )
    assert thin < full / 2
