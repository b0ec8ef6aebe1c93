"""The official ``anthropic`` SDK against the proxy's ``/v1/messages``, routed (a) to an
``anthropic`` registry (same format: the body passes through untouched) and (b) to an
``openai`` registry (translated both ways); and (c) the ``openai`` SDK's chat completions
routed to the ``anthropic`` registry (translated). The Anthropic mock
(``trustgate_testkit.proxy.mock_anthropic``) speaks the Messages API's JSON and SSE exactly
and refuses what the API refuses; the OpenAI mock speaks Chat Completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import MESSAGES_WEATHER_TOOL, PNG, tracked
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()


@pytest_asyncio.fixture
async def gpt() -> AsyncIterator[MockUpstream]:
    async with serve_mock("openai") as mock:
        yield mock


@pytest_asyncio.fixture
async def to_anthropic(tenant: Tenant, claude: AnthropicMock, proxy: RunningProxy) -> Tenant:
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_consumer("app", ["claude"])
    await until_known(proxy, tenant)
    return tenant


@pytest_asyncio.fixture
async def to_openai(tenant: Tenant, gpt: MockUpstream, proxy: RunningProxy) -> Tenant:
    await tenant.add_registry(
        "gpt",
        "",
        provider="openai",
        options={"base_url": gpt.url, "api": "completions"},
        auth={"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
    )
    await tenant.add_consumer("app", ["gpt"])
    await until_known(proxy, tenant)
    return tenant


def sdk(proxy: RunningProxy, tenant: Tenant) -> AsyncAnthropic:
    """The SDK as an application would use it: the gateway key as its API key."""
    return tracked(
        AsyncAnthropic(
            base_url=f"{proxy.url}/{tenant.consumers['app'].slug}",
            api_key=tenant.keys["app"],
            max_retries=0,
            timeout=15,
            default_headers={"X-AG-Gateway-Slug": tenant.slug},
        )
    )


def texts(message: Any) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


# -- (a) same format: pass-through to Anthropic --------------------------------------------


async def test_a_message_passes_through_to_anthropic_with_the_registrys_key(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    raw = await sdk(proxy, to_anthropic).messages.with_raw_response.create(
        model="claude-opus-4-7",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello!"}],
    )
    message = await raw.parse()
    assert texts(message) == ["Hello from anthropic"]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (8, 3)
    assert message.usage.output_tokens == 7
    assert raw.headers["x-selected-provider"] == "anthropic"
    sent = claude.recorded[-1]
    assert sent.path == "/v1/messages"
    assert sent.system == "Be brief."
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert to_anthropic.keys["app"] not in str(sent.headers)  # the gateway key stays here


async def test_the_pass_through_body_reaches_anthropic_byte_for_byte(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    body = (
        b'{"model":"claude-opus-4-7", "max_tokens":64,\n "messages":[{"role":"user",'
        b'"content":"Hi"}], "future_field":{"kept":true}, "cache_control":{"type":"ephemeral"}}'
    )
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{proxy.url}/{to_anthropic.consumers['app'].slug}/v1/messages",
            data=body,
            headers={
                "X-AG-Gateway-Slug": to_anthropic.slug,
                "x-api-key": to_anthropic.keys["app"],
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            },
        )
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    assert answer["content"] == [
        {"type": "text", "text": "Hello from anthropic", "citations": None}
    ]
    assert claude.raw[-1] == body


async def test_a_stream_passes_through_in_deltas_before_anthropic_finishes(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    async with sdk(proxy, to_anthropic).messages.stream(
        model="claude-slow", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        chunks = aiter(stream.text_stream)
        first = await asyncio.wait_for(anext(chunks), 10)
        assert first == "Hello"
        assert not claude.finished.is_set()  # the upstream still holds the rest
        claude.release.set()
        rest = [t async for t in chunks]
        final = await stream.get_final_message()
    assert rest == [" from", " anthropic"]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (8, 7)


async def test_thinking_and_images_pass_through_to_anthropic(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    async with sdk(proxy, to_anthropic).messages.stream(
        model="claude-thinking",
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
    ) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert claude.recorded[-1].has_image


async def test_anthropic_errors_reach_the_sdk_as_anthropic_errors(
    proxy: RunningProxy, to_anthropic: Tenant
) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        await sdk(proxy, to_anthropic).messages.create(
            model="claude-ratelimited", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "rate_limit_error"


async def test_a_cut_anthropic_stream_ends_with_an_error_the_sdk_raises(
    proxy: RunningProxy, to_anthropic: Tenant
) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIError):
        async with asyncio.timeout(15):
            async with sdk(proxy, to_anthropic).messages.stream(
                model="claude-cut", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
            ) as stream:
                async for text in stream.text_stream:
                    seen.append(text)
    assert seen == ["Hello"]


# -- (b) translated: Anthropic clients, an OpenAI Chat provider ------------------------------


async def test_a_message_is_translated_to_openai_chat_and_back(
    proxy: RunningProxy, to_openai: Tenant, gpt: MockUpstream
) -> None:
    raw = await sdk(proxy, to_openai).messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello!"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-7"},
    )
    message = await raw.parse()
    assert texts(message) == ["Hello from openai"]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 11
    assert raw.headers["x-selected-provider"] == "openai"
    sent = gpt.recorded[-1]
    assert sent.system == "Be brief."
    last = sent.body["messages"][-1]
    assert last["role"] == "user"
    content = last["content"]
    assert (
        content if isinstance(content, str) else "".join(p["text"] for p in content)
    ) == "Hello!"
    assert sent.body["stop"] == ["END"]
    assert sent.body["user"] == "u-7"
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_a_translated_stream_arrives_in_deltas_before_openai_finishes(
    proxy: RunningProxy, to_openai: Tenant, gpt: MockUpstream
) -> None:
    async with sdk(proxy, to_openai).messages.stream(
        model="gpt-4o-slow", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        chunks = aiter(stream.text_stream)
        first = await asyncio.wait_for(anext(chunks), 10)
        assert first == "Hello"
        assert not gpt.finished.is_set()
        gpt.release.set()
        rest = [t async for t in chunks]
        final = await stream.get_final_message()
    assert rest == [" from", " openai"]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7
    assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == 11


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_round_trip_is_translated_to_openai_chat(
    proxy: RunningProxy, to_openai: Tenant, gpt: MockUpstream, streamed: bool
) -> None:
    client = sdk(proxy, to_openai)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first: anthropic.types.Message
    if streamed:
        async with client.messages.stream(
            model="gpt-4o-tools", max_tokens=100, messages=messages, tools=[MESSAGES_WEATHER_TOOL]
        ) as stream:
            first = await stream.get_final_message()
    else:
        first = await client.messages.create(
            model="gpt-4o-tools", max_tokens=100, messages=messages, tools=[MESSAGES_WEATHER_TOOL]
        )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    tools_sent = gpt.recorded[-1].body["tools"]
    assert tools_sent[0]["function"]["name"] == "get_weather"
    assert tools_sent[0]["function"]["parameters"] == MESSAGES_WEATHER_TOOL["input_schema"]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    final = await client.messages.create(
        model="gpt-4o-tools", max_tokens=100, messages=messages, tools=[MESSAGES_WEATHER_TOOL]
    )
    assert texts(final) == ["The weather is sunny"]
    assert final.stop_reason == "end_turn"
    sent = gpt.recorded[-1]
    assert sent.tool_result == "sunny"
    tool_messages = [m for m in sent.body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [use.id]


async def test_an_image_is_translated_to_an_openai_image_part(
    proxy: RunningProxy, to_openai: Tenant, gpt: MockUpstream
) -> None:
    await sdk(proxy, to_openai).messages.create(
        model="gpt-4o",
        max_tokens=10,
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
    sent = gpt.recorded[-1]
    assert sent.has_image
    (part,) = [p for p in sent.body["messages"][-1]["content"] if p["type"] == "image_url"]
    assert part["image_url"]["url"] == f"data:image/png;base64,{PNG}"


async def test_max_tokens_stops_map_to_anthropics_reason(
    proxy: RunningProxy, to_openai: Tenant, gpt: MockUpstream
) -> None:
    message = await sdk(proxy, to_openai).messages.create(
        model="gpt-4o-long", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.stop_reason == "max_tokens"
    assert (
        gpt.recorded[-1].body.get("max_tokens", gpt.recorded[-1].body.get("max_completion_tokens"))
        == 5
    )


async def test_an_openai_error_reaches_the_sdk_in_anthropics_shape(
    proxy: RunningProxy, to_openai: Tenant
) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        await sdk(proxy, to_openai).messages.create(
            model="gpt-4o-ratelimited", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }


async def test_a_cut_openai_stream_ends_with_anthropics_error_event(
    proxy: RunningProxy, to_openai: Tenant
) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIError) as caught:
        async with asyncio.timeout(15):
            async with sdk(proxy, to_openai).messages.stream(
                model="gpt-4o-cut", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
            ) as stream:
                async for text in stream.text_stream:
                    seen.append(text)
    assert seen[:1] == ["Hello"]
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "error"


async def test_a_raw_translated_stream_is_anthropics_event_sequence(
    proxy: RunningProxy, to_openai: Tenant
) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{proxy.url}/{to_openai.consumers['app'].slug}/v1/messages",
            json={
                "model": "gpt-4o",
                "max_tokens": 10,
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            headers={"X-AG-Gateway-Slug": to_openai.slug, "x-api-key": to_openai.keys["app"]},
        )
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        data = await resp.read()
    events = []
    for raw in data.split(b"\n\n"):
        if not raw.strip():
            continue
        lines = dict(line.split(b": ", 1) for line in raw.split(b"\n"))
        doc = orjson.loads(lines[b"data"])
        assert lines[b"event"].decode() == doc["type"]
        events.append(doc["type"])
    assert events[0] == "message_start"
    assert [e for e in events if e != "ping"][1:] == [
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


# -- (c) translated: OpenAI Chat clients, an Anthropic provider -----------------------------


def openai_sdk(proxy: RunningProxy, tenant: Tenant) -> openai.AsyncOpenAI:
    return tracked(
        openai.AsyncOpenAI(
            base_url=proxy.base_url(tenant.consumers["app"]),
            api_key=tenant.keys["app"],
            max_retries=0,
            timeout=15,
            default_headers={"X-AG-Gateway-Slug": tenant.slug},
        )
    )


async def test_an_openai_chat_call_reaches_anthropic_translated(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    completion = await openai_sdk(proxy, to_anthropic).chat.completions.create(
        model="claude-opus-4-7",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
        ],
        stop=["END"],
        user="u-9",
    )
    assert completion.choices[0].message.content == "Hello from anthropic"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    sent = claude.recorded[-1]
    assert sent.system == "Be brief."
    assert sent.has_image
    assert sent.body["max_tokens"] == 4096  # Anthropic requires one; the client sent none
    assert sent.body["stop_sequences"] == ["END"]
    assert sent.body["metadata"] == {"user_id": "u-9"}
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY


async def test_an_anthropic_stream_reaches_an_openai_chat_client_in_deltas(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    stream = await openai_sdk(proxy, to_anthropic).chat.completions.create(
        model="claude-slow",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = aiter(stream)
    first = ""
    while not first:
        chunk = await asyncio.wait_for(anext(chunks), 10)
        first = chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert first == "Hello"
    assert not claude.finished.is_set()
    claude.release.set()
    rest = [c async for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == " from anthropic"
    finishes = [
        c.choices[0].finish_reason for c in rest if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = [c.usage for c in rest if c.usage is not None]
    assert usage and (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (11, 7)


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_openai_chat_tool_round_trip_through_anthropic(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock, streamed: bool
) -> None:
    client = openai_sdk(proxy, to_anthropic)
    tool: Any = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": MESSAGES_WEATHER_TOOL["input_schema"]},
    }
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        stream = await client.chat.completions.create(
            model="claude-tools", messages=messages, tools=[tool], stream=True
        )
        chunks = [c async for c in stream]
        calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        call_id = next(tc.id for tc in calls if tc.id)
        arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
        finish = [
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        ]
        assert finish == ["tool_calls"]
    else:
        first = await client.chat.completions.create(
            model="claude-tools", messages=messages, tools=[tool]
        )
        assert first.choices[0].finish_reason == "tool_calls"
        (call,) = first.choices[0].message.tool_calls or []
        assert call.type == "function"
        call_id, arguments = call.id, call.function.arguments
    assert orjson.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model="claude-tools", messages=messages, tools=[tool]
    )
    assert final.choices[0].message.content == "The weather is sunny"
    sent = claude.recorded[-1]
    assert sent.tool_result == "sunny"
    assert sent.body["tools"] == [
        {"name": "get_weather", "input_schema": MESSAGES_WEATHER_TOOL["input_schema"]}
    ]


# -- model mapping and count_tokens ---------------------------------------------------------


async def test_an_openai_model_name_maps_to_claude_on_an_anthropic_registry(
    proxy: RunningProxy, tenant: Tenant, claude: AnthropicMock, bus: Any, events: Any
) -> None:
    await tenant.add_registry(
        "claude",
        "",
        provider="anthropic",
        options={"base_url": claude.url, "model_mapping": {"gpt-4o-mini": "claude-haiku-4-5"}},
        auth={"type": "api_key", "api_key": {"api_key": ANTHROPIC_KEY}},
    )
    await tenant.add_consumer("app", ["claude"])
    await until_known(proxy, tenant)
    async with events(bus, tenant.gateway.id) as log:
        raw = await openai_sdk(proxy, tenant).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        await wait_for(lambda: log.events, timeout=10)
    assert raw.parse().choices[0].message.content == "Hello from anthropic"
    assert claude.recorded[-1].body["model"] == "claude-haiku-4-5"
    assert raw.headers["x-selected-model"] == "claude-haiku-4-5"
    (event,) = log.events
    assert event.usage is not None and event.usage.cached_input_tokens == 3


async def test_count_tokens_passes_through_to_anthropic(
    proxy: RunningProxy, to_anthropic: Tenant, claude: AnthropicMock
) -> None:
    counted = await sdk(proxy, to_anthropic).messages.count_tokens(
        model="claude-opus-4-7", messages=[{"role": "user", "content": "Hi"}]
    )
    assert counted.input_tokens == 11
    assert claude.recorded[-1].path == "/v1/messages/count_tokens"
