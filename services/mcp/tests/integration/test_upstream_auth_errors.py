"""A caller that brings nothing an upstream's auth can use (an API key for a server of
mode passthrough or exchange, or a token for another audience) is told to authenticate:
JSON-RPC -32003 naming the server and what it takes, not -32005 "unavailable". Under
``fail_mode: open`` such a server is left out of the lists, visibly: logged and counted
in ``trustgate_mcp_upstream_auth_required_total``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams
    from trustgate_testkit.proxy.tenant import Tenant

AUDIENCE = "https://weather.example"


async def _tenant(plane: LocalPlane, upstreams: Upstreams, fail_mode: str) -> Tenant:
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry(
        "weather", upstreams.weather, auth={"mode": "passthrough", "expected_audience": AUDIENCE}
    )
    await tenant.add_mcp_registry("docs", upstreams.docs)
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", fail_mode=fail_mode)
    return tenant


async def _rpc(
    http: httpx.AsyncClient, url: str, key: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    headers = {"X-AG-API-Key": key, "Accept": "application/json, text/event-stream"}
    r = await http.post(
        url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    assert r.status_code == 200, r.text
    headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
    headers["MCP-Protocol-Version"] = "2025-06-18"
    r = await http.post(
        url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _metric(plane: LocalPlane, http: httpx.AsyncClient) -> float:
    text = (await http.get(f"{plane.operations_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("trustgate_mcp_upstream_auth_required_total "):
            return float(line.split()[1])
    raise AssertionError("no trustgate_mcp_upstream_auth_required_total")


async def test_an_api_key_caller_of_a_passthrough_server_is_told_to_authenticate(
    plane: LocalPlane, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await _tenant(plane, upstreams, "open")
    url, key = plane.mcp_url(tenant), tenant.keys["agent"]
    caplog.set_level(logging.INFO, logger="trustgate_mcp")
    async with httpx.AsyncClient(timeout=10) as http:
        before = await _metric(plane, http)
        # open: the server is left out of the list, not silently
        listed = await _rpc(http, url, key, "tools/list", {})
        names = {t["name"] for t in listed["result"]["tools"]}
        assert "echo" in names and "forecast" not in names
        assert "caller must authenticate" in caplog.text and "weather" in caplog.text
        assert await _metric(plane, http) > before
        # a call to it names the server and what it takes
        answer = await _rpc(http, url, key, "tools/call", {"name": "forecast", "arguments": {}})
    error = answer["error"]
    assert error["code"] == -32003
    assert error["data"] == {"error": "authentication_required", "server": "weather"}
    assert AUDIENCE in error["message"] and "API key" in error["message"]


async def test_under_fail_mode_closed_the_list_asks_to_authenticate_too(
    plane: LocalPlane, upstreams: Upstreams
) -> None:
    tenant = await _tenant(plane, upstreams, "closed")
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await _rpc(http, plane.mcp_url(tenant), tenant.keys["agent"], "tools/list", {})
    assert answer["error"]["code"] == -32003, answer
    assert answer["error"]["data"]["server"] == "weather"
