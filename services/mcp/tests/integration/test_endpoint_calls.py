"""Calls as the operator sees them: one request event per ``tools/call``,
``resources/read`` and ``prompts/get``; policies around calls (a per-tool limit answered
-32004 with ``retry_after``, a denied tool hidden and refused -32001); metrics."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from nats.aio.msg import Msg

from trustgate_core.bus import connect as connect_nats
from trustgate_core.bus import ensure_streams
from trustgate_core.events import CONFIG_STREAM, decode_request_event
from trustgate_mcp.domain.call import event_payload
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams

Connect = Callable[..., Client]
MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]


async def test_each_call_is_one_mcp_request_event_and_lists_are_none(
    plane: LocalPlane, tenant: Tenant, connect: Connect
) -> None:
    key = tenant.keys["agent"]
    async with connect(plane.mcp_url(tenant), key, mode="legacy") as client:
        await client.list_tools()
        await client.call_tool("weather_search", {"query": "rain"})
        await client.call_tool("fail", {})
        await client.read_resource("docs://readme")
        await client.get_prompt("summarize", {"text": "t"})
        with pytest.raises(MCPError):
            await client.call_tool("nowhere", {})
    events = [decode_request_event(orjson.dumps(event_payload(c))) for c in plane.sink.calls]
    assert [e.mcp.method for e in events if e.mcp] == [
        "tools/call",
        "tools/call",
        "resources/read",
        "prompts/get",
        "tools/call",
    ]
    search, fail, readme, prompt, unknown = events
    weather, docs = tenant.registries["weather"], tenant.registries["docs"]
    assert search.kind == "mcp" and search.method == "POST" and search.path == "/mcp"
    assert search.provider == "mcp" and search.status == 200 and search.error_kind is None
    assert search.gateway_id == tenant.gateway.id
    assert search.consumer_id == tenant.consumers["agent"].id
    assert search.auth_id == tenant.auths["agent"].id
    assert search.registry_id == weather.id
    assert search.mcp is not None
    assert (search.mcp.tool, search.mcp.upstream_tool, search.mcp.server) == (
        "weather_search",
        "search",
        "weather",
    )
    assert search.mcp.is_error is False and search.mcp.rpc_error_code is None
    assert search.timings.upstream_ms is not None
    assert search.timings.total_ms >= search.timings.upstream_ms
    assert search.sizes.request_bytes > 0 and search.sizes.response_bytes > 0
    assert fail.mcp is not None and fail.mcp.is_error is True and fail.registry_id == docs.id
    assert readme.mcp is not None and readme.mcp.tool == "docs://readme"
    assert prompt.mcp is not None and prompt.mcp.upstream_tool == "summarize"
    assert unknown.mcp is not None and unknown.mcp.rpc_error_code == -32602
    assert unknown.error_kind == "not_found" and unknown.registry_id is None
    for event in events:
        assert key not in event.model_dump_json()


async def test_a_per_tool_limit_answers_32004_with_retry_after_and_a_denied_tool_is_hidden(
    plane: LocalPlane, tenant: Tenant, connect: Connect
) -> None:
    rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": 2}]}
    await tenant.add_policy("per-tool", "per_tool_rate_limiter", {"rules": [rule]})
    await tenant.add_policy("no-fail", "tool_allowlist", {"deny_tools": ["fail"]})
    ids = [tenant.policies["per-tool"].id, tenant.policies["no-fail"].id]
    await tenant.put_consumer("agent", policy_ids=ids)
    async with connect(plane.mcp_url(tenant), tenant.keys["agent"], mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "fail" not in names and "echo" in names
        with pytest.raises(MCPError) as denied:
            await client.call_tool("fail", {})
        assert denied.value.error.code == -32001
        for _ in range(2):
            assert (await client.call_tool("forecast", {"city": "Oslo"})).is_error is False
        with pytest.raises(MCPError) as limited:
            await client.call_tool("forecast", {"city": "Oslo"})
        assert limited.value.error.code == -32004
        assert isinstance(limited.value.error.data, dict)
        assert limited.value.error.data["retry_after"] >= 1
        assert (await client.call_tool("echo", {"text": "free"})).is_error is False
    refused = [c for c in plane.sink.calls if c.rpc_error_code == -32004]
    assert len(refused) == 1
    assert refused[0].status == 429 and refused[0].error_kind == "rate_limited"
    event = decode_request_event(orjson.dumps(event_payload(refused[0])))
    assert {d.plugin for d in event.policy_chain} >= {"per_tool_rate_limiter"}

    # the operations port counts the policies' refusals apart from other errors
    async with httpx.AsyncClient() as http:
        text = (await http.get(plane.operations_url + "/metrics")).text
    gw = tenant.gateway.id
    for outcome in ("limited", "blocked"):
        line = f'trustgate_mcp_requests_total{{gateway_id="{gw}",method="tools/call",outcome="{outcome}"}} 1.0'
        assert line in text


async def test_the_operations_port_counts_requests_by_method_and_outcome(
    plane: LocalPlane, tenant: Tenant, connect: Connect
) -> None:
    async with connect(plane.mcp_url(tenant), tenant.keys["agent"], mode="legacy") as client:
        await client.call_tool("echo", {"text": "x"})
    async with httpx.AsyncClient() as http:
        text = (await http.get(plane.operations_url + "/metrics")).text
    gw = tenant.gateway.id
    assert (
        f'trustgate_mcp_requests_total{{gateway_id="{gw}",method="tools/call",outcome="ok"}} 1.0'
        in text
    )
    assert "trustgate_mcp_request_duration_seconds_bucket" in text
    assert "trustgate_mcp_upstream_duration_seconds_bucket" in text
    assert "trustgate_mcp_sessions_initialized_total 1.0" in text


async def test_request_events_are_published_on_the_gateways_subject(
    nats_server: NatsServer, make_plane: MakePlane, upstreams: Upstreams, connect: Connect
) -> None:
    nc = await connect_nats(nats_server.url, name="mcp-events")
    try:
        await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
        async with make_plane(bus=True, NATS_URL=nats_server.url) as plane:
            tenant = await new_tenant(nc)
            await tenant.add_mcp_registry("weather", upstreams.weather)
            await tenant.add_consumer("agent", ["weather"], type="MCP")
            key = tenant.keys["agent"]
            received: list[bytes] = []

            async def collect(msg: Msg) -> None:
                received.append(msg.data)

            subscription = await nc.subscribe(f"trustgate.requests.{tenant.gateway.id}", cb=collect)
            await wait_for(
                lambda: tenant.consumers["agent"].id in plane.runtime.state.consumers, timeout=10
            )
            async with connect(plane.mcp_url(tenant), key, mode="legacy") as client:
                await client.call_tool("forecast", {"city": "Oslo"})
            await wait_for(lambda: received, timeout=10)
            await subscription.unsubscribe()
    finally:
        await nc.close()
    (event,) = [decode_request_event(data) for data in received]
    assert event.kind == "mcp" and event.status == 200
    assert event.registry_id == tenant.registries["weather"].id
    assert event.mcp is not None and event.mcp.tool == "forecast"
    assert key.encode() not in received[0]
