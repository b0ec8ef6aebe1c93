"""token_rate_limiter through the proxy, driven by the official SDKs, its counters in a
real Redis: a budget reserved before each call holds under concurrency and is settled to
what each call really spent (streams included, a stream the client left charged what it
was delivered); refusals are the SDKs' own errors with the reference's bodies and headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from trustgate_core.models import Policy
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_responses import RESPONSES_KEY, MockResponses, serve_responses
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream
from trustgate_testkit.proxy.sdk_clients import (
    anthropic_sdk,
    close_sdk_clients,
    openai_sdk,
    route_to_url,
    tracked,
)
from trustgate_testkit.proxy.server import until_known
from trustgate_testkit.proxy.tenant import Tenant

HI: Any = [{"role": "user", "content": "Hi"}]
# every mock's usage: 11 prompt tokens (3 read from a cache), 7 completion tokens
REAL_TOKENS = 11 + 7
# custom prices that make each mocked call cost a whole number of micro-USD: 11 + 7*2
PRICES = {"gpt-4o-mini*": {"input": 0.000001, "output": 0.000002}}
REAL_MICRO_USD = 25


@pytest_asyncio.fixture
async def proxy(infra: Any) -> AsyncIterator[LocalProxy]:
    async with local_proxy(REDIS_URL=str(infra.redis_url)) as running:
        yield running


@pytest_asyncio.fixture
async def tenant(proxy: LocalProxy) -> Tenant:
    return await proxy.new_tenant()


@pytest_asyncio.fixture
async def redis(infra: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(str(infra.redis_url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def responses_mock() -> AsyncIterator[MockResponses]:
    async with serve_responses() as mock:
        yield mock


async def spent(redis: aioredis.Redis, policy: Policy) -> int:
    """What the policy's budgets hold now (one budget: its counter)."""
    total = 0
    async for key in redis.scan_iter(f"trl:{policy.id}:*"):
        value = await redis.get(key)
        total += int(value or 0)
    return total


async def settles_to(redis: aioredis.Redis, policy: Policy, expected: int) -> None:
    """Until the policy's counter holds ``expected`` (settlements are sent, not awaited)."""
    await wait_for(
        lambda: _equals(redis, policy, expected),
        timeout=5,
        message=f"the budget never settled to {expected}",
    )


async def _equals(redis: aioredis.Redis, policy: Policy, expected: int) -> bool:
    return await spent(redis, policy) == expected


async def budget(
    proxy: LocalProxy, tenant: Tenant, settings: dict[str, Any], **options: Any
) -> Policy:
    policy = await tenant.add_policy("budget", "token_rate_limiter", settings, **options)
    await until_known(proxy, tenant)
    return policy


# -- a budget under concurrency -------------------------------------------------------------


async def test_fifty_concurrent_calls_stay_within_a_dollar_budget_and_settle_exactly(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, redis: aioredis.Redis
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    maximum = 1000  # micro-USD: 40 mocked calls' worth, if charged after the fact
    policy = await budget(
        proxy,
        tenant,
        {
            "unit": "dollars",
            "aggregate": {"max": maximum / 1e6, "time_window": "1h"},
            "custom_pricing": PRICES,
        },
        consumers=["app"],
    )

    async def one(client: openai.AsyncOpenAI) -> int:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HI, max_tokens=10
            )
        except openai.RateLimitError as refused:
            body: Any = refused.body
            assert body["type"] == "dollar_budget_exceeded"
            return 429
        return raw.status_code

    async with openai_sdk(proxy, tenant) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(50)))
    served = statuses.count(200)
    assert served + statuses.count(429) == 50
    assert 0 < statuses.count(429), "50 calls fit a budget of 40: it did not hold"
    # every reservation released or settled: the counter holds the real costs, exactly
    await settles_to(redis, policy, served * REAL_MICRO_USD)
    # each call's estimate (its prompt's bytes / 3 + 10 output tokens) is above its real
    # cost, so the overshoot bound (one estimate's error) is 0 here
    assert served * REAL_MICRO_USD <= maximum
    assert served >= 1000 // 80  # a reservation is at most 80 micro-USD: not over-strict


async def leave_open(url: str) -> None:
    """An SDK client with twenty pooled connections to ``url``, dropped unclosed (as a
    test that never closes its client leaves it)."""
    client = tracked(openai.AsyncOpenAI(base_url=url, api_key=UPSTREAM_KEY, max_retries=0))
    create = client.chat.completions.create
    await asyncio.gather(*(create(model="gpt-4o-mini", messages=HI) for _ in range(20)))


async def test_a_client_left_open_earlier_takes_no_call_of_a_burst_with_it(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    """The suite-wide flake of the fifty calls above, provoked: a collection in the middle
    of the burst frees an earlier client left open. Unless the test that made it closed it
    (`close_sdk_clients`, at every test's teardown), some of the calls lose their
    connection's reader and time out (every run)."""
    await route_to_url(proxy, tenant, upstream.url)
    await leave_open(upstream.url)
    await close_sdk_clients()  # what the earlier test's teardown does
    async with openai_sdk(proxy, tenant, timeout=5) as client:
        create = client.chat.completions.with_raw_response.create
        calls = [asyncio.ensure_future(create(model="gpt-4o-mini", messages=HI)) for _ in range(50)]
        gc.collect()  # as a long suite's allocations trigger it, mid-burst
        answers = await asyncio.gather(*calls)
    assert [raw.status_code for raw in answers] == [200] * 50


# -- streams are charged their final usage, or what was delivered ---------------------------


@pytest_asyncio.fixture
async def three_routes(
    proxy: LocalProxy,
    tenant: Tenant,
    upstream: MockUpstream,
    claude: AnthropicMock,
    responses_mock: MockResponses,
) -> Tenant:
    """Consumers ``chat`` (OpenAI chat), ``claude`` (Anthropic) and ``responses`` (the
    Responses API), all under one global budget."""
    await tenant.add_registry("openai", upstream.url)
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_registry(
        "responses",
        "",
        provider="openai",
        options={"base_url": responses_mock.url, "api": "responses"},
        auth={"type": "api_key", "api_key": {"api_key": RESPONSES_KEY}},
    )
    for name in ("chat", "claude", "responses"):
        await tenant.add_consumer(name, [name if name != "chat" else "openai"])
    await until_known(proxy, tenant)
    return tenant


async def test_streamed_chat_messages_and_responses_are_charged_their_final_usage(
    proxy: LocalProxy, three_routes: Tenant, redis: aioredis.Redis
) -> None:
    policy = await budget(
        proxy,
        three_routes,
        {"aggregate": {"max": 10**6, "time_window": "1h"}, "count_cache_reads": True},
        global_=True,
    )
    chat = openai_sdk(proxy, three_routes, "chat")
    stream = await chat.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    async for _ in stream:
        pass
    async with anthropic_sdk(proxy, three_routes, "claude").messages.stream(
        model="claude-test", max_tokens=100, messages=HI
    ) as messages:
        async for _ in messages.text_stream:
            pass
    responses = await openai_sdk(proxy, three_routes, "responses").responses.create(
        model="gpt-4o-mini", input="Hi", stream=True
    )
    async for _ in responses:
        pass
    await settles_to(redis, policy, 3 * REAL_TOKENS)


def open_stream(proxy: LocalProxy, tenant: Tenant, route: str, model: str, max_tokens: int) -> Any:
    """A streamed call on ``route`` (a consumer of ``three_routes``) with its SDK, as a
    raw streaming response to read line by line."""
    if route == "chat":
        chat = openai_sdk(proxy, tenant, "chat").chat.completions.with_streaming_response
        return chat.create(model=model, messages=HI, stream=True, max_tokens=max_tokens)
    if route == "claude":
        messages = anthropic_sdk(proxy, tenant, "claude").messages.with_streaming_response
        return messages.create(model=model, messages=HI, stream=True, max_tokens=max_tokens)
    responses = openai_sdk(proxy, tenant, "responses").responses.with_streaming_response
    return responses.create(model=model, input="Hi", stream=True, max_output_tokens=max_tokens)


@pytest.mark.parametrize("route", ["chat", "claude", "responses"])
async def test_a_stream_the_client_leaves_is_charged_its_prompt_and_what_was_delivered(
    proxy: LocalProxy,
    three_routes: Tenant,
    redis: aioredis.Redis,
    upstream: MockUpstream,
    claude: AnthropicMock,
    responses_mock: MockResponses,
    route: str,
) -> None:
    maximum, max_tokens = 10**6, 500
    policy = await budget(
        proxy,
        three_routes,
        {"aggregate": {"max": maximum, "time_window": "1h"}, "count_cache_reads": True},
        global_=True,
    )
    # the ``-slow`` models stream their first text delta, then wait for ``release``
    model = "claude-test-slow" if route == "claude" else "gpt-4o-mini-slow"
    try:
        call = open_stream(proxy, three_routes, route, model, max_tokens)
        async with call as response:
            reserved = maximum - int(response.headers["x-ratelimit-remaining-tokens"])
            async for line in response.iter_lines():
                if "delta" in line:  # the first delta arrived: leave
                    break
        prompt = reserved - max_tokens
        # Anthropic reports the prompt's real size when the stream starts (8 + 3 cached)
        expected = (11 if route == "claude" else prompt) + 1
        await settles_to(redis, policy, expected)
    finally:
        for mock in (upstream, claude, responses_mock):
            mock.release.set()


# -- refusals --------------------------------------------------------------------------------


async def test_over_a_token_budget_the_sdks_raise_rate_limit_errors_with_retry_after(
    proxy: LocalProxy, three_routes: Tenant
) -> None:
    await budget(
        proxy, three_routes, {"aggregate": {"max": 100, "time_window": "1h"}}, global_=True
    )
    chat = openai_sdk(proxy, three_routes, "chat")
    with pytest.raises(openai.RateLimitError) as refused:
        await chat.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=500)
    headers = refused.value.response.headers
    assert 0 < int(headers["retry-after"]) <= 3600
    assert headers["x-ratelimit-limit-tokens"] == "100"
    assert headers["x-ratelimit-remaining-tokens"] == "100"
    assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert refused.value.body == {
        "type": "token_budget_exceeded",
        "scope": "global",
        "window": "1h",
    }
    claude = anthropic_sdk(proxy, three_routes, "claude")
    with pytest.raises(anthropic.RateLimitError) as also:
        await claude.messages.create(model="claude-test", messages=HI, max_tokens=500)
    assert also.value.response.status_code == 429
    assert also.value.response.headers["retry-after"] == headers["retry-after"]
    assert also.value.response.json()["error"]["type"] == "token_budget_exceeded"


async def test_a_passing_call_carries_the_budget_headers(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    await budget(
        proxy,
        tenant,
        {
            "unit": "dollars",
            "aggregate": {"max": 5, "time_window": "1d"},
            "custom_pricing": PRICES,
        },
        consumers=["app"],
    )
    raw = await openai_sdk(proxy, tenant).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_tokens=10
    )
    assert raw.headers["x-budget-unit"] == "dollars"
    assert raw.headers["x-budget-scope"] == "consumer"
    assert raw.headers["x-budget-window"] == "1d"
    assert raw.headers["x-budget-limit-usd"] == "5.000000"
    assert 4.9999 < float(raw.headers["x-budget-remaining-usd"]) < 5
    assert raw.headers["x-budget-reset"].endswith("s")


async def test_exceeding_with_downgrade_model_sends_the_cheaper_model(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    await budget(
        proxy,
        tenant,
        {
            "rules": [{"model": "gpt-4o", "max": 50, "time_window": "1h"}],
            "behavior_on_exceeded": "downgrade_model",
            "downgrade_to": "gpt-4o-mini",
        },
        consumers=["app"],
    )
    raw = await openai_sdk(proxy, tenant).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HI, max_tokens=100
    )
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o-mini"
    assert raw.headers["x-neuraltrust-model-downgraded"] == "gpt-4o→gpt-4o-mini"


async def test_the_best_matching_rule_decides_which_budget_a_model_spends(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    await budget(
        proxy,
        tenant,
        {
            "rules": [
                {"model": "gpt-*", "max": 10**6, "time_window": "1h"},
                {"model": "gpt-4o*", "max": 100, "time_window": "1h"},
                {"model": "gpt-4o-mini", "max": 10**6, "time_window": "1h"},
            ]
        },
        consumers=["app"],
    )
    client = openai_sdk(proxy, tenant)
    for model in ("gpt-4o-mini", "gpt-3.5-turbo"):
        await client.chat.completions.create(model=model, messages=HI, max_tokens=200)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-2024-08-06", messages=HI, max_tokens=200)


async def test_cost_cap_refuses_or_downgrades_a_model_priced_above_it(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    cap = {"enabled": True, "max_output_cost_per_1k_tokens": 0.001}
    policy = await budget(proxy, tenant, {"cost_cap": cap}, consumers=["app"])
    client = openai_sdk(proxy, tenant)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=HI)
    assert refused.value.status_code == 403
    assert refused.value.body == {
        "type": "model_too_expensive",
        "model": "gpt-4o",
        "input_price": 0.0025,
        "output_price": 0.01,
        "max_input": None,
        "max_output": 0.001,
    }
    await tenant.put_policy(
        policy.name,
        settings={
            "cost_cap": {**cap, "behavior_on_violation": "downgrade", "downgrade_to": "gpt-4o-mini"}
        },
    )
    await until_known(proxy, tenant)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o-mini"
    assert raw.headers["x-neuraltrust-model-downgraded"] == "gpt-4o→gpt-4o-mini"


async def test_a_dollar_budget_refuses_a_model_it_cannot_price(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    await budget(
        proxy,
        tenant,
        {"unit": "dollars", "aggregate": {"max": 5, "time_window": "1d"}},
        consumers=["app"],
    )
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await openai_sdk(proxy, tenant).chat.completions.create(model="my-finetune", messages=HI)
    body: Any = refused.value.body
    assert body["type"] == "model_price_unknown" and body["model"] == "my-finetune"
    assert not upstream.requests


async def test_observe_mode_never_changes_the_response_but_counts(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, redis: aioredis.Redis
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    policy = await budget(
        proxy,
        tenant,
        {
            "aggregate": {"max": 10, "time_window": "1h"},
            "behavior_on_exceeded": "downgrade_model",
            "downgrade_to": "gpt-4o-mini",
        },
        consumers=["app"],
        mode="observe",
    )
    raw = await openai_sdk(proxy, tenant).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HI
    )
    assert raw.status_code == 200
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o"
    assert not any(
        name.startswith(("x-ratelimit-", "x-budget-", "x-neuraltrust")) for name in raw.headers
    )
    await settles_to(redis, policy, REAL_TOKENS - 3)


async def test_embeddings_spend_the_same_budget(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, redis: aioredis.Redis
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    policy = await budget(
        proxy, tenant, {"aggregate": {"max": 10**6, "time_window": "1h"}}, consumers=["app"]
    )
    client = openai_sdk(proxy, tenant)
    await client.embeddings.create(model="text-embedding-3-small", input="hello")
    await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    await settles_to(redis, policy, 8 + REAL_TOKENS - 3)


async def test_a_call_the_upstream_refuses_releases_its_reservation(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, redis: aioredis.Redis
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    policy = await budget(
        proxy, tenant, {"aggregate": {"max": 10**6, "time_window": "1h"}}, consumers=["app"]
    )
    with contextlib.suppress(openai.RateLimitError):
        await openai_sdk(proxy, tenant).chat.completions.create(
            model="gpt-4o-ratelimited", messages=HI
        )
    await settles_to(redis, policy, 0)
