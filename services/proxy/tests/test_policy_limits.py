"""Limit policies as a client sees them through the official SDKs: ``rate_limiter`` (its
headers, its 429 and Retry-After, observe, throttle, a consumer's own over a global one),
``request_size_limiter`` (411, 413, its headers), the gateway's plan (burst and quota),
Redis lost mid-run (``fail_open`` / ``fail_closed``, nothing hangs), and policy changes
reaching a running proxy over the bus within a second without resetting counters."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import pytest_asyncio

from trustgate_core.embedded import free_port
from trustgate_core.events import RequestEvent
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import EventLog, LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import (
    anthropic_sdk,
    gateway_headers,
    openai_sdk,
    route_to_url,
)
from trustgate_testkit.proxy.server import RunningProxy, poll
from trustgate_testkit.proxy.tenant import Tenant
from trustgate_testkit.redis_server import RedisServer

HI: Any = [{"role": "user", "content": "Hi"}]


@pytest_asyncio.fixture
async def local() -> AsyncIterator[LocalProxy]:
    async with local_proxy() as running:
        yield running


@pytest_asyncio.fixture
async def app(local: LocalProxy, upstream: MockUpstream) -> Tenant:
    """A gateway on the in-process proxy with consumer ``app`` routed to the mock."""
    return await route_to_url(local, await local.new_tenant(), upstream.url)


async def chat(client: openai.AsyncOpenAI) -> Any:
    return await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)


async def status_of(client: openai.AsyncOpenAI) -> int:
    try:
        response = await chat(client)
    except openai.APIStatusError as error:
        return error.status_code
    return int(response.status_code)


async def rate_limited(client: openai.AsyncOpenAI) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        await chat(client)
    return caught.value


async def event_of(log: EventLog, trace: str) -> RequestEvent:
    found: list[RequestEvent] = await wait_for(lambda: log.by_trace(trace), timeout=5)
    return found[0]


# -- rate_limiter --------------------------------------------------------------------------
async def test_a_rate_limit_passes_with_its_headers_then_is_an_sdk_rate_limit_error(
    local: LocalProxy, app: Tenant
) -> None:
    await app.add_policy("rpm", "rate_limiter", {"limit": 2, "window": "1m"}, consumers=["app"])
    client = openai_sdk(local, app)
    log = EventLog(local.sink, app.gateway.id)
    first = await chat(client)
    assert first.headers["x-ratelimit-consumer-limit"] == "2"
    assert first.headers["x-ratelimit-consumer-remaining"] == "1"
    reset = int(first.headers["x-ratelimit-consumer-reset"])
    assert time.time() + 55 < reset <= time.time() + 61
    assert (await chat(client)).headers["x-ratelimit-consumer-remaining"] == "0"

    error = await rate_limited(client)
    retry_after = int(error.response.headers["retry-after"])
    assert 55 <= retry_after <= 60  # when the first call leaves the window
    body = error.response.json()
    assert body == {
        "error": "rate limit exceeded",
        "message": f"Request blocked: consumer rate limit exceeded. Retry after {retry_after}s.",
        "reason": "rate_limit_exceeded",
        "scope": "consumer",
        "limit": 2,
        "window": "1m",
        "retry_after_seconds": retry_after,
    }
    event = await event_of(log, error.response.headers["x-ag-trace-id"])
    assert (event.status, event.error_kind) == (429, "rate_limited")
    assert [(p.name, p.decision) for p in event.policy_chain] == [("rpm", "block")]


async def test_a_rate_limited_anthropic_messages_call_raises_the_anthropic_rate_limit_error(
    local: LocalProxy, claude: AnthropicMock
) -> None:
    tenant = await local.new_tenant()
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_consumer("app", ["claude"])
    await tenant.add_policy("rpm", "rate_limiter", {"limit": 1, "window": "1h"}, consumers=["app"])
    client = anthropic_sdk(local, tenant)
    ask: dict[str, Any] = {"model": "claude-sonnet-4", "max_tokens": 10, "messages": HI}
    await client.messages.create(**ask)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(**ask)
    assert int(caught.value.response.headers["retry-after"]) > 3500


async def test_observe_never_changes_a_response_and_records_observe(
    local: LocalProxy, app: Tenant
) -> None:
    await app.add_policy(
        "watch", "rate_limiter", {"limit": 1, "window": "1m"}, consumers=["app"], mode="observe"
    )
    client = openai_sdk(local, app)
    log = EventLog(local.sink, app.gateway.id)
    first, second = await chat(client), await chat(client)
    for response in (first, second):
        assert response.status_code == 200
        assert not [h for h in response.headers if h.startswith("x-ratelimit")]
    event = await event_of(log, second.headers["x-ag-trace-id"])
    assert [(p.name, p.decision, p.status_code) for p in event.policy_chain] == [
        ("watch", "observe", 429)
    ]
    assert event.status == 200 and event.error_kind is None


async def test_a_consumer_s_own_rate_limit_overrides_the_global_one(
    local: LocalProxy, app: Tenant, upstream: MockUpstream
) -> None:
    await app.add_consumer("other", ["primary"])
    await app.add_policy("everyone", "rate_limiter", {"limit": 1, "window": "1m"}, global_=True)
    await app.add_policy("vip", "rate_limiter", {"limit": 3, "window": "1m"}, consumers=["app"])
    vip, other = openai_sdk(local, app), openai_sdk(local, app, "other")
    assert (await chat(other)).headers["x-ratelimit-global-limit"] == "1"
    error = await rate_limited(other)
    assert error.response.json()["scope"] == "global"
    for _ in range(3):
        response = await chat(vip)
        assert response.headers["x-ratelimit-consumer-limit"] == "3"
        assert "x-ratelimit-global-limit" not in response.headers
    await rate_limited(vip)


async def test_throttle_waits_for_a_slot_then_passes(local: LocalProxy, app: Tenant) -> None:
    await app.add_policy(
        "smooth", "rate_limiter", {"limit": 1, "window": "1s"}, consumers=["app"], mode="throttle"
    )
    client = openai_sdk(local, app)
    log = EventLog(local.sink, app.gateway.id)
    await chat(client)
    started = time.monotonic()
    second = await chat(client)
    waited = time.monotonic() - started
    assert second.status_code == 200 and 0.5 < waited < 2.0
    event = await event_of(log, second.headers["x-ag-trace-id"])
    assert [p.decision for p in event.policy_chain] == ["throttle"]


# -- request_size_limiter -------------------------------------------------------------------
async def test_the_size_limiter_tells_the_size_and_refuses_a_larger_body_with_413(
    local: LocalProxy, app: Tenant
) -> None:
    await app.add_policy(
        "size",
        "request_size_limiter",
        {"allowed_payload_size": 1, "size_unit": "kilobytes", "max_chars_per_request": 500},
        consumers=["app"],
    )
    client = openai_sdk(local, app)
    small = await chat(client)
    assert int(small.headers["x-request-size-bytes"]) == int(small.headers["x-request-size-chars"])
    assert small.headers["x-size-limit-bytes"] == "1024"
    assert small.headers["x-size-limit-chars"] == "500"
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "é" * 500}]
        )
    assert caught.value.status_code == 413
    body = caught.value.response.json()
    assert body["error"] == "request_too_large" and body["unit"] == "bytes"
    assert "the limit is 1024 bytes" in body["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a" * 600}]
        )
    assert caught.value.response.json()["unit"] == "characters"


async def test_the_size_limiter_refuses_a_chunked_body_with_411_when_it_requires_a_length(
    local: LocalProxy, app: Tenant
) -> None:
    await app.add_policy(
        "size", "request_size_limiter", {"require_content_length": True}, consumers=["app"]
    )
    url = f"{local.base_url(app.consumers['app'])}/chat/completions"
    payload = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'

    async def chunked() -> AsyncIterator[bytes]:
        yield payload

    async with httpx.AsyncClient(headers=gateway_headers(app), timeout=10) as http:
        refused = await http.post(url, content=chunked())
        assert refused.status_code == 411
        assert refused.json()["error"] == "length_required"
        assert (await http.post(url, content=payload)).status_code == 200


# -- the gateway's plan ---------------------------------------------------------------------
async def clear_of_the_minute_s_end(margin_s: float = 10.0) -> None:
    """Wait until at least ``margin_s`` of the current UTC minute are left: the plan's burst
    counts a fixed minute, and calls on both sides of its end are counted apart."""
    await wait_for(lambda: 60 - time.time() % 60 >= margin_s, timeout=margin_s + 1)


async def test_the_gateway_plan_burst_is_a_429_saying_burst(local: LocalProxy, app: Tenant) -> None:
    await app.put_gateway(entitlements={"tier": "free", "burst_per_min": 2})
    await clear_of_the_minute_s_end()
    client = openai_sdk(local, app)
    await chat(client)
    await chat(client)
    error = await rate_limited(client)
    headers = error.response.headers
    assert headers["x-ratelimit-reason"] == "burst"
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("2", "0")
    assert 1 <= int(headers["retry-after"]) <= 60
    body = error.response.json()
    assert (body["error"], body["reason"], body["limit"]) == ("rate limit exceeded", "burst", 2)
    assert body["retry_after_seconds"] == int(headers["retry-after"])


async def test_the_gateway_plan_quota_is_a_429_saying_quota_for_every_consumer(
    local: LocalProxy, app: Tenant
) -> None:
    await app.add_consumer("other", ["primary"])
    await app.put_gateway(entitlements={"burst_per_min": 100, "quota_per_month": 2})
    await chat(openai_sdk(local, app))
    await chat(openai_sdk(local, app, "other"))
    error = await rate_limited(openai_sdk(local, app))
    assert error.response.headers["x-ratelimit-reason"] == "quota"
    assert error.response.json()["reason"] == "quota"
    assert int(error.response.headers["retry-after"]) <= 31 * 86400


# -- Redis lost mid-run -------------------------------------------------------------------
@contextlib.contextmanager
def redis_server(port: int) -> Iterator[RedisServer]:
    """A private ``redis-server`` on ``port``, killed on exit."""
    server = RedisServer(port=port)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def answered_within_a_second(client: openai.AsyncOpenAI) -> int:
    started = time.monotonic()
    status = await status_of(client)
    assert time.monotonic() - started < 1.0
    return status


async def failed_open(proxy: RunningProxy) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{proxy.operations_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("trustgate_proxy_policy_failed_open_total"):
            return float(line.split()[-1])
    return 0.0


async def test_with_redis_gone_fail_open_admits_fail_closed_answers_503_and_limits_return_with_it(
    upstream: MockUpstream,
) -> None:
    port = free_port()
    with redis_server(port) as first:
        async with local_proxy(REDIS_URL=f"redis://127.0.0.1:{port}/0") as proxy:
            tenant = await route_to_url(proxy, await proxy.new_tenant(), upstream.url)
            await tenant.add_consumer("strict", ["primary"])
            limit = {"limit": 2, "window": "1m"}
            await tenant.add_policy("open", "rate_limiter", limit, consumers=["app"])
            closed = {**limit, "on_error": "fail_closed"}
            await tenant.add_policy("closed", "rate_limiter", closed, consumers=["strict"])
            lenient, strict = openai_sdk(proxy, tenant), openai_sdk(proxy, tenant, "strict")
            # connected: only the fail-closed policy tells (the lenient one admits either
            # way), and a first connect can time out in a busy process (50 ms deadline)

            async def strict_admitted() -> bool:
                return await answered_within_a_second(strict) == 200

            await wait_for(strict_admitted, timeout=10, message="Redis never connected")

            first.kill()
            before = await failed_open(proxy)
            for _ in range(4):  # beyond the limit: nothing counts while Redis is gone
                assert await answered_within_a_second(lenient) == 200
                with pytest.raises(openai.InternalServerError) as caught:
                    await chat(strict)
                assert caught.value.status_code == 503
                assert caught.value.response.json()["error"] == "rate_limit_unavailable"
                assert int(caught.value.response.headers["retry-after"]) >= 1
            assert await failed_open(proxy) >= before + 4

            with redis_server(port):  # back (empty): limits apply again

                async def limited_again() -> bool:
                    return await answered_within_a_second(lenient) == 429

                await wait_for(limited_again, timeout=10, message="limits never came back")
                assert await answered_within_a_second(strict) == 200
                assert await answered_within_a_second(strict) == 200
                assert await answered_within_a_second(strict) == 429


# -- live changes over the bus ---------------------------------------------------------------
async def test_policy_changes_reach_a_running_proxy_within_a_second_and_keep_their_counters(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    client = openai_sdk(proxy, tenant)
    state = proxy.runtime.state

    async def within_a_second(expected: int) -> None:
        async def seen() -> bool:
            return await status_of(client) == expected

        started = time.monotonic()
        await wait_for(seen, timeout=1.0)
        assert time.monotonic() - started < 1.0

    # created: 2 per hour (each probe that passes is counted)
    await tenant.add_policy("rpm", "rate_limiter", {"limit": 2, "window": "1h"}, consumers=["app"])
    await within_a_second(429)
    # raised to 4: the two counted remain, two more pass, then 429 again
    policy = await tenant.put_policy("rpm", settings={"limit": 4, "window": "1h"})
    await poll(lambda: state.policies.get(policy.id) == policy, 1.0)
    assert [await status_of(client) for _ in range(3)] == [200, 200, 429]
    # disabled, then enabled again: the counters are still there
    await tenant.put_policy("rpm", enabled=False)
    await within_a_second(200)
    await tenant.put_policy("rpm", enabled=True)
    await within_a_second(429)
    # detached from the consumer: it no longer applies
    await tenant.put_consumer("app", policy_ids=[])
    await within_a_second(200)
