"""The official ``openai`` (chat) and ``anthropic`` (messages) SDKs against the proxy routed
to a ``bedrock`` registry: the Bedrock mock (``trustgate_testkit.proxy.mock_bedrock``) checks every
request's SigV4 signature and answers Converse JSON / ConverseStream event-stream frames,
which the proxy translates into each client's format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_bedrock import serve_bedrock
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import (
    CHAT_WEATHER_TOOL,
    PNG,
    anthropic_sdk,
    ask_about_png,
    messages_text_until_error,
    openai_sdk,
    refused_image_url,
    route_to,
    stream_text_until_error,
)
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()

MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"


@pytest_asyncio.fixture
async def bedrock() -> AsyncIterator[ProviderMock]:
    async with MOCKS["bedrock"]() as mock:
        yield mock


@pytest_asyncio.fixture
async def routed(tenant: Tenant, bedrock: ProviderMock, proxy: RunningProxy) -> Tenant:
    return await route_to(proxy, tenant, bedrock, "bedrock")


def _signed(mock: ProviderMock) -> None:
    sent = mock.requests[-1]
    assert sent.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "model" not in sent.body


# -- openai SDK (chat completions) --------------------------------------------------------


async def test_openai_chat_gets_a_bedrock_answer_with_usage(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    raw = await openai_sdk(proxy, routed).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello!"},
        ],
    )
    completion = raw.parse()
    assert completion.model == MODEL  # Converse names no model: the one sent
    assert completion.choices[0].message.content == "Hello from bedrock"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert raw.headers["x-selected-provider"] == "bedrock"
    _signed(bedrock)
    sent = bedrock.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.system == "Be brief."
    assert sent.body["messages"] == [{"role": "user", "content": [{"text": "Hello!"}]}]


async def test_openai_chat_stream_arrives_in_deltas(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["Hello", " from", " bedrock"]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].prompt_tokens == 11 and usage[-1].completion_tokens == 7
    assert bedrock.requests[-1].path == f"/model/{MODEL}/converse-stream"


async def test_openai_chat_stream_reaches_the_client_before_bedrock_finishes(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with serve_bedrock("bedrock") as mock:
        await tenant.add_registry(
            "held", "", provider="bedrock", options={"base_url": mock.url}, auth=mock.auth()
        )
        await tenant.add_consumer("app", ["held"])
        await until_known(proxy, tenant)
        stream = await openai_sdk(proxy, tenant).chat.completions.create(
            model=f"{MODEL}-slow", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        chunks = aiter(stream)
        first = await asyncio.wait_for(anext(chunks), 10)
        while not (first.choices and first.choices[0].delta.content):
            first = await asyncio.wait_for(anext(chunks), 10)
        assert first.choices[0].delta.content == "Hello"
        assert not mock.finished.is_set()  # Bedrock is still holding the rest
        mock.release.set()
        rest = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        assert rest == " from bedrock"


async def test_openai_chat_tool_round_trip_through_bedrock(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    client = openai_sdk(proxy, routed)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.chat.completions.create(
        model=f"{MODEL}-tools", messages=messages, tools=[CHAT_WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.replace(" ", "") == '{"city":"Paris"}'  # type: ignore[union-attr]
    sent = bedrock.requests[-1].body
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model=f"{MODEL}-tools", messages=messages, tools=[CHAT_WEATHER_TOOL]
    )
    assert final.choices[0].message.content == "The weather is sunny"
    assert bedrock.requests[-1].tool_result == "sunny"


async def test_openai_chat_streamed_tool_call_arrives_in_argument_deltas(
    proxy: RunningProxy, routed: Tenant
) -> None:
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=f"{MODEL}-tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[CHAT_WEATHER_TOOL],
        stream=True,
    )
    chunks = [c async for c in stream]
    deltas = [
        tc.function.arguments
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
        if tc.function is not None and tc.function.arguments
    ]
    assert len(deltas) >= 2 and "".join(deltas) == '{"city":"Paris"}'
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["tool_calls"]


async def test_openai_chat_image_reaches_bedrock_as_bytes(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    await ask_about_png(openai_sdk(proxy, routed), MODEL)
    sent = bedrock.requests[-1]
    assert sent.has_image
    image = sent.body["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": PNG}}


async def test_openai_chat_image_by_url_is_refused_with_a_reason(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    assert "bytes" in await refused_image_url(openai_sdk(proxy, routed), MODEL)
    assert bedrock.requests == []


async def test_openai_chat_stream_with_a_corrupt_frame_ends_with_an_error_event(
    proxy: RunningProxy, routed: Tenant
) -> None:
    # (a plain cut stream: test_matrix.py, for every client)
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=f"{MODEL}-badcrc", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    seen = await stream_text_until_error(stream)
    assert seen[:1] == ["Hello"]
    assert " garbled" not in seen


# -- anthropic SDK (messages) -------------------------------------------------------------


async def test_anthropic_messages_get_a_bedrock_answer(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    message = await anthropic_sdk(proxy, routed).messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello!"}],
    )
    assert [b.text for b in message.content if b.type == "text"] == ["Hello from bedrock"]
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 11
    _signed(bedrock)
    sent = bedrock.requests[-1]
    assert sent.system == "Be brief."
    assert sent.body["inferenceConfig"]["maxTokens"] == 100


async def test_anthropic_messages_image_and_thinking_through_bedrock(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    message = await anthropic_sdk(proxy, routed).messages.create(
        model=f"{MODEL}-thinking",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "What is it?"},
                ],
            }
        ],
    )
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.signature == "sig-mock-1"
    sent = bedrock.requests[-1]
    assert sent.has_image
    assert sent.body["additionalModelRequestFields"]["thinking"] == {
        "type": "enabled",
        "budget_tokens": 1024,
    }


async def test_anthropic_messages_stream_with_a_corrupt_frame_ends_with_an_error_event(
    proxy: RunningProxy, routed: Tenant
) -> None:
    seen = await messages_text_until_error(anthropic_sdk(proxy, routed), f"{MODEL}-badcrc")
    assert seen[:1] == ["Hello"]
    assert " garbled" not in seen


# -- openai SDK (responses) ---------------------------------------------------------------


async def test_openai_responses_get_a_bedrock_answer(
    proxy: RunningProxy, routed: Tenant, bedrock: ProviderMock
) -> None:
    response = await openai_sdk(proxy, routed).responses.create(
        model=MODEL, instructions="Be brief.", input="Hello!"
    )
    assert response.output_text == "Hello from bedrock"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert bedrock.requests[-1].system == "Be brief."


async def test_openai_responses_stream_and_a_corrupt_frame(
    proxy: RunningProxy, routed: Tenant
) -> None:
    client = openai_sdk(proxy, routed)
    stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
    deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
    assert deltas == ["Hello", " from", " bedrock"]
    broken = await client.responses.create(model=f"{MODEL}-badcrc", input="Hi", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="corrupt event-stream frame"):
        async with asyncio.timeout(15):
            async for event in broken:
                if event.type == "response.output_text.delta":
                    seen.append(event.delta)
    assert seen == ["Hello"]
