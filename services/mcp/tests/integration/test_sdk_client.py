"""The official ``mcp`` SDK client through the plane, against two real SDK upstreams
that share the tool name ``search``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane

Connect = Callable[..., Client]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_lists_calls_reads_and_gets_prompts_through_the_plane(
    plane: LocalPlane, tenant: Tenant, connect: Connect, mode: str
) -> None:
    async with connect(plane.mcp_url(tenant), tenant.keys["agent"], mode=mode) as client:
        assert client.server_info is not None
        assert client.server_info.name == "trustgate"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"forecast", "slow", "echo", "fail", "weather_search", "docs_search"} <= names
        assert "search" not in names

        weather = await client.call_tool("weather_search", {"query": "rain"})
        docs = await client.call_tool("docs_search", {"query": "rain"})
        assert weather.content[0].text == "weather results for rain"  # type: ignore[union-attr]
        assert docs.content[0].text == "docs results for rain"  # type: ignore[union-attr]
        failed = await client.call_tool("fail", {})
        assert failed.is_error is True

        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"weather://stations", "docs://readme"} <= uris
        readme = await client.read_resource("docs://readme")
        assert readme.contents[0].text == "# Docs readme"  # type: ignore[union-attr]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["weather://city/{name}"]
        city = await client.read_resource("weather://city/paris")
        assert city.contents[0].text == "station of paris"  # type: ignore[union-attr]

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"weather_report", "summarize"} <= prompts
        prompt = await client.get_prompt("weather_report", {"city": "Rome"})
        assert "Rome" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_unknown_names_are_json_rpc_errors_the_client_can_tell_apart(
    plane: LocalPlane, tenant: Tenant, connect: Connect
) -> None:
    async with connect(plane.mcp_url(tenant), tenant.keys["agent"], mode="legacy") as client:
        with pytest.raises(MCPError) as tool:
            await client.call_tool("nowhere", {})
        assert tool.value.error.code == -32602
        with pytest.raises(MCPError) as resource:
            await client.read_resource("docs://missing")
        assert resource.value.error.code == -32002
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt("nowhere", {})
        assert prompt.value.error.code == -32602
