"""The official SDKs pointed at a running proxy, and a tenant routed to a provider mock:
the setup the SDK tests share (tests cannot import each other under
``--import-mode=importlib``).

Needs the ``openai`` and ``anthropic`` SDKs (the workspace's dev dependencies).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import anthropic
import openai
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.providers import ProviderMock
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

Client = TypeVar("Client", AsyncOpenAI, AsyncAnthropic)

#: The SDK clients the tests made and may have left open: closed at each test's teardown
#: (`close_sdk_clients`, an autouse fixture of ``trustgate_testkit.fixtures``).
_made: weakref.WeakSet[AsyncOpenAI | AsyncAnthropic] = weakref.WeakSet()


def tracked(client: Client) -> Client:
    """``client``, closed at the end of the test that made it."""
    _made.add(client)
    return client


async def close_sdk_clients() -> None:
    """Close every SDK client a test made (closing one twice is harmless).

    Why: a client dropped unclosed is freed later by the cyclic garbage collector,
    whenever allocations trigger it, in some other test. asyncio's transport finalizer
    then closes its pooled sockets, freeing their file descriptors, while the SDK's
    finalizer schedules ``aclose()``, which later aborts those transports by their old
    descriptor numbers (CPython gh-130141, plain asyncio; the planes run uvloop): a
    connection that other test opened meanwhile may hold one of them and loses its
    reader, so its request or its answer is never read. Closed at its own test's end, a
    client's sockets are gone before any other test opens a connection.
    """
    clients = list(_made)
    _made.clear()
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)


def gateway_headers(tenant: Tenant, consumer: str = "app") -> dict[str, str]:
    """The gateway's slug and the consumer's key, as headers."""
    return {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys[consumer]}


def openai_sdk(
    proxy: RunningProxy, tenant: Tenant, consumer: str = "app", *, timeout: float = 15
) -> AsyncOpenAI:
    """The ``openai`` SDK at the consumer's ``…/{slug}/v1``, no retries."""
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(tenant.consumers[consumer]),
            api_key="unused",
            max_retries=0,
            timeout=timeout,
            default_headers=gateway_headers(tenant, consumer),
        )
    )


def anthropic_sdk(
    proxy: RunningProxy, tenant: Tenant, consumer: str = "app", *, timeout: float = 15
) -> AsyncAnthropic:
    """The ``anthropic`` SDK at the consumer's ``…/{slug}`` (it adds ``/v1``), no retries."""
    return tracked(
        AsyncAnthropic(
            base_url=f"{proxy.url}/{tenant.consumers[consumer].slug}",
            api_key="unused",
            max_retries=0,
            timeout=timeout,
            default_headers=gateway_headers(tenant, consumer),
        )
    )


async def route_to(
    proxy: RunningProxy,
    tenant: Tenant,
    mock: ProviderMock,
    registry: str = "upstream",
    *,
    options: dict[str, Any] | None = None,
    consumer: str = "app",
) -> Tenant:
    """A registry for ``mock`` (its options, updated by ``options``) and a consumer bound
    to it, known to the proxy."""
    await tenant.add_registry(
        registry,
        "",
        provider=mock.provider,
        options={**mock.options, **(options or {})},
        auth=mock.auth,
    )
    await tenant.add_consumer(consumer, [registry])
    await until_known(proxy, tenant)
    return tenant


async def route_to_url(
    proxy: RunningProxy, tenant: Tenant, url: str, registry: str = "primary", consumer: str = "app"
) -> Tenant:
    """A registry for the OpenAI-compatible upstream at ``url`` and a consumer bound to it,
    known to the proxy."""
    await tenant.add_registry(registry, url)
    await tenant.add_consumer(consumer, [registry])
    await until_known(proxy, tenant)
    return tenant


# -- what the SDK tests send ---------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
"""A 1x1 PNG, base64."""

WEATHER_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}
CHAT_WEATHER_TOOL: Any = {  # the ``openai`` SDK's chat completions shape
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": WEATHER_PARAMETERS,
    },
}
MESSAGES_WEATHER_TOOL: Any = {  # the ``anthropic`` SDK's messages shape
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": WEATHER_PARAMETERS,
}
RESPONSES_WEATHER_TOOL: Any = {  # the ``openai`` SDK's responses shape
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": WEATHER_PARAMETERS,
    "strict": False,
}


# -- what the SDK tests check --------------------------------------------------------------


async def ask_about_png(client: AsyncOpenAI, model: str) -> None:
    """A chat completion with a text part and the :data:`PNG` as a data URL."""
    await client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )


async def refused_image_url(client: AsyncOpenAI, model: str) -> str:
    """The error text of a chat completion with an image by URL, which must be refused (400)."""
    try:
        await client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                }
            ],
        )
    except openai.BadRequestError as error:
        return str(error)
    raise AssertionError("an image by URL was not refused")


async def stream_text_until_error(stream: Any) -> list[str]:
    """The text deltas of an ``openai`` chat completion stream that must end in an
    ``openai.APIError`` (within 15 s)."""
    seen: list[str] = []
    try:
        async with asyncio.timeout(15):
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
    except openai.APIError:
        return seen
    raise AssertionError("the stream ended without an APIError")


async def messages_text_until_error(client: AsyncAnthropic, model: str) -> list[str]:
    """The text deltas of an ``anthropic`` messages stream ("Hi", 100 tokens) that must end
    in an ``anthropic.APIError`` (within 15 s)."""
    seen: list[str] = []
    try:
        async with asyncio.timeout(15):
            async with client.messages.stream(
                model=model, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
            ) as stream:
                async for text in stream.text_stream:
                    seen.append(text)
    except anthropic.APIError:
        return seen
    raise AssertionError("the stream ended without an APIError")


# -- a client that leaves ------------------------------------------------------------------


async def abandon_plain_call(
    session: aiohttp.ClientSession,
    url: str,
    *,
    json: dict[str, Any],
    headers: dict[str, str],
    started: Callable[[], object],
    within: float,
) -> None:
    """POST, wait until ``started()`` (the upstream is working), then give up: the client
    cancels and closes its connection."""
    request = asyncio.ensure_future(session.post(url, json=json, headers=headers))
    await wait_for(started, timeout=within)
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request


async def until_client_left(client_gone: asyncio.Event, log: Any, *, within: float) -> None:
    """Wait until the upstream noticed the client left and a request event arrived in
    ``log`` (from the ``events`` fixture)."""
    await asyncio.wait_for(client_gone.wait(), within)
    await wait_for(lambda: log.events, timeout=within)


def assert_one_client_disconnected(log: Any, *, stream: bool | None = None) -> None:
    """``log`` holds exactly one request event: 499 ``client_disconnected`` (and, unless
    ``stream`` is None, for a stream or not)."""
    (event,) = log.events
    assert (event.status, event.error_kind) == (499, "client_disconnected")
    if stream is not None:
        assert event.stream == stream
