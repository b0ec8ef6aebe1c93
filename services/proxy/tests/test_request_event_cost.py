"""Every request event says what the call cost: catalog prices applied to the usage the
provider reported (cached input priced apart where the catalog knows it), streams and
translated calls included; a model the catalog does not know costs nothing known
(``cost: null``), never a guess."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from trustgate_core.events.requests import RequestCost, RequestEvent
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import anthropic_sdk, openai_sdk, route_to_url
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

HI: Any = [{"role": "user", "content": "Hi"}]
# the mocks' usage: 11 prompt tokens of which 3 read from a cache, 7 completion tokens
GPT_4O_MINI_COST = RequestCost(  # $0.15 / $0.075 cached / $0.60 per million
    prompt_usd=0.0000012, completion_usd=0.0000042, cached_usd=0.000000225, total_usd=0.000005625
)
SONNET_4_COST = RequestCost(  # $3 / $0.30 cached / $15 per million
    prompt_usd=0.000024, completion_usd=0.000105, cached_usd=0.0000009, total_usd=0.0001299
)


@pytest_asyncio.fixture
async def to_claude(tenant: Tenant, claude: AnthropicMock, proxy: RunningProxy) -> Tenant:
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_consumer("app", ["claude"])
    await until_known(proxy, tenant)
    return tenant


async def event_of(log: Any, headers: Any) -> RequestEvent:
    trace = headers["x-ag-trace-id"]
    found: list[RequestEvent] = await wait_for(lambda: log.by_trace(trace), timeout=5)
    assert len(found) == 1
    return found[0]


async def test_a_catalogued_model_costs_its_usage_at_catalog_prices_streamed_or_not(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    client = openai_sdk(proxy, tenant)
    async with events(None, tenant.gateway.id) as log:
        plain = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI
        )
        async with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=HI, stream=True
        ) as streamed:
            async for _ in streamed.iter_lines():
                pass
        for response in (plain, streamed):
            event = await event_of(log, response.headers)
            assert event.provider == "openai_compatible" and event.model == "gpt-4o-mini"
            assert event.cost == GPT_4O_MINI_COST


async def test_a_model_without_a_catalog_price_has_no_cost(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    client = openai_sdk(proxy, tenant)
    async with events(None, tenant.gateway.id) as log:
        raw = await client.chat.completions.with_raw_response.create(
            model="my-finetune-v2", messages=HI
        )
        event = await event_of(log, raw.headers)
    assert event.status == 200 and event.usage is not None and event.usage.total_tokens == 18
    assert event.cost is None


# every Claude model the catalog prices is one the SDK warns is being retired
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
async def test_anthropic_cache_reads_are_priced_apart_passed_through_or_translated(
    proxy: RunningProxy, to_claude: Tenant, events: Any
) -> None:
    model = "claude-sonnet-4-20250514"
    messages = anthropic_sdk(proxy, to_claude)
    chat = openai_sdk(proxy, to_claude)
    async with events(None, to_claude.gateway.id) as log:
        plain = await messages.messages.with_raw_response.create(
            model=model, max_tokens=100, messages=HI
        )
        async with messages.messages.with_streaming_response.create(
            model=model, max_tokens=100, messages=HI, stream=True
        ) as streamed:
            async for _ in streamed.iter_lines():
                pass
        translated = await chat.chat.completions.with_raw_response.create(model=model, messages=HI)
        for response in (plain, streamed, translated):
            event = await event_of(log, response.headers)
            assert event.provider == "anthropic"
            assert event.usage is not None and event.usage.cached_input_tokens == 3
            assert event.cost == SONNET_4_COST
