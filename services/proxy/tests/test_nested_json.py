"""A body nested deeper than the proxy's limit is a 400 in the client's error shape, on
every path that re-serialises it (a streaming chat, a model mapping, a translation), where
it was a 500 and a logged traceback (orjson writes at most 254 levels). A body nested to
the limit is served: no path re-serialising it can meet orjson's limit."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import pytest_asyncio

from trustgate_proxy.domain.nesting import MAX_DEPTH
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, AnthropicMock
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

TOO_DEEP = 300  # between orjson's write limit (254) and its read limit (1024)
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def deep(levels: int) -> Any:
    """A JSON value of ``levels`` nested arrays."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def chat(depth: int, **fields: Any) -> dict[str, Any]:
    """A chat request whose ``metadata`` makes the whole body ``depth`` levels deep."""
    return {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "metadata": {"deep": deep(depth - 2)},
        **fields,
    }


def with_deep_tool(doc: dict[str, Any], depth: int) -> dict[str, Any]:
    """``doc`` with a tool whose parameters make it ``depth`` levels deep (tools survive a
    translation, unknown fields do not)."""
    # body → tools → tool → function → parameters → properties → a → default → ...
    schema = {"type": "object", "properties": {"a": {"type": "array", "default": deep(depth - 7)}}}
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    return {**{k: v for k, v in doc.items() if k != "metadata"}, "tools": [tool]}


@pytest_asyncio.fixture
async def routes(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, claude: AnthropicMock
) -> Tenant:
    """Consumers ``plain`` (OpenAI Chat), ``mapped`` (a model mapping on the registry) and
    ``claude`` (an Anthropic registry: OpenAI Chat clients are translated)."""
    await tenant.add_registry("plain", upstream.url)
    await tenant.add_registry(
        "mapped", "", options={"base_url": upstream.url, "model_mapping": {"alias": "m"}}
    )
    await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
    await tenant.add_consumer("plain", ["plain"])
    await tenant.add_consumer("mapped", ["mapped"])
    await tenant.add_consumer("claude", ["claude"])
    return tenant


async def post(
    proxy: LocalProxy, tenant: Tenant, consumer: str, route: str, body: dict[str, Any]
) -> httpx.Response:
    headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys[consumer]}
    url = f"{proxy.url}/{tenant.consumers[consumer].slug}{route}"
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers=headers)


def paths(depth: int) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """(consumer, route, body) of each path that re-serialises a request."""
    return {
        "streaming chat, passed through": ("plain", CHAT, chat(depth, stream=True)),
        "model mapping": ("mapped", CHAT, chat(depth, model="alias")),
        "chat translated to Anthropic": ("claude", CHAT, with_deep_tool(chat(depth), depth)),
        "messages translated to OpenAI Chat": (
            "plain",
            MESSAGES,
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [
                    {
                        "name": "f",
                        "input_schema": {
                            "type": "object",
                            # body → tools → tool → input_schema → properties → a → default
                            "properties": {"a": {"default": deep(depth - 6)}},
                        },
                    }
                ],
            },
        ),
    }


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, TOO_DEEP])
@pytest.mark.parametrize("path", list(paths(TOO_DEEP)))
async def test_a_body_nested_too_deep_is_a_400_in_the_clients_shape_without_a_traceback(
    proxy: LocalProxy, routes: Tenant, path: str, depth: int, caplog: Any
) -> None:
    consumer, route, body = paths(depth)[path]
    caplog.set_level(logging.ERROR)
    resp = await post(proxy, routes, consumer, route, body)
    assert resp.status_code == 400, resp.text
    message = f"the body's JSON nests deeper than {MAX_DEPTH} levels"
    if route == MESSAGES:
        assert resp.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": message},
        }
    else:
        assert resp.json() == {"error": "invalid_request", "message": message}
    assert not caplog.records


@pytest.mark.parametrize("path", list(paths(MAX_DEPTH)))
async def test_a_body_nested_to_the_limit_is_served(
    proxy: LocalProxy, routes: Tenant, path: str, caplog: Any
) -> None:
    consumer, route, body = paths(MAX_DEPTH)[path]
    caplog.set_level(logging.ERROR)
    resp = await post(proxy, routes, consumer, route, body)
    assert resp.status_code == 200, resp.text
    assert not caplog.records
