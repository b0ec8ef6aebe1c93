"""A body that is JSON but not the route's format (a field of the wrong type, anywhere) is
a 400 in the client's error shape when the proxy has to translate it, never a 500 with a
traceback (the fuzz of the inbound routes found ``"tools": 5`` on ``/v1/responses``)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import pytest_asyncio

from trustgate_testkit.proxy.local import LocalProxy, local_fixtures
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

# (consumer, route): every translation the proxy makes for a client
TRANSLATED = [
    ("openai", "/v1/responses"),
    ("openai", "/v1/messages"),
    ("claude", "/v1/chat/completions"),
    ("claude", "/v1/responses"),
]
BASE: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
    "/v1/messages": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    "/v1/responses": {"model": "m", "input": "x"},
}
WRONG = [5, "x", [5], [[]], {"a": 5}, [{"type": 5}], [{"role": 5, "content": 5}], None, True]
FIELDS = ["messages", "input", "tools", "tool_choice", "system", "instructions", "max_tokens"]


@pytest_asyncio.fixture
async def routes(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, claude: AnthropicMock
) -> Tenant:
    await tenant.add_registry("gpt", upstream.url)
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_consumer("openai", ["gpt"])
    await tenant.add_consumer("claude", ["claude"])
    return tenant


@pytest.mark.parametrize(("consumer", "route"), TRANSLATED)
async def test_a_wrongly_typed_field_is_a_400_in_the_clients_shape(
    proxy: LocalProxy, routes: Tenant, consumer: str, route: str, caplog: Any
) -> None:
    caplog.set_level(logging.ERROR, logger="trustgate_proxy")
    headers = {"X-AG-Gateway-Slug": routes.slug, "X-AG-API-Key": routes.keys[consumer]}
    url = f"{proxy.url}/{routes.consumers[consumer].slug}{route}"
    refused: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for field in FIELDS:
            for value in WRONG:
                resp = await http.post(url, json={**BASE[route], field: value}, headers=headers)
                if resp.status_code >= 500:
                    refused[f"{field}={value!r}"] = resp.status_code
                elif resp.status_code >= 400:
                    body = resp.json()
                    if route == "/v1/messages":
                        assert body["type"] == "error", body
                    assert body["error"], body
    assert not refused, refused
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
