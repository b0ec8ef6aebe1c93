"""Policies on MCP calls: what ``McpExchange`` shows a policy, how a refusal becomes a
JSON-RPC error, and the MCP runners (``rate_limiter``, ``request_size_limiter``,
``per_tool_rate_limiter``, ``tool_allowlist``, the gateway's plan) through two engines
over one real Redis — two replicas of the MCP plane: the limits hold exactly across them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from trustgate_core.counters import RedisCounters
from trustgate_core.embedded import free_port
from trustgate_core.errors import PolicyRejected, RateLimitUnavailable
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway, Policy
from trustgate_core.plugins import validate_policy
from trustgate_core.policy import (
    Chain,
    McpExchange,
    PolicyDeps,
    PolicyEngine,
    call_target,
    rpc_error,
)
from trustgate_core.policy.runners import ENFORCED_ON, LLM_RUNNERS, MCP_RUNNERS, gateway_plan
from trustgate_testkit.fixtures import Infra

NOW = datetime(2026, 3, 31, 12, 0, 0, tzinfo=UTC)


def gateway(**fields: Any) -> Gateway:
    gw = uuid7()
    return Gateway(id=gw, gateway_id=gw, created_at=NOW, updated_at=NOW, slug="gw", **fields)


def policy(gw: Gateway, plugin: str, settings: dict[str, Any], **fields: Any) -> Policy:
    checked = validate_policy(plugin, None, fields.pop("mode", None), settings, "MCP")
    return Policy.model_validate(
        {
            "id": uuid7(),
            "gateway_id": gw.id,
            "created_at": NOW,
            "updated_at": NOW,
            "name": plugin,
            "slug": plugin,
            "settings": checked.settings,
            "stages": list(checked.stages),
            "mode": checked.mode,
            **fields,
        }
    )


def consumer(gw: Gateway, *attached: Policy) -> Consumer:
    return Consumer(
        id=uuid7(),
        gateway_id=gw.id,
        created_at=NOW,
        updated_at=NOW,
        name="agent",
        slug=f"agent-{uuid7().hex[:8]}",
        policy_ids=[p.id for p in attached],
    )


def compile_for(engine: PolicyEngine, gw: Gateway, who: Consumer, *policies: Policy) -> Chain:
    table: dict[UUID, Policy] = {p.id: p for p in policies}
    return engine.compile(gw, who, table)


def tool_call(
    gw: Gateway,
    who: Consumer,
    tool: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    method: str = "tools/call",
) -> McpExchange:
    params = {"name": tool, "arguments": {"city": "Oslo"}}
    body = b'{"jsonrpc":"2.0","id":1,"method":"%s","params":{"name":"%s"}}' % (
        method.encode(),
        tool.encode(),
    )
    return McpExchange(gw, who, headers, method=method, body=body, params=params)


async def outcome(chain: Chain, x: McpExchange) -> int:
    """0 when the call passes, else the JSON-RPC error code the plane answers."""
    try:
        await chain.run("pre_request", x)
    except (PolicyRejected, RateLimitUnavailable) as refusal:
        code: int = rpc_error(refusal)["code"]
        return code
    return 0


@pytest.fixture
async def replicas(infra: Infra) -> AsyncIterator[tuple[PolicyEngine, PolicyEngine]]:
    """Two MCP planes' engines, each with its own connection to one Redis."""
    counters = [RedisCounters(infra.redis_url, timeout=2.0) for _ in range(2)]
    try:
        yield (
            PolicyEngine(
                MCP_RUNNERS,
                PolicyDeps(counters=counters[0]),
                plane="MCP",
                gateway_runner=gateway_plan,
            ),
            PolicyEngine(
                MCP_RUNNERS,
                PolicyDeps(counters=counters[1]),
                plane="MCP",
                gateway_runner=gateway_plan,
            ),
        )
    finally:
        for each in counters:
            await each.aclose()


async def across(
    replicas: tuple[PolicyEngine, PolicyEngine],
    gw: Gateway,
    who: Consumer,
    policies: tuple[Policy, ...],
    calls: int,
    tool: str = "forecast",
) -> list[int]:
    """``calls`` concurrent calls spread over both replicas; their outcomes."""
    chains = [compile_for(engine, gw, who, *policies) for engine in replicas]
    return list(
        await asyncio.gather(
            *(outcome(chains[i % 2], tool_call(gw, who, tool)) for i in range(calls))
        )
    )


# -- the exchange ---------------------------------------------------------------------------
def test_the_exchange_names_what_each_method_acts_on() -> None:
    gw = gateway()
    who = consumer(gw)
    assert call_target("tools/call", {"name": "forecast"}) == "forecast"
    assert call_target("prompts/get", {"name": "summary"}) == "summary"
    assert call_target("resources/read", {"uri": "docs://readme"}) == "docs://readme"
    assert call_target("tools/list", {}) is None
    assert call_target("tools/call", {"name": 3}) is None  # malformed: no name to judge

    body = b'{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"docs://a"}}'
    x = McpExchange(
        gw,
        who,
        ((b"x-team", b"blue"),),
        method="resources/read",
        body=body,
        params={"uri": "docs://a"},
        auth_id=gw.id,
        subject="alice",
        client_host="10.0.0.7",
    )
    assert x.plane == "MCP"
    assert (x.method, x.tool, x.request_size) == ("resources/read", "docs://a", len(body))
    assert (x.auth_id, x.subject, x.client_host) == (gw.id, "alice", "10.0.0.7")
    assert x.header(b"x-team") == "blue"
    assert x.path == f"/{who.slug}/mcp"
    with pytest.raises(TypeError):
        x.params["uri"] = "docs://b"  # type: ignore[index]
    assert (x.status, x.is_error) == (0, None)
    x.status, x.is_error = 200, True
    assert (x.status, x.is_error) == (200, True)
    bare = McpExchange(gw, who, (), method="tools/list", body=b"{}")
    assert (bare.tool, dict(bare.params)) == (None, {})


def test_a_refusal_maps_to_rate_limited_with_retry_after_or_to_policy_blocked() -> None:
    limited = PolicyRejected(
        429, {"error": "rate limit exceeded", "message": "slow down"}, ((b"retry-after", b"17"),)
    )
    assert rpc_error(limited) == {
        "code": -32004,
        "message": "slow down",
        "data": {"error": "rate limit exceeded", "message": "slow down", "retry_after": 17},
    }
    blocked = rpc_error(PolicyRejected(403, {"error": "tool_not_allowed", "tool": "rm"}))
    assert blocked == {
        "code": -32001,
        "message": "policy blocked",
        "data": {"error": "tool_not_allowed", "tool": "rm", "status": 403},
    }
    unavailable = rpc_error(RateLimitUnavailable("the rate_limiter policy cannot reach it"))
    assert unavailable["code"] == -32001 and unavailable["data"]["status"] == 503


def test_the_mcp_plane_enforces_limits_and_tool_policies_not_llm_only_plugins() -> None:
    assert set(MCP_RUNNERS) == {
        "rate_limiter",
        "request_size_limiter",
        "per_tool_rate_limiter",
        "tool_allowlist",
    }
    assert ENFORCED_ON["rate_limiter"] == ("LLM", "MCP")
    assert ENFORCED_ON["per_tool_rate_limiter"] == ("MCP",)
    assert ENFORCED_ON["cors"] == ("LLM",)
    assert set(ENFORCED_ON) == set(LLM_RUNNERS) | set(MCP_RUNNERS)


async def test_an_llm_only_policy_is_left_out_of_an_mcp_chain(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    cors = policy(gw, "cors", {"allowed_origins": ["https://app.example"]}, mode="enforce")
    who = consumer(gw, cors)
    chain = compile_for(replicas[0], gw, who, cors)
    assert chain.runners == () and chain.stages == frozenset()


# -- rate_limiter -----------------------------------------------------------------------------
async def test_a_rate_limit_counts_mcp_calls_exactly_across_replicas(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rl = policy(gw, "rate_limiter", {"limit": 4, "window": "1m"})
    who = consumer(gw, rl)
    codes = await across(replicas, gw, who, (rl,), 12)
    assert codes.count(0) == 4 and codes.count(-32004) == 8
    # another consumer has its own count
    other = consumer(gw, rl)
    assert await outcome(compile_for(replicas[1], gw, other, rl), tool_call(gw, other, "x")) == 0


async def test_a_rate_limit_refusal_tells_when_to_retry_and_a_passing_call_the_headers(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rl = policy(gw, "rate_limiter", {"limit": 1, "window": "30s"})
    who = consumer(gw, rl)
    chain = compile_for(replicas[0], gw, who, rl)
    first = tool_call(gw, who, "forecast")
    await chain.run("pre_request", first)
    assert dict(first.response_headers)[b"x-ratelimit-consumer-remaining"] == b"0"
    with pytest.raises(PolicyRejected) as caught:
        await chain.run("pre_request", tool_call(gw, who, "forecast"))
    error = rpc_error(caught.value)
    assert error["code"] == -32004 and 1 <= error["data"]["retry_after"] <= 30


async def test_a_global_rate_limit_grouped_by_header_counts_each_value_across_consumers(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rl = policy(
        gw,
        "rate_limiter",
        {"limit": 2, "window": "1m", "group_by_header": "X-Team"},
        **{"global": True},
    )
    alice, bob = consumer(gw), consumer(gw)
    chains = [compile_for(replicas[i], gw, who, rl) for i, who in enumerate((alice, bob))]
    blue = ((b"x-team", b"blue"),)
    codes = [
        await outcome(chains[i % 2], tool_call(gw, (alice, bob)[i % 2], "t", blue))
        for i in range(3)
    ]
    assert codes == [0, 0, -32004]
    red = ((b"x-team", b"red"),)
    assert await outcome(chains[0], tool_call(gw, alice, "t", red)) == 0


# -- request_size_limiter ---------------------------------------------------------------------
async def test_a_size_limit_measures_the_json_rpc_request(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    size = policy(gw, "request_size_limiter", {"allowed_payload_size": 120, "size_unit": "bytes"})
    who = consumer(gw, size)
    chain = compile_for(replicas[0], gw, who, size)
    small = tool_call(gw, who, "forecast")
    assert await outcome(chain, small) == 0
    assert dict(small.response_headers)[b"x-request-size-bytes"] == b"%d" % small.request_size
    big = tool_call(gw, who, "f" * 200)
    with pytest.raises(PolicyRejected) as caught:
        await chain.run("pre_request", big)
    error = rpc_error(caught.value)
    assert error["code"] == -32001
    assert error["data"]["status"] == 413 and error["data"]["size"] == big.request_size


# -- per_tool_rate_limiter --------------------------------------------------------------------
async def test_a_per_tool_limit_is_exact_across_replicas_and_spares_other_tools(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": 3}]}
    per_tool = policy(gw, "per_tool_rate_limiter", {"rules": [rule]})
    who = consumer(gw, per_tool)
    codes = await across(replicas, gw, who, (per_tool,), 9)
    assert codes.count(0) == 3 and codes.count(-32004) == 6
    assert await across(replicas, gw, who, (per_tool,), 4, tool="echo") == [0, 0, 0, 0]


async def test_a_per_tool_refusal_says_which_tool_and_when_to_retry(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rule = {"tool": "fore*", "windows": [{"duration": "10s", "max": 1}]}
    per_tool = policy(gw, "per_tool_rate_limiter", {"rules": [rule]})
    who = consumer(gw, per_tool)
    chain = compile_for(replicas[0], gw, who, per_tool)
    assert chain.stages == frozenset({"pre_request"})  # nothing to do on the answer
    passing = tool_call(gw, who, "forecast")
    await chain.run("pre_request", passing)
    headers = dict(passing.response_headers)
    assert headers[b"x-ratelimit-tool-limit"] == b"1"
    assert headers[b"x-ratelimit-tool-remaining"] == b"0"
    with pytest.raises(PolicyRejected) as caught:
        await chain.run("pre_request", tool_call(gw, who, "forecast"))
    refusal = caught.value
    assert refusal.status == 429 and refusal.code == "rate_limited"
    assert refusal.body()["tool"] == "forecast"
    retry = int(dict(refusal.headers)[b"retry-after"])
    assert 1 <= retry <= 10 and rpc_error(refusal)["data"]["retry_after"] == retry
    # the glob matches another tool, counted on its own; a list is never limited
    assert await outcome(chain, tool_call(gw, who, "forecast_week")) == 0
    listing = McpExchange(gw, who, (), method="tools/list", body=b"{}")
    for _ in range(3):
        assert await outcome(chain, listing) == 0


async def test_a_per_tool_limit_with_two_windows_holds_the_tighter(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    windows = [{"duration": "1h", "max": 2}, {"duration": "1m", "max": 5}]
    per_tool = policy(gw, "per_tool_rate_limiter", {"rules": [{"tool": "*", "windows": windows}]})
    who = consumer(gw, per_tool)
    codes = await across(replicas, gw, who, (per_tool,), 4)
    assert sorted(codes) == [-32004, -32004, 0, 0]


async def test_a_global_per_tool_limit_is_shared_by_the_gateways_consumers(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": 2}]}
    per_tool = policy(gw, "per_tool_rate_limiter", {"rules": [rule], "scope": "global"})
    alice, bob = consumer(gw, per_tool), consumer(gw, per_tool)
    chains = [compile_for(replicas[i], gw, who, per_tool) for i, who in enumerate((alice, bob))]
    codes = [
        await outcome(chains[i % 2], tool_call(gw, (alice, bob)[i % 2], "forecast"))
        for i in range(3)
    ]
    assert codes == [0, 0, -32004]


# -- tool_allowlist ---------------------------------------------------------------------------
async def test_an_allowlist_refuses_a_forbidden_tool_and_hides_it_from_the_list(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    allow = policy(
        gw, "tool_allowlist", {"allow_tools": ["fore*", "echo"], "deny_tools": ["*_admin"]}
    )
    who = consumer(gw, allow)
    chain = compile_for(replicas[0], gw, who, allow)
    assert [chain.allows_tool(n) for n in ("forecast", "echo", "forecast_admin", "rm")] == [
        True,
        True,
        False,
        False,
    ]
    assert await outcome(chain, tool_call(gw, who, "forecast")) == 0
    with pytest.raises(PolicyRejected) as caught:
        await chain.run("pre_request", tool_call(gw, who, "rm"))
    assert caught.value.status == 403 and caught.value.body()["tool"] == "rm"
    assert rpc_error(caught.value)["code"] == -32001
    # other methods are not judged by it (a list is filtered with allows_tool)
    listing = McpExchange(gw, who, (), method="tools/list", body=b"{}")
    assert await outcome(chain, listing) == 0
    prompt = McpExchange(gw, who, (), method="prompts/get", body=b"{}", params={"name": "rm"})
    assert await outcome(chain, prompt) == 0


async def test_without_an_enforced_allowlist_every_tool_is_allowed(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    rl = policy(gw, "rate_limiter", {"limit": 5, "window": "1m"})
    who = consumer(gw, rl)
    assert compile_for(replicas[0], gw, who, rl).allows_tool("anything")
    watched = policy(gw, "tool_allowlist", {"deny_tools": ["rm"]}, mode="observe")
    who = consumer(gw, watched)
    chain = compile_for(replicas[0], gw, who, watched)
    assert chain.allows_tool("rm")  # observe hides nothing ...
    x = tool_call(gw, who, "rm")
    assert await outcome(chain, x) == 0
    assert [(r.decision, r.error) for r in x.records] == [("observe", "tool_not_allowed")]


async def test_two_allowlists_both_have_to_allow_a_tool(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway()
    one = policy(gw, "tool_allowlist", {"allow_tools": ["a*"]})
    two = policy(gw, "tool_allowlist", {"deny_tools": ["ab"]})
    who = consumer(gw, one, two)
    chain = compile_for(replicas[1], gw, who, one, two)
    assert [chain.allows_tool(n) for n in ("aa", "ab", "b")] == [True, False, False]


# -- the gateway's plan -----------------------------------------------------------------------
async def test_the_gateway_plan_counts_mcp_calls_across_replicas(
    replicas: tuple[PolicyEngine, PolicyEngine],
) -> None:
    gw = gateway(entitlements={"burst_per_min": 1_000, "quota_per_month": 5})
    who = consumer(gw)
    codes = await across(replicas, gw, who, (), 8)
    assert codes.count(0) == 5 and codes.count(-32004) == 3


async def test_a_per_tool_limit_lets_calls_through_when_redis_is_unreachable() -> None:
    counters = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
    engine = PolicyEngine(MCP_RUNNERS, PolicyDeps(counters=counters), plane="MCP")
    gw = gateway()
    rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": 1}]}
    per_tool = policy(gw, "per_tool_rate_limiter", {"rules": [rule]})
    who = consumer(gw, per_tool)
    chain = compile_for(engine, gw, who, per_tool)
    try:
        x = tool_call(gw, who, "forecast")
        assert await outcome(chain, x) == 0
        assert [r.error for r in x.records] == ["counters_unavailable"]
        assert engine.failed_open["per_tool_rate_limiter"] == 1
    finally:
        await counters.aclose()
