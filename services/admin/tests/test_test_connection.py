"""``POST /v1/gateways/{gw}/registries/test-connection``: an operator tries a registry
before saving it (or a stored one): an MCP server's initialize and tools/list, an LLM
provider's models list; an upstream failure is ``ok: false`` naming the stage, a
malformed body a 422, and no answer repeats a secret."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trustgate_core.embedded import free_port
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, serve_anthropic_mock

BAD_KEY = "sk-ant-wrong-key-0001-abcd"
HEADER_SECRET = "Bearer mcp-secret-0002-efgh"


@pytest.fixture(scope="module")
def weather() -> Iterator[str]:
    with UpstreamThread("weather", free_port(), json_response=True) as url:
        yield url


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"tc-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _test(api: httpx.AsyncClient, gw: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(f"/v1/gateways/{gw}/registries/test-connection", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert isinstance(answer["latency_ms"], int) and answer["message"]
    return answer


async def test_an_mcp_server_is_initialized_and_its_tools_listed(
    api: httpx.AsyncClient, weather: str
) -> None:
    gw = await _gateway(api)
    answer = await _test(api, gw, {"type": "mcp", "mcp_target": {"url": weather}})
    assert answer["ok"] is True and answer["stage"] == "done"
    assert answer["tool_count"] == 3

    r = await api.post(
        f"/v1/gateways/{gw}/registries",
        json={
            "name": "weather",
            "type": "MCP",
            "mcp_target": {"url": weather, "headers": {"Authorization": HEADER_SECRET}},
        },
    )
    stored = await _test(api, gw, {"registry_id": r.json()["id"]})
    assert stored["ok"] is True and stored["stage"] == "done"


async def test_a_dead_mcp_server_fails_at_connect_without_its_secret(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    target = {
        "url": f"http://127.0.0.1:{free_port()}/mcp",
        "headers": {"Authorization": HEADER_SECRET},
    }
    answer = await _test(api, gw, {"mcp_target": target})
    assert answer["ok"] is False and answer["stage"] == "connect"
    assert "mcp-secret" not in str(answer)


async def test_an_mcp_server_needing_an_agents_token_cannot_be_tried(
    api: httpx.AsyncClient, weather: str
) -> None:
    gw = await _gateway(api)
    auth = {"mode": "passthrough", "expected_audience": "https://tools.example.com"}
    answer = await _test(api, gw, {"type": "MCP", "mcp_target": {"url": weather, "auth": auth}})
    assert answer["ok"] is False and answer["stage"] == "config"
    assert "agent's token" in answer["message"]


async def test_an_llm_provider_lists_its_models_with_the_key(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    async with serve_anthropic_mock() as mock:
        body = {"provider": "anthropic", "provider_options": mock.options, "auth": mock.auth}
        answer = await _test(api, gw, body)
        assert answer["ok"] is True, answer
        assert (answer["stage"], answer["status_code"], answer["provider"]) == (
            "done",
            200,
            "anthropic",
        )

        bad = {**body, "auth": {"type": "api_key", "api_key": {"api_key": BAD_KEY}}}
        answer = await _test(api, gw, bad)
        assert answer["ok"] is False
        assert (answer["stage"], answer["status_code"]) == ("authenticate", 401)
        assert BAD_KEY not in str(answer)


async def test_a_stored_llm_registry_is_tried_with_its_stored_key(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    async with serve_anthropic_mock() as mock:
        r = await api.post(
            f"/v1/gateways/{gw}/registries",
            json={
                "name": "claude",
                "provider": "anthropic",
                "provider_options": mock.options,
                "auth": mock.auth,
            },
        )
        reg = r.json()
        masked = reg["auth"]
        assert ANTHROPIC_KEY not in str(masked)
        answer = await _test(
            api, gw, {"registry_id": reg["id"], "provider": "anthropic", "auth": masked}
        )
        assert answer["ok"] is True and answer["status_code"] == 200
        assert ANTHROPIC_KEY not in str(answer)

        answer = await _test(api, gw, {"registry_id": reg["id"]})
        assert answer["ok"] is True


async def test_an_unreachable_or_unsupported_provider_is_ok_false(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    dead = {
        "provider": "openai_compatible",
        "provider_options": {"base_url": f"http://127.0.0.1:{free_port()}/v1"},
        "auth": {"type": "api_key", "api_key": "sk-local-0003"},
    }
    answer = await _test(api, gw, dead)
    assert (answer["ok"], answer["stage"], answer["status_code"]) == (False, "connect", None)

    bedrock = {
        "provider": "bedrock",
        "auth": {"type": "aws", "region": "us-east-1", "use_role": True, "role": "arn:x"},
    }
    answer = await _test(api, gw, bedrock)
    assert (answer["ok"], answer["stage"]) == (False, "unsupported")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"provider": "no-such-provider", "auth": {"type": "api_key", "api_key": "k"}},
        {"type": "XML"},
        {"type": "MCP"},
        {"type": "MCP", "mcp_target": {"url": "ftp://x"}},
        {"mcp_target": {"url": "http://x/mcp", "auth": {"mode": "forwarded"}}},
        {"provider": "openai", "auth": {"type": "api_key", "api_key": "***abcd"}},
        {"provider": "openai", "unknown": 1},
        {"type": "LLM", "provider": "openai", "mcp_target": {"url": "http://x/mcp"}},
    ],
)
async def test_a_malformed_body_is_422(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    gw = await _gateway(api)
    r = await api.post(f"/v1/gateways/{gw}/registries/test-connection", json=body)
    assert r.status_code == 422, r.text


async def test_an_unknown_registry_is_404(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    r = await api.post(
        f"/v1/gateways/{gw}/registries/test-connection", json={"registry_id": str(uuid.uuid4())}
    )
    assert r.status_code == 404
