"""Retries, fallback chains, route health and timeouts, as a client sees them, on the
in-process proxy with scripted upstreams: a failure before the first byte is retried and
then falls back (across formats too), content already streamed is never retried, the
chain runs only on its triggers and within its budget, the last answer is relayed when
everything fails, a Retry-After keeps the route out, a stalled stream ends with an error
event, and every attempt is on the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from trustgate_core.models import Fallback, FallbackBudget, LbConfig, LbMember
from trustgate_testkit.proxy.local import LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.scripted import Hang, Reply, ScriptedUpstream, Stream, serve_scripted
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant

CONTEXT_400 = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
FILTER_400 = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's"
        " content management policy.",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation"},
    }
}
PLAIN_400 = {"error": {"message": "Invalid 'temperature'", "code": "invalid_value"}}


@pytest_asyncio.fixture
async def primary() -> AsyncIterator[ScriptedUpstream]:
    async with serve_scripted("primary") as mock:
        yield mock


@pytest_asyncio.fixture
async def backup() -> AsyncIterator[ScriptedUpstream]:
    async with serve_scripted("backup") as mock:
        yield mock


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[LocalProxy]:
    async with local_proxy() as running:
        yield running


async def chained(
    proxy: LocalProxy,
    primary: ScriptedUpstream,
    backup: Any,
    triggers: list[str],
    *,
    budget: FallbackBudget | None = None,
    primary_options: dict[str, Any] | None = None,
    backup_provider: str = "openai_compatible",
    backup_options: dict[str, Any] | None = None,
) -> Tenant:
    """Consumer ``app`` routes to ``primary`` and falls back to ``backup`` on ``triggers``."""
    tenant = await proxy.new_tenant()
    await tenant.add_registry(
        "primary", primary.url, options={"base_url": primary.url, **(primary_options or {})}
    )
    await tenant.add_registry(
        "backup",
        backup.url,
        provider=backup_provider,
        api_key=ANTHROPIC_KEY if backup_provider == "anthropic" else "sk-upstream-test-0123456789",
        options=backup_options,
    )
    await tenant.add_consumer("app", ["primary"])
    fallback = Fallback(
        enabled=True,
        triggers=triggers,
        chain=[tenant.registries["backup"].id],
        budget=budget or FallbackBudget(),
    )
    await tenant.put_consumer("app", fallback=fallback)
    return tenant


def sdk(proxy: LocalProxy, tenant: Tenant) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(tenant.consumers["app"]),
            api_key="unused",
            default_headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
            max_retries=0,
        )
    )


async def post(proxy: LocalProxy, tenant: Tenant, stream: bool = False) -> httpx.Response:
    url = f"{proxy.url}/{tenant.consumers['app'].slug}/v1/chat/completions"
    headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]}
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, headers=headers, json=body)


def attempts(
    proxy: LocalProxy, tenant: Tenant, resp: httpx.Response
) -> list[tuple[str, str, int, int, bool]]:
    """The call's attempts: (registry name, outcome, status, number, fallback)."""
    (call,) = proxy.calls(resp.headers["x-ag-trace-id"])
    names = {r.id: n for n, r in tenant.registries.items()}
    return [
        (names[a.registry_id], a.outcome, a.status, a.attempt, a.fallback) for a in call.attempts
    ]


async def test_a_5xx_is_retried_on_its_route_then_the_fallback_chain_serves(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(Reply(503, {"error": {"message": "busy"}}), Reply(500, {}), Reply(502, {}))
    tenant = await chained(proxy, primary, backup, ["http_5xx"])
    answer = await sdk(proxy, tenant).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "Hello from backup"
    assert len(primary.requests) == 3  # PROVIDER_MAX_RETRIES=2: three attempts, then on
    (call,) = proxy.sink.calls
    names = {r.id: n for n, r in tenant.registries.items()}
    assert [
        (names[a.registry_id], a.outcome, a.status, a.attempt, a.fallback) for a in call.attempts
    ] == [
        ("primary", "retryable", 503, 1, False),
        ("primary", "retryable", 500, 2, False),
        ("primary", "retryable", 502, 3, False),
        ("backup", "success", 200, 4, True),
    ]
    assert call.registry_id == tenant.registries["backup"].id and call.status == 200


async def test_a_failure_before_the_first_byte_of_a_stream_falls_back_to_another_format(
    proxy: LocalProxy, primary: ScriptedUpstream, claude: AnthropicMock
) -> None:
    """An OpenAI client's streamed tool call: the OpenAI-compatible route fails, the
    Anthropic one serves, and the client still reads valid OpenAI chunks."""
    primary.then(*[Reply(503, {})] * 3)
    tenant = await chained(
        proxy,
        primary,
        claude,
        ["http_5xx"],
        backup_provider="anthropic",
        backup_options={
            "base_url": claude.url,
            "model_mapping": {"gpt-x-tools": "claude-x-tools"},
        },
    )
    chunks = await sdk(proxy, tenant).chat.completions.create(
        model="gpt-x-tools",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                if tc.function and tc.function.name:
                    entry["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
            finish = choice.finish_reason or finish
    assert calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert finish == "tool_calls"
    (call,) = proxy.sink.calls
    assert [(a.provider, a.fallback) for a in call.attempts][-1] == ("anthropic", True)
    assert call.model == "claude-x-tools"


async def test_a_stream_that_breaks_after_its_first_bytes_is_never_retried(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(Stream(2, "cut"))
    tenant = await chained(proxy, primary, backup, ["http_5xx"])
    resp = await post(proxy, tenant, stream=True)
    assert resp.status_code == 200
    text = resp.text
    assert "Hello from primary" in text
    assert text.rstrip().endswith(
        'data: {"error":{"message":"upstream stream terminated unexpectedly","type":"upstream_error"}}'
    )
    assert text.count('"content":"Hello from primary"') == 1  # nothing sent twice
    assert backup.requests == [] and len(primary.requests) == 1


@pytest.mark.parametrize(
    ("body", "trigger"),
    [(CONTEXT_400, "context_window_exceeded"), (FILTER_400, "content_filter")],
)
async def test_context_window_and_content_filter_errors_go_to_their_fallback(
    proxy: LocalProxy,
    primary: ScriptedUpstream,
    backup: ScriptedUpstream,
    body: dict[str, Any],
    trigger: str,
) -> None:
    primary.then(Reply(400, body))
    tenant = await chained(proxy, primary, backup, [trigger])
    resp = await post(proxy, tenant)
    assert resp.status_code == 200 and "Hello from backup" in resp.text
    assert len(primary.requests) == 1  # a 400 is never retried on its route
    assert attempts(proxy, tenant, resp) == [
        ("primary", "terminal", 400, 1, False),
        ("backup", "success", 200, 2, True),
    ]


@pytest.mark.parametrize(
    ("body", "triggers"),
    [
        (PLAIN_400, ["http_5xx", "context_window_exceeded", "content_filter"]),
        (CONTEXT_400, ["http_5xx", "content_filter"]),  # its trigger is off
    ],
)
async def test_a_400_without_its_trigger_is_relayed_and_never_falls_back(
    proxy: LocalProxy,
    primary: ScriptedUpstream,
    backup: ScriptedUpstream,
    body: dict[str, Any],
    triggers: list[str],
) -> None:
    primary.then(Reply(400, body))
    tenant = await chained(proxy, primary, backup, triggers)
    resp = await post(proxy, tenant)
    assert resp.status_code == 400 and resp.json() == body
    assert backup.requests == []


async def test_when_every_attempt_fails_the_last_answer_is_relayed_as_is(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(*[Reply(503, {"error": {"message": "primary down"}})] * 3)
    backup.then(*[Reply(502, {"error": {"message": "backup down"}}, {"Retry-After": "9"})] * 3)
    tenant = await chained(proxy, primary, backup, ["http_5xx"])
    resp = await post(proxy, tenant)
    assert resp.status_code == 502
    assert resp.json() == {"error": {"message": "backup down"}}
    assert resp.headers["x-selected-provider"] == "openai_compatible"
    assert len(attempts(proxy, tenant, resp)) == 6


async def test_the_budget_caps_attempts_and_total_latency(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(*[Reply(503, {"error": {"message": "busy"}})] * 3)
    tenant = await chained(
        proxy, primary, backup, ["http_5xx"], budget=FallbackBudget(max_attempts=2)
    )
    resp = await post(proxy, tenant)
    assert resp.status_code == 503 and len(attempts(proxy, tenant, resp)) == 2
    assert backup.requests == []

    slow = await chained(
        proxy,
        primary,
        backup,
        ["timeout"],
        budget=FallbackBudget(max_total_latency_ms=150),
        primary_options={"first_byte_timeout": "300ms"},
    )
    primary.script.clear()
    primary.then(Hang())
    resp = await post(proxy, slow)
    assert resp.status_code == 504  # timed out, and the deadline had passed: no fallback
    assert attempts(proxy, slow, resp) == [("primary", "retryable", 0, 1, False)]
    assert backup.requests == []


async def test_a_429_with_retry_after_keeps_the_route_out_until_then(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "30"}))
    tenant = await chained(proxy, primary, backup, ["http_429"])
    first = await post(proxy, tenant)
    assert first.status_code == 200 and "Hello from backup" in first.text
    assert attempts(proxy, tenant, first) == [
        ("primary", "retryable", 429, 1, False),  # a long Retry-After: no retry here
        ("backup", "success", 200, 2, True),
    ]
    second = await post(proxy, tenant)
    assert "Hello from backup" in second.text
    assert len(primary.requests) == 1  # skipped: still cooling down
    assert attempts(proxy, tenant, second) == [("backup", "success", 200, 1, True)]


async def test_a_short_retry_after_is_waited_out_on_the_same_route(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}))
    tenant = await chained(proxy, primary, backup, ["http_429"])
    resp = await post(proxy, tenant)
    assert "Hello from primary" in resp.text
    assert [a[:3] for a in attempts(proxy, tenant, resp)] == [
        ("primary", "retryable", 429),
        ("primary", "success", 200),
    ]


async def test_a_stream_stalled_past_the_registrys_idle_timeout_ends_with_an_error_event(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    primary.then(Stream(1, "stall"))
    tenant = await chained(
        proxy, primary, backup, ["timeout"], primary_options={"idle_timeout": "200ms"}
    )
    async with asyncio.timeout(5):
        resp = await post(proxy, tenant, stream=True)
    assert resp.status_code == 200 and "Hello from primary" in resp.text
    assert '"type":"upstream_error"' in resp.text.splitlines()[-1] or (
        '"type":"upstream_error"' in resp.text
    )
    assert backup.requests == []  # content was sent: no fallback


async def test_least_connections_counts_are_back_to_zero_after_100_cancelled_streams(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    tenant = await proxy.new_tenant()
    await tenant.add_registry("a", primary.url)
    await tenant.add_registry("b", backup.url)
    await tenant.add_consumer("app", ["a", "b"])
    lb = LbConfig(
        enabled=True,
        algorithm="least-connections",
        members=[
            LbMember(registry_id=tenant.registries["a"].id, model="m"),
            LbMember(registry_id=tenant.registries["b"].id, model="m"),
        ],
    )
    consumer = await tenant.put_consumer("app", lb_config=lb)
    primary.then(*[Stream(1, "stall")] * 100)
    backup.then(*[Stream(1, "stall")] * 100)
    url = f"{proxy.url}/{consumer.slug}/v1/chat/completions"
    headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]}
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    strategy = proxy.runtime.view.plan(consumer).router.strategy  # type: ignore[attr-defined]

    async def started_then_cancelled(http: httpx.AsyncClient) -> None:
        async with http.stream("POST", url, headers=headers, json=body) as resp:
            async for _ in resp.aiter_bytes():
                return  # the first chunk arrived: hang up

    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as http:
        await asyncio.gather(*(started_then_cancelled(http) for _ in range(100)))
    async with asyncio.timeout(5):
        while strategy.in_flight or primary.in_flight or backup.in_flight:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert strategy.in_flight == {}
    assert len(primary.requests) + len(backup.requests) == 100
    assert abs(len(primary.requests) - len(backup.requests)) <= 20  # spread by load


async def test_a_pool_alias_routes_to_the_pools_members_by_weight(
    proxy: LocalProxy, primary: ScriptedUpstream, backup: ScriptedUpstream
) -> None:
    tenant = await proxy.new_tenant()
    await tenant.add_registry("a", primary.url)
    await tenant.add_registry("b", backup.url)
    await tenant.add_consumer("app", ["a", "b"])
    lb = LbConfig(
        enabled=True,
        algorithm="weighted-round-robin",
        pool_alias="fast",
        members=[
            LbMember(registry_id=tenant.registries["a"].id, model="small", weight=3),
            LbMember(registry_id=tenant.registries["b"].id, model="large", weight=1),
        ],
    )
    await tenant.put_consumer("app", lb_config=lb)
    client = sdk(proxy, tenant)
    texts = [
        (
            await client.chat.completions.create(
                model="pool:fast", messages=[{"role": "user", "content": "x"}]
            )
        )
        .choices[0]
        .message.content
        for _ in range(8)
    ]
    assert texts.count("Hello from primary") == 6 and texts.count("Hello from backup") == 2
    assert {r["model"] for r in primary.requests} == {"small"}  # pool: is replaced
    with pytest.raises(Exception) as unknown:
        await client.chat.completions.create(
            model="pool:other", messages=[{"role": "user", "content": "x"}]
        )
    assert getattr(unknown.value, "status_code", None) == 400
