"""The MCP plane behind a load balancer with no affinity: two ``trustgate mcp`` processes
sharing one NATS and one Redis, driven by the official ``mcp`` SDK client whose requests
alternate between them, in front of two real ``mcp``-SDK upstream servers that share a
tool name.

- a session opened on one replica serves calls on both, and survives a replica's restart;
- a tampered session id is refused (404: the client re-initializes);
- a per-tool limit is exact across the two replicas (-32004 past it);
- a tool the allowlist forbids is absent from the list and refused when called (-32001);
- an upstream that dies: ``fail_mode`` open keeps serving (the dead server's last lists
  too, its calls -32005), closed fails;
- every ``tools/call`` is one ``kind: mcp`` request event on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.embedded import free_port
from trustgate_core.events import CONFIG_STREAM
from trustgate_testkit.fixtures import Infra, NatsServer, wait_for
from trustgate_testkit.mcp.clients import Alternating, agent
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.processes import PlaneProcess, plane_process
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

pytestmark = pytest.mark.slow

LIMIT = 6


def replica(env: dict[str, str], log: Path) -> contextlib.AbstractAsyncContextManager[PlaneProcess]:
    return plane_process("mcp", env, log)


async def serves(url: str, key: str) -> bool:
    """The replica knows the consumer: an initialize is answered."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    headers = {"X-AG-API-Key": key, "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(url, json=body, headers=headers)
    return response.status_code == 200 and "result" in response.text


@contextlib.contextmanager
def upstream_process(kind: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real SDK upstream in a process of its own (so a test can kill it)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustgate_testkit.mcp.servers", kind, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def two_upstreams() -> AsyncIterator[tuple[str, str]]:
    with (
        UpstreamThread("weather", free_port()) as weather,
        UpstreamThread("docs", free_port()) as docs,
    ):
        yield weather, docs


async def tenant_with(nc: NATS, weather: str, docs: str, **consumer: Any) -> Tenant:
    tenant = await new_tenant(nc)
    await tenant.add_mcp_registry("weather", weather)
    await tenant.add_mcp_registry("docs", docs)
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", **consumer)
    return tenant


def mcp_url(plane: PlaneProcess | str, tenant: Tenant) -> str:
    base = plane if isinstance(plane, str) else plane.url
    return f"{base}/{tenant.consumers['agent'].slug}/mcp"


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[NATS]:
    nc = await connect(nats_server.url, name="mcp-replicas")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
    yield nc
    await nc.close()


async def test_a_session_serves_calls_on_both_replicas_and_survives_a_restart(
    infra: Infra, nats_server: NatsServer, bus: NATS, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_server.url, "REDIS_URL": infra.redis_url}
    async with (
        two_upstreams() as (weather, docs),
        replica(env, tmp_path / "a.log") as first,
        replica(env, tmp_path / "b.log") as second,
    ):
        tenant = await tenant_with(bus, weather, docs)
        key = tenant.keys["agent"]
        for plane in (first, second):
            await wait_for(lambda p=plane: serves(mcp_url(p, tenant), key), timeout=15)

        balancer = Alternating([first.port, second.port])
        async with agent(mcp_url(first, tenant), key, balancer) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            # both servers' tools; the shared name ``search`` kept apart, once per server
            assert {"forecast", "echo", "weather_search", "docs_search"} <= names
            assert "search" not in names
            for i in range(6):
                result = await client.call_tool("echo", {"text": f"hi {i}"})
                assert result.content[0].text == f"hi {i}"  # type: ignore[union-attr]
            assert {first.port, second.port} <= set(balancer.sent)

            forecast = await client.call_tool("forecast", {"city": "Oslo"})
            assert forecast.content[0].text == "sunny in Oslo"  # type: ignore[union-attr]
            readme = await client.read_resource("docs://readme")
            assert readme.contents[0].text == "# Docs readme"  # type: ignore[union-attr]
            prompt = await client.get_prompt("weather_report", {"city": "Rome"})
            assert "Rome" in prompt.messages[0].content.text  # type: ignore[union-attr]

            # the second replica restarts mid-session: the session goes on
            async with replica(env, tmp_path / "b2.log") as restarted:
                await wait_for(lambda: serves(mcp_url(restarted, tenant), key), timeout=15)
                balancer.ports[1] = restarted.port
                await second_stops(second)
                for i in range(4):
                    result = await client.call_tool("echo", {"text": f"again {i}"})
                    assert result.content[0].text == f"again {i}"  # type: ignore[union-attr]
                assert restarted.port in balancer.sent


async def second_stops(plane: PlaneProcess) -> None:
    plane.proc.terminate()
    await asyncio.to_thread(plane.proc.wait, 15)


async def test_a_tampered_session_id_is_refused_so_the_client_initializes_again(
    nats_server: NatsServer, bus: NATS, tmp_path: Path
) -> None:
    async with (
        two_upstreams() as (weather, docs),
        replica({"NATS_URL": nats_server.url}, tmp_path / "a.log") as plane,
    ):
        tenant = await tenant_with(bus, weather, docs)
        key = tenant.keys["agent"]
        url = mcp_url(plane, tenant)
        await wait_for(lambda: serves(url, key), timeout=15)
        headers = {"X-AG-API-Key": key, "Accept": "application/json, text/event-stream"}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        async with httpx.AsyncClient(timeout=10) as http:
            opened = await http.post(url, json=init, headers=headers)
            session = opened.headers["mcp-session-id"]
            ok = await http.post(url, json=listing, headers={**headers, "Mcp-Session-Id": session})
            assert ok.status_code == 200
            flipped = session[:-3] + ("A" if session[-3] != "A" else "B") + session[-2:]
            refused = await http.post(
                url, json=listing, headers={**headers, "Mcp-Session-Id": flipped}
            )
            assert refused.status_code == 404
            assert "error" in refused.json()


async def test_a_per_tool_limit_is_exact_across_replicas_and_a_forbidden_tool_is_hidden(
    infra: Infra, nats_server: NatsServer, bus: NATS, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_server.url, "REDIS_URL": infra.redis_url}
    async with (
        two_upstreams() as (weather, docs),
        replica(env, tmp_path / "a.log") as first,
        replica(env, tmp_path / "b.log") as second,
    ):
        tenant = await tenant_with(bus, weather, docs)
        key = tenant.keys["agent"]
        rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": LIMIT}]}
        await tenant.add_policy("per-tool", "per_tool_rate_limiter", {"rules": [rule]})
        await tenant.add_policy("no-fail", "tool_allowlist", {"deny_tools": ["fail"]})
        policy_ids = [tenant.policies["per-tool"].id, tenant.policies["no-fail"].id]
        await tenant.put_consumer("agent", policy_ids=policy_ids)

        async def hidden(plane: PlaneProcess) -> bool:
            if not await serves(mcp_url(plane, tenant), key):
                return False
            async with agent(mcp_url(plane, tenant), key) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
            return "fail" not in names and "echo" in names

        for plane in (first, second):
            await wait_for(lambda p=plane: hidden(p), timeout=15)

        async with (
            agent(mcp_url(first, tenant), key) as a,
            agent(mcp_url(second, tenant), key) as b,
        ):
            with pytest.raises(MCPError) as forbidden:
                await a.call_tool("fail", {})
            assert forbidden.value.error.code == -32001

            async def call(client: Client) -> int:
                try:
                    await client.call_tool("forecast", {"city": "Oslo"})
                except MCPError as error:
                    return error.error.code
                return 0

            codes = await asyncio.gather(*(call((a, b)[i % 2]) for i in range(3 * LIMIT)))
            assert codes.count(0) == LIMIT
            assert codes.count(-32004) == 2 * LIMIT
            # another tool is not limited by it
            assert (await b.call_tool("echo", {"text": "free"})).is_error is False


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_an_upstream_that_dies_is_skipped_when_open_and_fails_the_call_when_closed(
    fail_mode: str, nats_server: NatsServer, bus: NATS, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_server.url, "MCP_LIST_TTL": "0"}
    with (
        UpstreamThread("weather", free_port()) as weather,
        upstream_process("docs") as (docs, docs_process),
    ):
        async with replica(env, tmp_path / "a.log") as plane:
            tenant = await tenant_with(bus, weather, docs, fail_mode=fail_mode)
            key = tenant.keys["agent"]
            url = mcp_url(plane, tenant)
            await wait_for(lambda: serves(url, key), timeout=15)
            async with agent(url, key) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert {"forecast", "echo"} <= names
                docs_process.kill()
                await asyncio.to_thread(docs_process.wait)
                if fail_mode == "open":
                    # its last lists stay (names unchanged); a call to it answers -32005
                    left = {tool.name for tool in (await client.list_tools()).tools}
                    assert left == names
                    with pytest.raises(MCPError) as down:
                        await client.call_tool("echo", {"text": "x"})
                    assert down.value.error.code == -32005
                    assert "'docs'" in down.value.error.message
                    result = await client.call_tool("forecast", {"city": "Oslo"})
                    assert result.is_error is False
                else:
                    with pytest.raises(MCPError) as failed:
                        await client.list_tools()
                    assert failed.value.error.code == -32005


async def test_every_tool_call_is_one_mcp_request_event_on_the_bus(
    nats_server: NatsServer, bus: NATS, tmp_path: Path
) -> None:
    async with (
        two_upstreams() as (weather, docs),
        replica({"NATS_URL": nats_server.url}, tmp_path / "a.log") as plane,
    ):
        tenant = await tenant_with(bus, weather, docs)
        key = tenant.keys["agent"]
        url = mcp_url(plane, tenant)
        events: list[dict[str, Any]] = []

        async def collect(msg: Msg) -> None:
            events.append(orjson.loads(msg.data))

        subscription = await bus.subscribe(f"trustgate.requests.{tenant.gateway.id}", cb=collect)
        await wait_for(lambda: serves(url, key), timeout=15)
        async with agent(url, key) as client:
            await client.call_tool("weather_search", {"query": "rain"})

        def recorded() -> bool:
            return any(e.get("kind") == "mcp" for e in events)

        await wait_for(recorded, timeout=10)
        await subscription.unsubscribe()
        (event,) = [e for e in events if e.get("kind") == "mcp"]
        assert event["consumer_id"] == str(tenant.consumers["agent"].id)
        assert event["registry_id"] == str(tenant.registries["weather"].id)
        assert event["mcp"]["method"] == "tools/call"
        assert event["mcp"]["tool"] == "weather_search"
        assert event["mcp"]["upstream_tool"] == "search"
        assert event["mcp"]["server"] == "weather"
        assert event["mcp"]["is_error"] is False
        assert event["status"] == 200
        assert key not in orjson.dumps(event).decode()
