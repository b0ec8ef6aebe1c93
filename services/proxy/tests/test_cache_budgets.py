"""A ``semantic_cache`` hit against the limits, through the proxy, the real policy-cache
service on a private NATS and the budgets' counters in a real Redis:

- a hit costs nothing upstream, so it spends no budget: the reservation a
  ``token_rate_limiter`` made before the lookup is released, whether it counts dollars or
  tokens (not settled to the replayed answer's usage);
- a hit is still a request: ``rate_limiter`` counts it, and a consumer over its request
  limit gets 429 even for a cached answer;
- a consumer whose budget is exhausted is refused before the lookup: no cached answer;
- the request event says what happened (the cache outcome, no attempt, cost 0, each
  policy's decision; a refusal names the policy and has no cache outcome).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from nats.aio.client import Client as NATS

from trustgate_core.events import RequestEvent
from trustgate_core.models import Policy
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import anthropic_sdk, openai_sdk, route_to_url
from trustgate_testkit.proxy.server import RunningProxy, run_proxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

MODEL = "gpt-4o-mini"
HI: Any = [{"role": "user", "content": "What is the capital of France?"}]
# the mock's usage: 11 prompt tokens (3 read from a cache, not counted by default), 7
# completion tokens
REAL_TOKENS = 11 - 3 + 7
# custom prices that make each mocked call cost a whole number of micro-USD: 11 + 7*2
PRICES = {"gpt-4o-mini*": {"input": 0.000001, "output": 0.000002}}
REAL_MICRO_USD = 25


@pytest.fixture
def nats_url(private_nats_url: str) -> str:
    return private_nats_url


@pytest_asyncio.fixture
async def proxy(nats_url: str, infra: Any) -> AsyncIterator[RunningProxy]:
    async with run_proxy(nats_url, REDIS_URL=str(infra.redis_url)) as running:
        async with asyncio.timeout(10):
            await running.runtime.wait_ready()
        yield running


@pytest.fixture
def cache(cache_service: PolicyCacheRuntime) -> None:
    """A policy-cache replica keeping its entries in memory."""


@pytest_asyncio.fixture
async def redis(infra: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(str(infra.redis_url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def app(proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, cache: None) -> Tenant:
    app = await route_to_url(proxy, tenant, upstream.url)
    await app.add_policy("cache", "semantic_cache", {"mode": "exact"}, consumers=["app"])
    return app


async def spent(redis: aioredis.Redis, policy: Policy) -> int:
    """What the policy's budgets hold now (one budget: its counter)."""
    total = 0
    async for key in redis.scan_iter(f"trl:{policy.id}:*"):
        total += int(await redis.get(key) or 0)
    return total


async def settles_to(redis: aioredis.Redis, policy: Policy, expected: int) -> None:
    async def holds() -> bool:
        return await spent(redis, policy) == expected

    await wait_for(holds, timeout=5, message=f"the budget never settled to {expected}")


async def chat(proxy: RunningProxy, tenant: Tenant, **kw: Any) -> Any:
    client = openai_sdk(proxy, tenant)
    return await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=kw.pop("messages", HI), max_tokens=kw.pop("max_tokens", 20), **kw
    )


async def cached(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, **kw: Any
) -> tuple[Any, int]:
    """Ask ``HI`` until the policy-cache service serves it (its store is asynchronous: an
    ask may miss again meanwhile); the first hit, and how many asks reached the upstream."""
    before = len(upstream.requests)
    first = await chat(proxy, tenant, **kw)
    assert first.headers["x-cache"] == "MISS"

    async def hit() -> Any:
        again = await chat(proxy, tenant, **kw)
        return again if again.headers["x-cache"] == "HIT" else None

    found = await wait_for(hit, timeout=5, message="the answer was never served from the cache")
    return found, len(upstream.requests) - before


async def event_of(log: Any, trace_id: str) -> RequestEvent:
    def published() -> list[RequestEvent] | None:
        return log.by_trace(trace_id) or None  # type: ignore[no-any-return]

    found = await wait_for(published, timeout=5)
    assert found is not None
    return found[0]


def decisions(event: RequestEvent) -> set[tuple[str, str, str]]:
    return {(d.plugin, d.stage, d.decision) for d in event.policy_chain}


async def test_a_hit_spends_no_dollar_budget_json_or_streamed(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    redis: aioredis.Redis,
    bus: NATS,
    events: Any,
) -> None:
    policy = await app.add_policy(
        "budget",
        "token_rate_limiter",
        {
            "unit": "dollars",
            "aggregate": {"max": 0.01, "time_window": "1h"},
            "custom_pricing": PRICES,
        },
        consumers=["app"],
    )
    await until_known(proxy, app)
    _, misses = await cached(proxy, app, upstream)
    # a miss is charged what it cost; a hit nothing
    await settles_to(redis, policy, misses * REAL_MICRO_USD)
    calls = len(upstream.requests)

    async with events(bus, app.gateway.id) as log:
        hits = [await chat(proxy, app) for _ in range(3)]
        client = openai_sdk(proxy, app)
        stream = await client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=HI,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream.parse()]
        assert stream.headers["x-cache"] == "HIT"
        assert chunks[-1].usage is not None  # the replayed answer still tells its usage
        for hit in hits:
            assert hit.headers["x-cache"] == "HIT"
            assert hit.parse().usage is not None
            assert hit.headers["x-budget-unit"] == "dollars"
        assert len(upstream.requests) == calls
        # every reservation released, none settled to the replayed usage's price
        await settles_to(redis, policy, misses * REAL_MICRO_USD)
        event = await event_of(log, hits[0].headers["x-ag-trace-id"])
    assert event.status == 200 and not event.attempts
    assert event.cache is not None and event.cache.outcome == "hit"
    assert event.cost is not None and event.cost.total_usd == 0
    assert event.usage is None  # no tokens were consumed upstream
    assert {
        ("semantic_cache", "pre_request", "pass"),
        ("token_rate_limiter", "pre_request", "pass"),
        ("token_rate_limiter", "post_response", "pass"),
    } <= decisions(event)


async def test_a_hit_spends_no_token_budget_in_any_format_json_or_streamed(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, redis: aioredis.Redis
) -> None:
    policy = await app.add_policy(
        "budget",
        "token_rate_limiter",
        {"aggregate": {"max": 100_000, "time_window": "1h"}},
        consumers=["app"],
    )
    await until_known(proxy, app)
    before = len(upstream.requests)
    _, misses = await cached(proxy, app, upstream)
    await settles_to(redis, policy, misses * REAL_TOKENS)
    for _ in range(3):
        hit = await chat(proxy, app)
        assert hit.headers["x-cache"] == "HIT"
        assert "x-ratelimit-remaining-tokens" in hit.headers
    await settles_to(redis, policy, misses * REAL_TOKENS)

    # Messages and Responses clients, each stored from its own miss, then hit as JSON
    # and as a stream (a replayed stream is delivered whole: not a stream cut short)
    claude = anthropic_sdk(proxy, app)
    ask: dict[str, Any] = {"model": MODEL, "max_tokens": 20, "messages": HI}

    async def claude_hit() -> bool:
        raw = await claude.messages.with_raw_response.create(**ask)
        return bool(raw.headers["x-cache"] == "HIT")

    responses = openai_sdk(proxy, app).responses
    said: dict[str, Any] = {"model": MODEL, "input": HI, "max_output_tokens": 20}

    async def responses_hit() -> bool:
        raw = await responses.with_raw_response.create(**said)
        return bool(raw.headers["x-cache"] == "HIT")

    await wait_for(claude_hit, timeout=5)
    await wait_for(responses_hit, timeout=5)
    misses = len(upstream.requests) - before
    await settles_to(redis, policy, misses * REAL_TOKENS)
    async with claude.messages.stream(**ask) as stream:
        pieces = [text async for text in stream.text_stream]
        assert stream.response.headers["x-cache"] == "HIT"
    assert len(pieces) > 1
    events = [e async for e in await responses.create(**said, stream=True)]
    assert events[-1].type == "response.completed"
    assert len(upstream.requests) - before == misses
    await settles_to(redis, policy, misses * REAL_TOKENS)


async def test_a_hit_is_a_request_rate_limiter_counts_and_refuses_it(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    bus: NATS,
    events: Any,
) -> None:
    await app.add_policy("rpm", "rate_limiter", {"limit": 8, "window": "1h"}, consumers=["app"])
    await until_known(proxy, app)
    hit, _ = await cached(proxy, app, upstream)
    calls = len(upstream.requests)
    remaining = int(hit.headers["x-ratelimit-consumer-remaining"])
    assert remaining < 7  # the miss and the hit (at least) both counted
    async with events(bus, app.gateway.id) as log:
        while remaining:  # each hit takes one request of the limit
            hit = await chat(proxy, app)
            assert hit.headers["x-cache"] == "HIT"
            assert int(hit.headers["x-ratelimit-consumer-remaining"]) == remaining - 1
            remaining -= 1
        with pytest.raises(openai.RateLimitError) as refused:
            await chat(proxy, app)  # cached, and over the limit
        response = refused.value.response
        assert response.status_code == 429 and "x-cache" not in response.headers
        assert int(response.headers["retry-after"]) > 3500
        event = await event_of(log, response.headers["x-ag-trace-id"])
        served = await event_of(log, hit.headers["x-ag-trace-id"])
    assert len(upstream.requests) == calls
    assert event.status == 429 and event.cache is None  # refused before the lookup
    assert ("rate_limiter", "pre_request", "block") in decisions(event)
    assert served.cache is not None and served.cache.outcome == "hit"
    assert ("rate_limiter", "pre_request", "pass") in decisions(served)


async def test_an_exhausted_budget_refuses_even_a_cached_answer(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    redis: aioredis.Redis,
    bus: NATS,
    events: Any,
) -> None:
    # a call reserves its prompt estimate + 100 output tokens, then settles to 15: a
    # budget of 200 takes a few calls before the next reservation no longer fits
    policy = await app.add_policy(
        "budget",
        "token_rate_limiter",
        {"aggregate": {"max": 200, "time_window": "1h"}},
        consumers=["app"],
    )
    await until_known(proxy, app)
    _, misses = await cached(proxy, app, upstream, max_tokens=100)
    await settles_to(redis, policy, misses * REAL_TOKENS)
    # other questions (misses, the length of HI) spend the budget until it refuses
    for n in range(10):
        question = [{"role": "user", "content": f"What is the capital of France{n:02}"}]
        try:
            await chat(proxy, app, messages=question, max_tokens=100)
        except openai.RateLimitError:
            break
        await settles_to(redis, policy, (misses + n + 1) * REAL_TOKENS)
    else:
        raise AssertionError("the budget never ran out")
    calls = len(upstream.requests)
    async with events(bus, app.gateway.id) as log:
        with pytest.raises(openai.RateLimitError) as refused:
            await chat(proxy, app, max_tokens=100)  # HI, cached
        response = refused.value.response
        event = await event_of(log, response.headers["x-ag-trace-id"])
    assert response.json()["error"]["type"] == "token_budget_exceeded"
    assert "x-cache" not in response.headers and "retry-after" in response.headers
    assert len(upstream.requests) == calls
    assert event.status == 429 and event.cache is None  # refused before the lookup
    assert ("token_rate_limiter", "pre_request", "block") in decisions(event)
