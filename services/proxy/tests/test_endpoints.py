"""The inbound endpoints besides generation: ``/v1/embeddings`` (OpenAI-format providers),
``/v1/messages/count_tokens`` (Anthropic providers), the unversioned aliases, and the 400s
a request that cannot be translated gets, in the client's own error shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()


async def _consumer(proxy: RunningProxy, tenant: Tenant, mocks: dict[str, ProviderMock]) -> None:
    for name, mock in mocks.items():
        await tenant.add_registry(
            name, "", provider=mock.provider, options=mock.options, auth=mock.auth
        )
        await tenant.add_consumer(name, [name])
    await until_known(proxy, tenant)


def _headers(tenant: Tenant, consumer: str) -> dict[str, str]:
    return {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys[consumer]}


def _openai(proxy: RunningProxy, tenant: Tenant, consumer: str) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(tenant.consumers[consumer]),
            api_key="unused",
            max_retries=0,
            timeout=10,
            default_headers=_headers(tenant, consumer),
        )
    )


def _anthropic(proxy: RunningProxy, tenant: Tenant, consumer: str) -> AsyncAnthropic:
    return tracked(
        AsyncAnthropic(
            base_url=f"{proxy.url}/{tenant.consumers[consumer].slug}",
            api_key="unused",
            max_retries=0,
            timeout=10,
            default_headers=_headers(tenant, consumer),
        )
    )


async def test_embeddings_pass_through_to_openai_format_providers_and_usage_is_recorded(
    proxy: RunningProxy, tenant: Tenant, bus: Any, events: Any
) -> None:
    async with MOCKS["openai"]() as oai, MOCKS["azure"]() as azure, MOCKS["anthropic"]() as claude:
        await _consumer(proxy, tenant, {"openai": oai, "azure": azure, "claude": claude})
        async with events(bus, tenant.gateway.id) as log:
            result = await _openai(proxy, tenant, "openai").embeddings.create(
                model="text-embedding-3-small", input=["a", "b"]
            )
            # the SDK asks OpenAI for base64 (float32) and decodes it: float32 values
            assert [d.embedding for d in result.data] == [pytest.approx([0.1, 0.2, 0.3])] * 2
            assert oai.requests[-1].path == "/v1/embeddings"
            assert oai.requests[-1].body["input"] == ["a", "b"]
            await _openai(proxy, tenant, "azure").embeddings.create(model="emb", input="a")
            assert azure.requests[-1].path.startswith("/openai/deployments/emb/embeddings?")
            with pytest.raises(openai.BadRequestError) as caught:
                await _openai(proxy, tenant, "claude").embeddings.create(model="m", input="a")
            assert "OpenAI-format" in caught.value.response.text
            assert claude.requests == []
            await wait_for(lambda: len(log.events) >= 3, timeout=10)
    first = next(e for e in log.events if e.status == 200)
    assert first.path == "/v1/embeddings" and first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.total_tokens) == (8, 8)


async def test_count_tokens_is_forwarded_to_anthropic_and_refused_elsewhere(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["anthropic"]() as claude, MOCKS["openai"]() as oai:
        await _consumer(proxy, tenant, {"claude": claude, "openai": oai})
        counted = await _anthropic(proxy, tenant, "claude").messages.count_tokens(
            model="claude-mock-1", messages=[{"role": "user", "content": "Hi"}]
        )
        assert counted.input_tokens == 11
        assert claude.requests[-1].path == "/v1/messages/count_tokens"
        with pytest.raises(anthropic.BadRequestError) as caught:
            await _anthropic(proxy, tenant, "openai").messages.count_tokens(
                model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
            )
        assert "count_tokens" in caught.value.response.text
        assert oai.requests == []


async def test_unversioned_aliases_reach_the_same_routes(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["anthropic"]() as claude:
        await _consumer(proxy, tenant, {"claude": claude})
        root = f"{proxy.url}/{tenant.consumers['claude'].slug}"
        body = {
            "model": "claude-mock-1",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        async with httpx.AsyncClient(timeout=10) as http:
            for path in ("/messages", "/v1/messages"):
                resp = await http.post(root + path, json=body, headers=_headers(tenant, "claude"))
                assert resp.status_code == 200, resp.text
                assert resp.json()["content"][0]["text"] == "Hello from anthropic"
                assert resp.headers["x-selected-provider"] == "anthropic"
            resp = await http.get(root + "/v1/responses", headers=_headers(tenant, "claude"))
            assert resp.status_code == 405


async def test_a_request_that_cannot_be_translated_gets_a_400_in_the_clients_shape(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["anthropic"]() as claude:
        await _consumer(proxy, tenant, {"claude": claude})
        with pytest.raises(openai.BadRequestError) as caught:
            await _openai(proxy, tenant, "claude").chat.completions.create(
                model="claude-mock-1", messages=[{"role": "user", "content": "Hi"}], n=2
            )
        assert caught.value.response.json()["error"]["type"] == "invalid_request_error"
        assert "'n'" in caught.value.message
        assert claude.requests == []
