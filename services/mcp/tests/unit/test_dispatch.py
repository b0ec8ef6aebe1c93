"""The dispatcher with a scripted upstream: upstream sessions that expire are opened
again once (concurrent calls share the opening) and the replacement is what the other
replicas use; a session ended by DELETE is refused everywhere; ``fail_mode: closed``
fails ``initialize`` and closes what it had opened."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from trustgate_core.models import Registry
from trustgate_core.policy import Chain, PolicyDeps, PolicyEngine
from trustgate_core.policy.runners import MCP_RUNNERS
from trustgate_mcp.domain.rpc import UNAVAILABLE, RpcError
from trustgate_mcp.domain.sessions import SessionSealer
from trustgate_mcp.services.catalog import CatalogService
from trustgate_mcp.services.dispatch import Context, Dispatcher, SessionNotFound
from trustgate_mcp.services.plans import McpPlan
from trustgate_mcp.services.ports import (
    Caller,
    ListKind,
    RpcFailure,
    SessionExpired,
    UpstreamSession,
    UpstreamUnavailable,
)
from trustgate_mcp.services.session_store import LocalSessionStore
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

ECHO = {"name": "echo", "inputSchema": {"type": "object"}}


class ScriptedUpstream:
    """Every server lists ``echo``; a session id in ``forgotten`` is unknown upstream;
    a registry name in ``down`` cannot be reached."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed: list[str | None] = []
        self.forgotten: set[str | None] = set()
        self.down: set[str] = set()
        self.seen: list[str | None] = []

    async def open(self, registry: Registry, caller: Caller) -> UpstreamSession:
        if registry.name in self.down:
            raise UpstreamUnavailable("refused")
        self.opened += 1
        await asyncio.sleep(0.01)  # concurrent calls overlap here
        return UpstreamSession(registry.id, f"{registry.name}-{self.opened}", "2025-06-18")

    async def request(
        self,
        registry: Registry,
        session: UpstreamSession | None,
        caller: Caller,
        method: str,
        params: dict[str, Any] | None,
    ) -> dict[str, Any]:
        sid = session.session_id if session else None
        self.seen.append(sid)
        if sid in self.forgotten:
            raise SessionExpired("404")
        if params and params.get("arguments", {}).get("text") == "refuse":
            raise RpcFailure(-32099, "the server refused", {"why": "asked to"})
        return {"content": [{"type": "text", "text": f"{sid}"}]}

    async def listing(
        self, registry: Registry, caller: Caller, kind: ListKind
    ) -> list[dict[str, Any]]:
        return [ECHO] if kind == "tools" else []

    async def close(self, registry: Registry, session: UpstreamSession, caller: Caller) -> None:
        self.closed.append(session.session_id)


class World:
    def __init__(self, tenant: Tenant, upstream: ScriptedUpstream, fail_mode: str) -> None:
        self.upstream = upstream
        self.store = LocalSessionStore()
        engine = PolicyEngine(MCP_RUNNERS, PolicyDeps(), plane="MCP")
        consumer = tenant.consumers["agent"].model_copy(update={"fail_mode": fail_mode})
        self.plan = McpPlan(consumer, (tenant.registries["docs"],), Chain(engine, ()), ())
        self.caller = Caller(tenant.gateway, consumer, auth_id=tenant.auths["agent"].id)

    def dispatcher(self) -> Dispatcher:
        """A replica: its own dispatcher, the shared store and sealing key."""
        return Dispatcher(
            self.upstream,
            CatalogService(self.upstream),
            self.store,
            SessionSealer("the-secret"),
            session_ttl=3600,
            server_version="1.0",
        )

    async def opened_session(self, dispatcher: Dispatcher) -> str:
        _, session_id = await dispatcher.initialize(Context(self.caller, self.plan), {})
        return session_id

    async def call(self, dispatcher: Dispatcher, session_id: str) -> Any:
        ctx = Context(self.caller, self.plan)
        ctx.session = await dispatcher.session(session_id, self.caller)
        return await dispatcher.handle(ctx, "tools/call", {"name": "echo", "arguments": {}})


async def world(fail_mode: str = "open") -> World:
    tenant = await new_tenant(None, local=lambda _event: None)
    await tenant.add_mcp_registry("docs", "http://127.0.0.1:9/mcp")
    await tenant.add_consumer("agent", ["docs"], type="MCP")
    return World(tenant, ScriptedUpstream(), fail_mode)


async def test_an_expired_upstream_session_is_opened_again_once_for_concurrent_calls() -> None:
    w = await world()
    first = w.dispatcher()
    session_id = await w.opened_session(first)
    w.upstream.forgotten.add("docs-1")
    results = await asyncio.gather(*(w.call(first, session_id) for _ in range(5)))
    assert {r["content"][0]["text"] for r in results} == {"docs-2"}
    assert w.upstream.opened == 2  # initialize, then one replacement
    assert first.upstream_reopened == 1


async def test_another_replica_uses_the_replacement_instead_of_opening_again() -> None:
    w = await world()
    first, second = w.dispatcher(), w.dispatcher()
    session_id = await w.opened_session(first)
    w.upstream.forgotten.add("docs-1")
    await w.call(first, session_id)
    result = await w.call(second, session_id)
    assert result["content"][0]["text"] == "docs-2"
    assert second.upstream_reopened == 0 and w.upstream.opened == 2


async def test_an_upstream_that_forgets_the_new_session_too_fails_the_call_once() -> None:
    w = await world()
    dispatcher = w.dispatcher()
    session_id = await w.opened_session(dispatcher)
    w.upstream.forgotten.update({"docs-1", "docs-2"})
    with pytest.raises(RpcError) as failed:
        await w.call(dispatcher, session_id)
    assert failed.value.code == UNAVAILABLE
    assert w.upstream.seen == ["docs-1", "docs-2"]


async def test_a_server_down_at_initialize_is_opened_on_first_use_under_fail_open() -> None:
    w = await world("open")
    w.upstream.down.add("docs")
    dispatcher = w.dispatcher()
    session_id = await w.opened_session(dispatcher)
    w.upstream.down.clear()
    result = await w.call(dispatcher, session_id)
    assert result["content"][0]["text"] == "docs-1"


async def test_fail_closed_initialize_fails_while_a_server_is_down() -> None:
    w = await world("closed")
    w.upstream.down.add("docs")
    with pytest.raises(RpcError) as failed:
        await w.opened_session(w.dispatcher())
    assert failed.value.code == UNAVAILABLE
    assert "docs" in failed.value.message


async def test_a_session_ended_on_one_replica_is_refused_on_the_others() -> None:
    w = await world()
    first, second = w.dispatcher(), w.dispatcher()
    session_id = await w.opened_session(first)
    ctx = Context(w.caller, w.plan)
    ctx.session = await first.session(session_id, w.caller)
    await first.end(ctx)
    assert w.upstream.closed == ["docs-1"]
    with pytest.raises(SessionNotFound):
        await second.session(session_id, w.caller)


async def test_an_upstream_json_rpc_error_is_relayed_with_its_code_and_data() -> None:
    w = await world()
    dispatcher = w.dispatcher()
    session_id = await w.opened_session(dispatcher)
    ctx = Context(w.caller, w.plan)
    ctx.session = await dispatcher.session(session_id, w.caller)
    with pytest.raises(RpcError) as relayed:
        await dispatcher.handle(
            ctx, "tools/call", {"name": "echo", "arguments": {"text": "refuse"}}
        )
    assert (relayed.value.code, relayed.value.message) == (-32099, "the server refused")
    assert relayed.value.data == {"why": "asked to"}
