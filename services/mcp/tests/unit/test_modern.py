"""The stateless revision's checks, written by hand for the request path, answer as the
SDK's own server does (``classify_inbound_request``: the same code on the same request);
results are shaped without touching the catalog's lists; the envelope does not go
upstream; a stateless call whose shared upstream session was forgotten is retried once
on a new one."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp_types import methods as wire

from trustgate_core.models import Registry
from trustgate_core.policy import Chain, PolicyDeps, PolicyEngine
from trustgate_core.policy.runners import MCP_RUNNERS
from trustgate_mcp.domain.modern import (
    check_envelope,
    discover_result,
    is_modern,
    shaped,
    upstream_params,
)
from trustgate_mcp.domain.rpc import UNAVAILABLE, RpcError
from trustgate_mcp.domain.sessions import SessionSealer
from trustgate_mcp.services.catalog import CatalogService
from trustgate_mcp.services.dispatch import Context, Dispatcher
from trustgate_mcp.services.plans import McpPlan
from trustgate_mcp.services.ports import (
    Caller,
    ListKind,
    SessionExpired,
    UpstreamSession,
)
from trustgate_mcp.services.session_store import LocalSessionStore
from trustgate_testkit.proxy.tenant import new_tenant

V = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": V,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def request(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def headers(method: str, name: str | None = None, version: str = V) -> dict[str, str]:
    sent = {"mcp-protocol-version": version, "mcp-method": method}
    if name is not None:
        sent["mcp-name"] = name
    return sent


CASES: list[tuple[dict[str, Any], dict[str, str]]] = [
    (request("tools/list", {"_meta": META}), headers("tools/list")),
    (request("server/discover", {"_meta": META}), headers("server/discover")),
    (request("tools/call", {"name": "echo", "_meta": META}), headers("tools/call", "echo")),
    (request("tools/call", {"name": "echo", "_meta": META}), headers("tools/call", "other")),
    (request("tools/call", {"name": "echo", "_meta": META}), headers("tools/call")),
    (request("tools/call", {"name": "é", "_meta": META}), headers("tools/call", "=?base64?w6k=?=")),
    (request("tools/call", {"name": "x", "_meta": META}), headers("tools/call", "=?base64?!?=")),
    (
        request("resources/read", {"uri": "a://b", "_meta": META}),
        headers("resources/read", "a://b"),
    ),
    (request("prompts/get", {"name": "p", "_meta": META}), headers("prompts/get", "q")),
    (request("tools/list", {"_meta": META}), headers("prompts/list")),
    (request("tools/list", {"_meta": META}), {"mcp-method": "tools/list"}),
    (request("tools/list", {"_meta": META}), headers("tools/list", version="2025-11-25")),
    (request("tools/list", {}), headers("tools/list")),
    (request("tools/list", None), headers("tools/list")),
    (request("tools/list", [1]), headers("tools/list")),
    (request("tools/list", {"_meta": []}), headers("tools/list")),
    (
        request("tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": V}}),
        headers("tools/list"),
    ),
    (
        request("tools/list", {"_meta": {**META, "io.modelcontextprotocol/protocolVersion": "9"}}),
        headers("tools/list", version="9"),
    ),
    (
        request("tools/list", {"_meta": {**META, "io.modelcontextprotocol/protocolVersion": 7}}),
        headers("tools/list"),
    ),
]


@pytest.mark.parametrize(("message", "sent"), CASES)
def test_the_envelope_is_refused_with_the_code_the_sdks_server_answers(
    message: dict[str, Any], sent: dict[str, str]
) -> None:
    verdict = classify_inbound_request(message, headers=sent)
    try:
        version = check_envelope(
            message, sent.get("mcp-protocol-version"), sent.get("mcp-method"), sent.get("mcp-name")
        )
    except RpcError as refused:
        assert isinstance(verdict, InboundLadderRejection)
        assert refused.code == verdict.code
        if verdict.data is not None:
            assert set(verdict.data["supported"]) <= set(refused.data["supported"])
            assert refused.data["requested"] == verdict.data["requested"]
        return
    assert not isinstance(verdict, InboundLadderRejection), verdict
    assert version == verdict.protocol_version


def test_requests_are_routed_by_their_version_header_as_the_sdk_routes_them() -> None:
    assert is_modern(V, "tools/list") and is_modern("2099-01-01", "tools/list")
    assert not is_modern("2025-11-25", "tools/list") and not is_modern(None, "tools/list")
    assert is_modern(None, "server/discover")  # refused there: its envelope is missing


def test_results_are_copies_shaped_for_the_revision() -> None:
    tools = [{"name": "echo", "inputSchema": {"type": "object"}}]
    listed = {"tools": tools}
    result = shaped("tools/list", listed)
    assert listed == {"tools": tools} and result["tools"] is tools
    wire.validate_server_result("tools/list", V, result)
    call = shaped("tools/call", {"content": []})
    assert call == {"content": [], "resultType": "complete"}
    wire.validate_server_result("tools/call", V, call)
    wire.validate_server_result("server/discover", V, discover_result("trustgate", "1"))


def test_the_envelope_is_not_sent_upstream_but_the_rest_of_meta_is() -> None:
    params = {"name": "echo", "_meta": {**META, "progressToken": 3}}
    assert upstream_params(params) == {"name": "echo", "_meta": {"progressToken": 3}}
    assert upstream_params({"name": "echo", "_meta": META}) == {"name": "echo"}
    assert params["_meta"]["io.modelcontextprotocol/protocolVersion"] == V  # not changed


class SharedUpstream:
    """Calls go on the shared session; sessions named in ``forgotten`` are unknown."""

    def __init__(self) -> None:
        self.opened = 0
        self.forgotten: set[str | None] = set()
        self.sent: list[dict[str, Any] | None] = []
        self.current: UpstreamSession | None = None

    async def open(self, registry: Registry, caller: Caller) -> UpstreamSession:
        raise AssertionError("a stateless call opens no session of its own")

    async def shared_session(
        self, registry: Registry, caller: Caller, expired: UpstreamSession | None
    ) -> UpstreamSession:
        if self.current is None or self.current is expired:
            self.opened += 1
            self.current = UpstreamSession(registry.id, f"shared-{self.opened}", "2025-11-25")
        return self.current

    async def request(
        self,
        registry: Registry,
        session: UpstreamSession | None,
        caller: Caller,
        method: str,
        params: dict[str, Any] | None,
    ) -> dict[str, Any]:
        assert session is not None
        self.sent.append(params)
        if session.session_id in self.forgotten:
            raise SessionExpired("404")
        return {"content": [{"type": "text", "text": session.session_id}]}

    async def listing(
        self, registry: Registry, caller: Caller, kind: ListKind
    ) -> list[dict[str, Any]]:
        return [{"name": "echo", "inputSchema": {"type": "object"}}] if kind == "tools" else []

    async def close(self, registry: Registry, session: UpstreamSession, caller: Caller) -> None:
        return None


async def stateless_call(upstream: SharedUpstream) -> Any:
    tenant = await new_tenant(None, local=lambda _event: None)
    await tenant.add_mcp_registry("docs", "http://127.0.0.1:9/mcp")
    await tenant.add_consumer("agent", ["docs"], type="MCP")
    engine = PolicyEngine(MCP_RUNNERS, PolicyDeps(), plane="MCP")
    consumer = tenant.consumers["agent"]
    plan = McpPlan(consumer, (tenant.registries["docs"],), Chain(engine, ()), ())
    dispatcher = Dispatcher(
        upstream,
        CatalogService(upstream),
        LocalSessionStore(),
        SessionSealer("the-secret"),
        session_ttl=3600,
        server_version="1.0",
    )
    ctx = Context(Caller(tenant.gateway, consumer), plan, modern=True)
    params = {"name": "echo", "arguments": {}, "_meta": META}
    return await dispatcher.handle(ctx, "tools/call", params)


async def test_a_forgotten_shared_session_is_replaced_once_and_the_call_retried() -> None:
    upstream = SharedUpstream()
    await stateless_call(upstream)
    upstream.forgotten.add("shared-1")
    result = await stateless_call(upstream)
    assert result["content"][0]["text"] == "shared-2" and upstream.opened == 2
    assert all(p is not None and "_meta" not in p for p in upstream.sent)

    upstream.forgotten.update({"shared-2", "shared-3"})
    with pytest.raises(RpcError) as failed:
        await stateless_call(upstream)
    assert failed.value.code == UNAVAILABLE and upstream.opened == 3
