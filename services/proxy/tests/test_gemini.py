"""The official ``openai`` (chat) and ``anthropic`` (messages) SDKs against the proxy routed
to a ``gemini`` registry (API key) and a ``vertex`` registry (a service account whose
tokens the mock's token endpoint mints after verifying the signed JWT): the mock
(``trustgate_testkit.proxy.mock_gemini``) answers Gemini's JSON and ``alt=sse`` streams,
which the proxy translates into each client's format. And an ``azure`` registry with an
Entra ID service principal (``trustgate_testkit.proxy.mock_entra``): its bearer is minted
once, reused, and refreshed before it expires."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_entra import azure_entra_auth, serve_entra_mock
from trustgate_testkit.proxy.mock_gemini import (
    GEMINI_KEY,
    LOCATION,
    PROJECT,
)
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import (
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

MODEL = "gemini-2.5-flash"
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest_asyncio.fixture(params=["gemini", "vertex"])
async def google(request: pytest.FixtureRequest) -> AsyncIterator[ProviderMock]:
    async with MOCKS[request.param]() as mock:
        yield mock


@pytest_asyncio.fixture
async def routed(tenant: Tenant, google: ProviderMock, proxy: RunningProxy) -> Tenant:
    return await route_to(proxy, tenant, google, "google")


def _path(mock: ProviderMock, model: str, action: str) -> str:
    if mock.provider == "vertex":
        prefix = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models"
    else:
        prefix = "/v1beta/models"
    return f"{prefix}/{model}:{action}"


def _credentials_checked(mock: ProviderMock) -> None:
    sent = mock.requests[-1]
    if mock.provider == "vertex":
        assert sent.headers["Authorization"].startswith("Bearer ya29.mock-")
    else:
        assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert "model" not in sent.body


# -- openai SDK (chat completions) --------------------------------------------------------


async def test_openai_chat_gets_a_gemini_answer_with_usage(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    raw = await openai_sdk(proxy, routed).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello!"},
        ],
        temperature=0.5,
        max_tokens=50,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"Hello from {google.name}"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert raw.headers["x-selected-provider"] == google.provider
    _credentials_checked(google)
    sent = google.requests[-1]
    assert sent.path == _path(google, MODEL, "generateContent")
    assert sent.system == "Be brief."
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hello!"}]}]
    assert sent.body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 50}


async def test_openai_chat_stream_arrives_in_deltas(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["Hello", " from", f" {google.name}"]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (11, 7)
    assert google.requests[-1].path == _path(google, MODEL, "streamGenerateContent") + "?alt=sse"


async def test_openai_chat_tool_round_trip_through_gemini(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    client = openai_sdk(proxy, routed)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.chat.completions.create(
        model=f"{MODEL}-tools", messages=messages, tools=[WEATHER_OPENAI]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.replace(" ", "") == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert call.id  # synthesised: Gemini has no call ids
    declared = google.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather"
    assert "additionalProperties" not in declared["parameters"]  # stripped for Gemini
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model=f"{MODEL}-tools", messages=messages, tools=[WEATHER_OPENAI]
    )
    assert final.choices[0].message.content == "The weather is sunny"
    sent = google.requests[-1]
    assert sent.tool_result == "sunny"
    response = sent.body["contents"][-1]["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"content": "sunny"}}


async def test_openai_chat_streamed_tool_call(proxy: RunningProxy, routed: Tenant) -> None:
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=f"{MODEL}-tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_OPENAI],
        stream=True,
    )
    chunks = [c async for c in stream]
    calls = [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    args = "".join(tc.function.arguments or "" for tc in calls if tc.function is not None)
    assert args.replace(" ", "") == '{"city":"Paris"}'  # Gemini sends a call whole
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["tool_calls"]


async def test_openai_chat_image_reaches_gemini_inline(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    await ask_about_png(openai_sdk(proxy, routed), MODEL)
    sent = google.requests[-1]
    assert sent.has_image
    assert sent.body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": PNG}
    }


async def test_openai_chat_image_by_url_is_refused_with_a_reason(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    assert "inline" in await refused_image_url(openai_sdk(proxy, routed), MODEL)
    assert google.requests == []


async def test_openai_chat_stream_cut_upstream_ends_with_an_error(
    proxy: RunningProxy, routed: Tenant
) -> None:
    stream = await openai_sdk(proxy, routed).chat.completions.create(
        model=f"{MODEL}-cut", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    seen = await stream_text_until_error(stream)
    assert seen == ["Hello"]


# -- anthropic SDK (messages) -------------------------------------------------------------


async def test_anthropic_messages_get_a_gemini_answer(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
) -> None:
    message = await anthropic_sdk(proxy, routed).messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello!"}],
        stop_sequences=["END"],
    )
    assert [b.text for b in message.content if b.type == "text"] == [f"Hello from {google.name}"]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 11
    _credentials_checked(google)
    sent = google.requests[-1]
    assert sent.system == "Be brief."
    assert sent.body["generationConfig"] == {"maxOutputTokens": 100, "stopSequences": ["END"]}


async def test_anthropic_messages_image_and_thinking_through_gemini(
    proxy: RunningProxy, routed: Tenant, google: ProviderMock
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
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "Thinking about a greeting."
    sent = google.requests[-1]
    assert sent.has_image
    assert sent.body["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True,
        "thinkingBudget": 1024,
    }


async def test_anthropic_messages_stream_cut_upstream_ends_with_an_error_event(
    proxy: RunningProxy, routed: Tenant
) -> None:
    seen = await messages_text_until_error(anthropic_sdk(proxy, routed), f"{MODEL}-cut")
    assert seen == ["Hello"]


# -- Azure with an Entra ID service principal ----------------------------------------------


@pytest.mark.parametrize(
    ("lifetimes", "mints", "bearers"),
    [
        ([3599], 1, [0, 0, 0]),  # minted once, reused
        ([30, 3599], 2, [0, 1, 1]),  # the first expires within the margin: refreshed once
    ],
    ids=["reused", "refreshed-before-expiry"],
)
async def test_azure_entra_token_is_minted_once_and_refreshed_before_expiry(
    tenant: Tenant,
    proxy: RunningProxy,
    lifetimes: list[int],
    mints: int,
    bearers: list[int],
) -> None:
    async with serve_mock("azure") as chat, serve_entra_mock() as login:
        chat.entra_tokens = login.tokens
        login.expires_in = lifetimes
        await tenant.add_registry(
            "azure",
            "",
            provider="azure",
            options={"authority_host": login.url},
            auth=azure_entra_auth(chat.url),
        )
        await tenant.add_consumer("app", ["azure"])
        await until_known(proxy, tenant)
        client = openai_sdk(proxy, tenant)
        for _ in range(3):
            completion = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
            )
            assert completion.choices[0].message.content == "Hello from azure"
        assert login.mints == mints
        sent = [r.headers["Authorization"] for r in chat.recorded]
        assert sent == [f"Bearer {login.tokens[i]}" for i in bearers]
        assert all("api-key" not in r.headers for r in chat.recorded)
        assert chat.recorded[-1].path.startswith("/openai/deployments/gpt-4o/chat/completions")
