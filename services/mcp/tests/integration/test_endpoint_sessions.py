"""Sessions valid on any replica: the sealed id opened by another runtime of the same
deployment (not by another deployment's); upstream sessions that expired or were never
opened are opened again and shared; ``fail_mode`` at ``initialize``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import Infra, wait_for
from trustgate_testkit.mcp.clients import Alternating
from trustgate_testkit.mcp.clients import agent as client
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams

MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]


async def shared_tenant(planes: list[LocalPlane], upstreams: Any, **consumer: Any) -> Tenant:
    """One configuration applied to every plane (replicas of one deployment)."""

    def apply(event: Any) -> None:
        for plane in planes:
            plane.runtime.apply(event)

    tenant = await new_tenant(None, local=apply)
    await tenant.add_mcp_registry("weather", upstreams.weather)
    await tenant.add_mcp_registry("docs", upstreams.docs)
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", **consumer)
    return tenant


def port_of(plane: LocalPlane) -> int:
    return int(plane.url.rsplit(":", 1)[1])


async def test_a_session_opened_on_one_replica_serves_calls_on_another(
    make_plane: MakePlane, upstreams: Upstreams
) -> None:
    async with make_plane() as first, make_plane() as second:
        tenant = await shared_tenant([first, second], upstreams)
        balancer = Alternating([port_of(first), port_of(second)])
        async with client(first.mcp_url(tenant), tenant.keys["agent"], balancer) as agent:
            for i in range(4):
                result = await agent.call_tool("echo", {"text": f"hi {i}"})
                assert result.content[0].text == f"hi {i}"  # type: ignore[union-attr]
            assert {port_of(first), port_of(second)} <= set(balancer.sent)
        # neither replica had to open an upstream session again: they were in the id
        for plane in (first, second):
            assert plane.runtime.app.endpoint.dispatcher.upstream_reopened == 0


async def test_another_deployments_replica_refuses_the_session_and_a_rotated_key_keeps_it(
    make_plane: MakePlane, upstreams: Upstreams
) -> None:
    async with (
        make_plane(secret="deployment-one-secret-key-0123456789") as first,
        make_plane(secret="deployment-two-secret-key-0123456789") as foreign,
        make_plane(
            secret="deployment-one-rotated-key-0123456789",
            MCP_SESSION_PREVIOUS_KEYS="deployment-one-secret-key-0123456789",
        ) as rotated,
    ):
        tenant = await shared_tenant([first, foreign, rotated], upstreams)
        for other, accepted in ((foreign, False), (rotated, True)):
            balancer = Alternating([port_of(first), port_of(other)])
            async with client(first.mcp_url(tenant), tenant.keys["agent"], balancer) as agent:
                if accepted:
                    assert (await agent.call_tool("echo", {"text": "x"})).is_error is False
                else:
                    with pytest.raises(MCPError):
                        await agent.call_tool("echo", {"text": "x"})
            assert port_of(other) in balancer.sent


async def test_an_upstream_restarted_mid_session_is_reinitialized_and_the_call_succeeds(
    make_plane: MakePlane, infra: Infra
) -> None:
    """The replacement is shared through Redis, as the replicas' counters are."""
    port = free_port()
    redis = {"REDIS_URL": infra.redis_url}
    async with make_plane(**redis) as first, make_plane(**redis) as second:
        planes = [first, second]

        def apply(event: Any) -> None:
            for p in planes:
                p.runtime.apply(event)

        tenant = await new_tenant(None, local=apply)
        await tenant.add_mcp_registry("docs", f"http://127.0.0.1:{port}/mcp")
        await tenant.add_consumer("agent", ["docs"], type="MCP")
        balancer = Alternating([port_of(first)])
        async with AsyncExitStack() as stack:
            before_restart = UpstreamThread("docs", port)
            stack.callback(before_restart.__exit__)
            before_restart.__enter__()
            agent = await stack.enter_async_context(
                client(first.mcp_url(tenant), tenant.keys["agent"], balancer)
            )
            assert (await agent.call_tool("echo", {"text": "before"})).is_error is False
            before_restart.__exit__()
            with UpstreamThread("docs", port):  # it knows none of the earlier sessions
                after = await agent.call_tool("echo", {"text": "after"})
                assert after.content[0].text == "after"  # type: ignore[union-attr]
                assert first.runtime.app.endpoint.dispatcher.upstream_reopened == 1
                # the other replica uses the replacement instead of opening one more
                balancer.ports[0] = port_of(second)
                again = await agent.call_tool("echo", {"text": "elsewhere"})
                assert again.content[0].text == "elsewhere"  # type: ignore[union-attr]
                assert second.runtime.app.endpoint.dispatcher.upstream_reopened == 0


async def test_a_server_down_at_initialize_is_opened_on_first_use_when_fail_mode_is_open(
    plane: LocalPlane, upstreams: Upstreams
) -> None:
    port = free_port()
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("weather", upstreams.weather)
    await tenant.add_mcp_registry("docs", f"http://127.0.0.1:{port}/mcp")
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", fail_mode="open")
    async with client(plane.mcp_url(tenant), tenant.keys["agent"]) as agent:
        names = {tool.name for tool in (await agent.list_tools()).tools}
        assert "forecast" in names and "echo" not in names
        with pytest.raises(MCPError) as missing:
            await agent.call_tool("echo", {"text": "x"})
        assert missing.value.error.code == -32602
        with UpstreamThread("docs", port):
            await _until_listed(agent, "echo")
            result = await agent.call_tool("echo", {"text": "late"})
            assert result.content[0].text == "late"  # type: ignore[union-attr]


async def _until_listed(agent: Client, name: str) -> None:
    async def listed() -> bool:
        return name in {tool.name for tool in (await agent.list_tools()).tools}

    await wait_for(listed, timeout=10)


async def test_initialize_fails_without_naming_a_secret_when_a_server_is_down_and_closed(
    plane: LocalPlane, upstreams: Upstreams
) -> None:
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("weather", upstreams.weather)
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    await tenant.add_mcp_registry("docs", dead, headers={"Authorization": "Bearer s3cret"})
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", fail_mode="closed")
    errors: list[MCPError] = []
    try:
        async with client(plane.mcp_url(tenant), tenant.keys["agent"]):
            pass
    except* MCPError as group:
        errors.extend(leaves(group))
    (failed,) = errors
    assert failed.error.code == -32005
    assert "docs" in failed.error.message
    assert "s3cret" not in str(failed.error) and dead not in str(failed.error)


def leaves(group: BaseExceptionGroup[MCPError]) -> list[MCPError]:
    found: list[MCPError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(leaves(exc))
        else:
            found.append(exc)
    return found


async def test_a_session_ended_on_one_replica_is_refused_by_the_other_through_redis(
    make_plane: MakePlane, upstreams: Upstreams, infra: Infra
) -> None:
    redis = {"REDIS_URL": infra.redis_url}
    async with make_plane(**redis) as first, make_plane(**redis) as second:
        tenant = await shared_tenant([first, second], upstreams)
        headers = {
            "X-AG-API-Key": tenant.keys["agent"],
            "Accept": "application/json, text/event-stream",
        }
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        async with httpx.AsyncClient(timeout=20) as http:
            opened = await http.post(first.mcp_url(tenant), json=init, headers=headers)
            session = {**headers, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
            assert (await http.post(second.mcp_url(tenant), json=ping, headers=session)).is_success
            ended = await http.delete(first.mcp_url(tenant), headers=session)
            assert ended.status_code == 200
            refused = await http.post(second.mcp_url(tenant), json=ping, headers=session)
            assert refused.status_code == 404
