"""The official ``openai`` SDK's Responses client (``client.responses.create``, plain and
``stream=True``) against the proxy's ``/v1/responses``, routed to

- ``responses``: an ``openai`` registry calling the Responses API
  (``trustgate_testkit.proxy.mock_responses``): same format, the body passes through;
- ``openai``: an ``openai`` registry calling Chat Completions
  (``trustgate_testkit.proxy.mock_upstream``): the proxy translates the request, the answer
  and the stream.

Both mocks speak their API's exact wire format (their docstrings give the fixtures'
provenance); the SDK's own parsers read every answer and stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_responses import RESPONSES_KEY, serve_responses
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, serve_mock
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import RESPONSES_WEATHER_TOOL, openai_sdk, route_to
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()


@pytest_asyncio.fixture(params=["responses", "openai"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[ProviderMock]:
    async with MOCKS[request.param]() as mock:
        yield mock


@pytest_asyncio.fixture
async def routed(tenant: Tenant, provider: ProviderMock, proxy: RunningProxy) -> Tenant:
    return await route_to(proxy, tenant, provider, "primary")


def passes_through(provider: ProviderMock) -> bool:
    return provider.wire == "openai_responses"


async def test_a_response_with_instructions_and_usage(
    proxy: RunningProxy, routed: Tenant, provider: ProviderMock
) -> None:
    raw = await openai_sdk(proxy, routed).responses.with_raw_response.create(
        model="gpt-4o-mini", instructions="Be brief.", input="Hello!"
    )
    response = raw.parse()
    assert response.output_text == f"Hello from {provider.name}"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert raw.headers["x-selected-provider"] == "openai"
    sent = provider.requests[-1]
    assert sent.system == "Be brief."
    assert sent.path == ("/v1/responses" if passes_through(provider) else "/v1/chat/completions")


async def test_a_streamed_response_arrives_in_deltas(
    proxy: RunningProxy, routed: Tenant, provider: ProviderMock
) -> None:
    stream = await openai_sdk(proxy, routed).responses.create(
        model="gpt-4o-mini", input="Hello!", stream=True
    )
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 3
    assert "".join(deltas) == f"Hello from {provider.name}"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == f"Hello from {provider.name}"
    assert final.usage is not None and final.usage.output_tokens == 7


@pytest.mark.parametrize("api", ["responses", "completions"])
async def test_stream_deltas_reach_the_client_before_the_provider_finishes(
    proxy: RunningProxy, tenant: Tenant, api: str
) -> None:
    server = serve_responses() if api == "responses" else serve_mock("openai")
    key = RESPONSES_KEY if api == "responses" else UPSTREAM_KEY
    async with server as upstream:
        await tenant.add_registry(
            "slow",
            "",
            provider="openai",
            options={"base_url": upstream.url, "api": api},
            auth={"type": "api_key", "api_key": {"api_key": key}},
        )
        await tenant.add_consumer("app", ["slow"])
        await until_known(proxy, tenant)
        stream = await openai_sdk(proxy, tenant).responses.create(
            model="gpt-4o-slow", input="Hi", stream=True
        )
        events = aiter(stream)
        first_text = None
        async with asyncio.timeout(10):
            while first_text is None:
                event = await anext(events)
                if event.type == "response.output_text.delta":
                    first_text = event.delta
        assert first_text == "Hello"
        assert not upstream.finished.is_set()  # the provider is still holding the rest
        upstream.release.set()
        rest = [e async for e in events]
        text = "".join(e.delta for e in rest if e.type == "response.output_text.delta")
        assert first_text + text == f"Hello from {upstream.name}"
        assert rest[-1].type == "response.completed"


async def test_the_sdk_stream_helper_gets_the_final_response(
    proxy: RunningProxy, routed: Tenant, provider: ProviderMock
) -> None:
    async with openai_sdk(proxy, routed).responses.stream(
        model="gpt-4o-mini", input="Hi"
    ) as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text == f"Hello from {provider.name}"


async def test_a_tool_call_round_trip(
    proxy: RunningProxy, routed: Tenant, provider: ProviderMock
) -> None:
    client = openai_sdk(proxy, routed)
    first = await client.responses.create(
        model="gpt-4o-tools", input="Weather in Paris?", tools=[RESPONSES_WEATHER_TOOL]
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city":"Paris"}')]
    assert first.status == "completed"
    followup: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ]
    final = await client.responses.create(
        model="gpt-4o-tools", input=followup, tools=[RESPONSES_WEATHER_TOOL]
    )
    assert final.output_text == "The weather is sunny"
    assert provider.requests[-1].tool_result == "sunny"


async def test_a_streamed_tool_call_arrives_in_argument_deltas(
    proxy: RunningProxy, routed: Tenant
) -> None:
    async with openai_sdk(proxy, routed).responses.stream(
        model="gpt-4o-tools", input="Weather in Paris?", tools=[RESPONSES_WEATHER_TOOL]
    ) as stream:
        deltas = [
            e.delta async for e in stream if e.type == "response.function_call_arguments.delta"
        ]
        final = await stream.get_final_response()
    assert len(deltas) >= 2
    assert "".join(deltas) == '{"city":"Paris"}'
    call = final.output[-1]
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", '{"city":"Paris"}')


async def test_max_tokens_ends_the_response_incomplete(proxy: RunningProxy, routed: Tenant) -> None:
    client = openai_sdk(proxy, routed)
    response = await client.responses.create(model="gpt-4o-long", input="Hi")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    stream = await client.responses.create(model="gpt-4o-long", input="Hi", stream=True)
    last = [e async for e in stream][-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"


async def test_a_rate_limited_provider_is_a_429_with_retry_after(
    proxy: RunningProxy, routed: Tenant
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await openai_sdk(proxy, routed).responses.create(model="gpt-4o-ratelimited", input="Hi")
    assert caught.value.response.headers["retry-after"] == "7"
    assert "Rate limit" in caught.value.message


async def test_a_stream_cut_mid_way_raises_in_the_sdk(proxy: RunningProxy, routed: Tenant) -> None:
    stream = await openai_sdk(proxy, routed).responses.create(
        model="gpt-4o-cut", input="Hi", stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        async for event in stream:
            seen.append(event.type)
    assert "response.output_text.delta" in seen
    assert "response.completed" not in seen


@asynccontextmanager
async def routed_to(
    name: str, tenant: Tenant, proxy: RunningProxy
) -> AsyncIterator[tuple[ProviderMock, AsyncOpenAI]]:
    """One mock of ``MOCKS``, the tenant's only registry; the SDK pointed at it."""
    async with MOCKS[name]() as mock:
        await tenant.add_registry(
            name, "", provider=mock.provider, options=mock.options, auth=mock.auth
        )
        await tenant.add_consumer("app", [name])
        await until_known(proxy, tenant)
        yield mock, openai_sdk(proxy, tenant)


async def test_previous_response_id_cannot_cross_to_another_format(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with routed_to("openai", tenant, proxy) as (mock, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="gpt-4o-mini", input="And then?", previous_response_id="resp_earlier"
            )
        assert "previous_response_id" in str(caught.value)
        assert mock.requests == []  # refused before reaching the provider


async def test_a_built_in_tool_cannot_cross_to_another_format(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with routed_to("openai", tenant, proxy) as (mock, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="gpt-4o-mini", input="News?", tools=[{"type": "web_search"}]
            )
        assert "web_search" in str(caught.value)
        assert mock.requests == []


async def test_a_reasoning_item_passes_through(proxy: RunningProxy, tenant: Tenant) -> None:
    async with routed_to("responses", tenant, proxy) as (_mock, client):
        response = await client.responses.create(model="o4-mini-thinking", input="Hi")
    assert [o.type for o in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Thinking about it"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 4


async def test_anthropic_thinking_reaches_a_responses_client_and_goes_back_signed(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with routed_to("anthropic", tenant, proxy) as (mock, client):
        first = await client.responses.create(
            model="claude-sonnet-4-thinking",
            input="Hi",
            reasoning={"effort": "low"},
            max_output_tokens=4096,
        )
        reasoning = first.output[0]
        assert reasoning.type == "reasoning"
        assert reasoning.summary[0].text == "Let me think. A greeting."
        assert (reasoning.encrypted_content or "").startswith("trustgate.signature:")
        async with client.responses.stream(
            model="claude-sonnet-4-thinking", input="Hi", max_output_tokens=4096
        ) as stream:
            streamed = await stream.get_final_response()
        assert streamed.output[0].type == "reasoning"
        assert streamed.output[0].encrypted_content == reasoning.encrypted_content
        # the next turn sends the item back: Anthropic gets its signed thinking block again
        turn: Any = [
            {"role": "user", "content": "Hi"},
            reasoning.model_dump(exclude_none=True),
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "And?"},
        ]
        await client.responses.create(
            model="claude-sonnet-4-thinking", input=turn, max_output_tokens=4096
        )
        sent = mock.requests[-1].body["messages"][1]["content"][0]
        assert sent["type"] == "thinking"
        assert sent["thinking"] == "Let me think. A greeting."
        assert "trustgate.signature:" + sent["signature"] == reasoning.encrypted_content


async def test_an_openai_registry_without_api_serves_responses_clients_by_the_responses_api(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["responses"]() as mock:
        options = {"base_url": mock.options["base_url"]}  # no "api": chosen per client
        await tenant.add_registry("auto", "", provider="openai", options=options, auth=mock.auth)
        await tenant.add_consumer("app", ["auto"])
        await until_known(proxy, tenant)
        response = await openai_sdk(proxy, tenant).responses.create(
            model="gpt-4o-mini", input="Hi", store=False, include=["reasoning.encrypted_content"]
        )
        assert response.output_text == "Hello from responses"
        sent = mock.requests[-1]
        assert sent.path == "/v1/responses"
        # the same format: the body passes through, fields only OpenAI knows included
        assert sent.body["store"] is False
        assert sent.body["include"] == ["reasoning.encrypted_content"]
