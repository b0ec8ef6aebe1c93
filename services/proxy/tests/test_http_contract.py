"""The proxy's HTTP contract (reference §3): paths, discovery, credentials, error bodies,
routing across registries, providers, health and readiness."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trustgate_core.crypto import SecretBox
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures, local_proxy
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, serve_mock
from trustgate_testkit.proxy.server import run_proxy, until_known

# request-path tests run in process; readiness and NATS outages start their own proxy
proxy, tenant, bus, events = local_fixtures()

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


@pytest.fixture
async def ready(proxy: Any, tenant: Any, upstream: Any) -> Any:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    return tenant


async def post(
    proxy: Any,
    path: str,
    headers: dict[str, str],
    json: Any = CHAT,
    content: bytes | None = None,
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        if content is not None:
            return await client.post(f"{proxy.url}{path}", content=content, headers=headers)
        return await client.post(f"{proxy.url}{path}", json=json, headers=headers)


def auth(tenant: Any, consumer: str = "app") -> dict[str, str]:
    return {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys[consumer]}


def chat_path(tenant: Any, consumer: str = "app") -> str:
    return f"/{tenant.consumers[consumer].slug}/v1/chat/completions"


async def test_health_and_readiness(nats_url: str) -> None:
    async with run_proxy(nats_url) as on_bus, httpx.AsyncClient() as client:
        await wait_for(lambda: on_bus.runtime.ready, timeout=10)
        health = await client.get(f"{on_bus.url}/healthz")
        ready = await client.get(f"{on_bus.url}/readyz")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["dependencies"] == {"nats": "ok", "config": "ok"}


async def test_readyz_is_not_ready_until_the_replica_has_caught_up() -> None:
    async with run_proxy("nats://127.0.0.1:1") as unreachable:  # NATS never answers
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"{unreachable.url}/readyz")
            served = await client.post(f"{unreachable.url}/abc/v1/chat/completions", json=CHAT)
    assert resp.status_code == 503 and resp.json()["status"] == "not_ready"
    assert served.status_code == 503 and served.json()["error"] == "unavailable"


async def test_unknown_route_and_wrong_method(proxy: Any, ready: Any) -> None:
    resp = await post(proxy, f"/{ready.consumers['app'].slug}/v1/nothing", auth(ready))
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found")
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{proxy.url}{chat_path(ready)}", headers=auth(ready))
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"


async def test_trailing_slash_is_trimmed(proxy: Any, ready: Any) -> None:
    resp = await post(proxy, chat_path(ready) + "/", auth(ready))
    assert resp.status_code == 200


async def test_gateway_discovery_errors_are_unauthenticated(proxy: Any, ready: Any) -> None:
    key = {"X-AG-API-Key": ready.keys["app"]}
    for headers in (
        key,  # no header, no matching host
        {**key, "X-AG-Gateway-Slug": "no-such-gateway"},
        {**key, "X-AG-Gateway-Slug": "no-such-gateway", "Host": f"{ready.slug}.gw.test"},
    ):
        resp = await post(proxy, chat_path(ready), headers)
        assert resp.status_code == 401  # as a bad key: no oracle of which gateways exist
        assert resp.json() == {"error": "unauthenticated", "message": "unauthenticated"}


async def test_gateway_found_by_host_subdomain(proxy: Any, ready: Any) -> None:
    headers = {"Host": f"{ready.slug}.gw.test:8081", "X-AG-API-Key": ready.keys["app"]}
    assert (await post(proxy, chat_path(ready), headers)).status_code == 200


async def test_all_three_key_headers_are_accepted(proxy: Any, ready: Any) -> None:
    key = ready.keys["app"]
    for header in ({"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        resp = await post(proxy, chat_path(ready), {"X-AG-Gateway-Slug": ready.slug, **header})
        assert resp.status_code == 200, header


async def test_auth_errors_use_the_reference_bodies(proxy: Any, ready: Any) -> None:
    resp = await post(proxy, chat_path(ready), {"X-AG-Gateway-Slug": ready.slug})
    assert resp.status_code == 401
    assert resp.json() == {"error": "unauthenticated", "message": "unauthenticated"}
    await ready.add_consumer("other", ["primary"])
    await until_known(proxy, ready)
    resp = await post(proxy, chat_path(ready, "other"), auth(ready, "app"))
    assert resp.status_code == 403
    assert resp.json() == {"error": "forbidden", "message": "forbidden"}


async def test_bad_payloads(proxy: Any, ready: Any) -> None:
    path, headers = chat_path(ready), auth(ready)
    resp = await post(proxy, path, headers, content=b"{not json")
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    resp = await post(proxy, path, headers, json={"modelId": "x", "messages": []})
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_model")


async def test_oversize_body_is_rejected_with_413(upstream: Any) -> None:
    async with local_proxy(PROXY_MAX_BODY_BYTES=2000) as small:
        tenant = await small.new_tenant()
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]}
        resp = await post(small, chat_path(tenant), auth(tenant), json=big)
        assert resp.status_code == 413
        assert resp.json()["error"] == "payload_too_large"
        assert (await post(small, chat_path(tenant), auth(tenant))).status_code == 200


async def test_model_policies_route_and_reject(proxy: Any, tenant: Any, upstream: Any) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer(
        "app", ["primary"], policies={"primary": (["gpt-4o", "gpt-4o-mini"], "gpt-4o")}
    )
    await until_known(proxy, tenant)
    resp = await post(proxy, chat_path(tenant), auth(tenant), json={**CHAT, "model": "claude"})
    assert (resp.status_code, resp.json()["error"]) == (403, "model_not_allowed")
    resp = await post(proxy, chat_path(tenant), auth(tenant), json={"messages": []})
    assert resp.status_code == 200  # the default model is filled in
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o"
    assert resp.headers["x-selected-model"] == "gpt-4o"


async def test_round_robin_across_the_registries_that_serve_the_model(
    proxy: Any, tenant: Any
) -> None:
    async with serve_mock("one") as one, serve_mock("two") as two, serve_mock("three") as three:
        await tenant.add_registry("one", one.url)
        await tenant.add_registry("two", two.url)
        await tenant.add_registry("three", three.url)
        await tenant.add_consumer(
            "app", ["one", "two", "three"], policies={"three": (["other-model"], None)}
        )
        await until_known(proxy, tenant)
        answers = [
            (await post(proxy, chat_path(tenant), auth(tenant))).json()["choices"][0]["message"][
                "content"
            ]
            for _ in range(4)
        ]
    assert answers == ["Hello from one", "Hello from two", "Hello from one", "Hello from two"]
    assert not three.requests


async def test_consumer_without_usable_registry_gets_no_backend_available(
    proxy: Any, tenant: Any
) -> None:
    await tenant.add_consumer("app", [])
    await until_known(proxy, tenant)
    resp = await post(proxy, chat_path(tenant), auth(tenant))
    assert (resp.status_code, resp.json()["error"]) == (503, "no_backend_available")


async def test_unreachable_upstream_is_a_backend_error(proxy: Any, tenant: Any) -> None:
    await tenant.add_registry("dead", "http://127.0.0.1:1/v1")
    await tenant.add_consumer("app", ["dead"])
    await until_known(proxy, tenant)
    resp = await post(proxy, chat_path(tenant), auth(tenant))
    assert (resp.status_code, resp.json()["error"]) == (502, "backend_error")
    assert len(resp.headers["x-ag-trace-id"]) == 32


async def test_unreadable_provider_credentials_are_a_credential_error(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    # a secret sealed with another key (a rotated SERVER_SECRET_KEY) cannot be opened
    other = SecretBox("another-secret-key-of-at-least-32-bytes!")
    sealed = other.seal_fields({"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}})
    tenant.box = other
    await tenant.add_registry("primary", upstream.url, auth=sealed)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    resp = await post(proxy, chat_path(tenant), auth(tenant))
    assert (resp.status_code, resp.json()["error"]) == (502, "provider_credential_error")


async def test_azure_registry_uses_deployment_url_and_api_key_header(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    root = upstream.url.removesuffix("/v1")
    await tenant.add_registry(
        "azure",
        "",
        provider="azure",
        options={},
        auth={"type": "azure", "azure": {"endpoint": root, "api_key": UPSTREAM_KEY}},
    )
    await tenant.add_consumer("app", ["azure"])
    await until_known(proxy, tenant)
    resp = await post(proxy, chat_path(tenant), auth(tenant), json={**CHAT, "model": "my-gpt"})
    assert resp.status_code == 200
    assert (
        upstream.paths[-1] == "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    )
    assert resp.headers["x-selected-provider"] == "azure"


async def test_upstream_timeouts_are_gateway_timeouts_or_stream_error_events(
    upstream: Any,
) -> None:
    async with local_proxy(PROVIDER_REQUEST_TIMEOUT="300ms") as impatient:
        tenant = await impatient.new_tenant()
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        resp = await post(
            impatient, chat_path(tenant), auth(tenant), json={**CHAT, "model": "m-hang"}
        )
        assert (resp.status_code, resp.json()["error"]) == (504, "upstream_timeout")
        resp = await post(
            impatient,
            chat_path(tenant),
            auth(tenant),
            json={**CHAT, "model": "m-stall", "stream": True},
        )
        assert resp.status_code == 200
        assert resp.text.startswith("data: {")
        assert resp.text.endswith(
            'data: {"error":{"message":"upstream stream terminated unexpectedly",'
            '"type":"upstream_error"}}\n\n'
        )


async def test_a_proxy_started_while_nats_is_down_becomes_ready_when_it_returns(
    nats_server: Any,
) -> None:
    nats_server.stop()
    async with run_proxy(nats_server.url) as early:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{early.url}/readyz")).status_code == 503
            nats_server.start()
            await wait_for(lambda: early.runtime.ready, timeout=15)
            assert (await client.get(f"{early.url}/readyz")).status_code == 200
