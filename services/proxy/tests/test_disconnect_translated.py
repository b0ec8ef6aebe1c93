"""A client that disconnects during a translated call (client and provider speak different
wire formats): the upstream connection is dropped with it and the request event records
499 ``client_disconnected``, for streams and plain calls alike."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, serve_anthropic
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import (
    abandon_plain_call,
    assert_one_client_disconnected,
    gateway_headers,
    openai_sdk,
    route_to_url,
    until_client_left,
)
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()

MESSAGES_BODY: dict[str, Any] = {"max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}


async def test_openai_client_leaving_a_translated_anthropic_stream_drops_the_upstream(
    proxy: RunningProxy, tenant: Tenant, bus: Any, events: Any
) -> None:
    async with serve_anthropic("anthropic") as claude:
        await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await tenant.add_consumer("app", ["claude"])
        await until_known(proxy, tenant)
        async with events(bus, tenant.gateway.id) as log:
            client = openai_sdk(proxy, tenant)
            stream = await client.chat.completions.create(
                model="claude-opus-4-7-slow",
                messages=[{"role": "user", "content": "Hi"}],
                stream=True,
            )
            chunks = aiter(stream)
            first = ""
            while not first:  # the role chunk may come before the first text
                chunk = await asyncio.wait_for(anext(chunks), 10)
                first = (chunk.choices[0].delta.content or "") if chunk.choices else ""
            assert first == "Hello"
            await stream.close()  # the client goes away while Anthropic holds the stream
            await client.close()
            await until_client_left(claude.client_gone, log, within=10)
        assert not claude.finished.is_set()
    assert_one_client_disconnected(log, stream=True)


async def test_anthropic_client_leaving_a_translated_openai_stream_drops_the_upstream(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                f"{proxy.url}/{tenant.consumers['app'].slug}/v1/messages",
                json={**MESSAGES_BODY, "model": "gpt-4o-hang", "stream": True},
                headers=gateway_headers(tenant),
            )
            assert resp.status == 200
            seen = b""
            while b"content_block_delta" not in seen:  # the first text delta arrived
                seen += await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
            resp.close()  # the client goes away mid-stream
        await until_client_left(upstream.client_gone, log, within=10)
    assert_one_client_disconnected(log, stream=True)


async def test_anthropic_client_leaving_a_translated_plain_call_drops_the_upstream(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        async with aiohttp.ClientSession() as session:
            await abandon_plain_call(
                session,
                f"{proxy.url}/{tenant.consumers['app'].slug}/v1/messages",
                json={**MESSAGES_BODY, "model": "gpt-4o-hang"},
                headers=gateway_headers(tenant),
                started=lambda: upstream.requests,
                within=10,
            )
        await until_client_left(upstream.client_gone, log, within=10)
    assert_one_client_disconnected(log, stream=False)
