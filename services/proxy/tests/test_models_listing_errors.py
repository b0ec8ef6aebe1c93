"""``GET /{slug}/v1/models`` when an upstream cannot be listed: the models the others list
are kept, each registry that could not be listed is named beside ``data`` with a short
reason (never its body or credentials), and when nothing could be listed at all the answer
is a 502, not an empty 200. Listing is concurrent and bounded by a per-registry timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import aiohttp
import httpx
import pytest
from aiohttp import web

from trustgate_core.embedded import free_port
from trustgate_core.errors import BackendError
from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.services.models import ModelLister
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_base import serve_app
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.sdk_clients import gateway_headers, openai_sdk
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()

REFUSAL = "upstream says: key sk-live-SECRET is revoked"


@asynccontextmanager
async def serve_refusing() -> AsyncIterator[str]:
    """An upstream whose models list answers 401 (with a body that must not be relayed)."""

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"error": REFUSAL}, status=401)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    async with serve_app(app) as url:
        yield f"{url}/v1"


@asynccontextmanager
async def serve_hanging() -> AsyncIterator[str]:
    """An upstream whose models list answers only when the test is over."""
    over = asyncio.Event()

    async def models(_request: web.Request) -> web.Response:
        await over.wait()
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    async with serve_app(app) as url:
        try:
            yield f"{url}/v1"
        finally:
            over.set()  # so the server's shutdown does not wait on the held requests


async def bind(proxy: RunningProxy, tenant: Tenant, urls: dict[str, str]) -> None:
    """One OpenAI-compatible registry per entry and the consumer ``app`` bound to all."""
    for name, url in urls.items():
        await tenant.add_registry(name, url)
    await tenant.add_consumer("app", list(urls))
    await until_known(proxy, tenant)


async def get_models(proxy: RunningProxy, tenant: Tenant) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.get(
            f"{proxy.base_url(tenant.consumers['app'])}/models",
            headers=gateway_headers(tenant),
        )


def down_url() -> str:
    """An upstream nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"


async def test_a_registry_that_is_down_is_reported_beside_the_models_of_the_healthy_one(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with serve_mock() as healthy:
        await bind(proxy, tenant, {"healthy": healthy.url, "down": down_url()})
        resp = await get_models(proxy, tenant)
        sdk_models = [m.id async for m in openai_sdk(proxy, tenant).models.list()]
    assert resp.status_code == 200
    doc = resp.json()
    assert [m["id"] for m in doc["data"]] == ["mock-1"]
    assert doc["errors"] == [{"registry": "down", "error": "upstream unreachable"}]
    assert sdk_models == ["mock-1"]  # the official SDK still reads the list


async def test_a_registry_refusing_the_listing_is_reported_without_its_answer(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with serve_mock() as healthy, serve_refusing() as refusing:
        await bind(proxy, tenant, {"healthy": healthy.url, "refusing": refusing})
        resp = await get_models(proxy, tenant)
    assert resp.status_code == 200
    assert resp.json()["errors"] == [{"registry": "refusing", "error": "upstream answered 401"}]
    assert "SECRET" not in resp.text


async def test_no_registry_listed_and_none_configured_answers_502(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with serve_refusing() as refusing:
        await bind(proxy, tenant, {"down": down_url(), "refusing": refusing})
        resp = await get_models(proxy, tenant)
    assert resp.status_code == 502
    doc = resp.json()
    assert doc["error"] == "backend_error"
    assert "no registry" in doc["message"]
    assert sorted(e["registry"] for e in doc["errors"]) == ["down", "refusing"]
    assert "SECRET" not in resp.text


async def test_configured_models_are_listed_even_when_no_upstream_answers(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    await tenant.add_registry("listed", down_url())
    await tenant.add_registry("down", down_url())
    await tenant.add_consumer(
        "app", ["listed", "down"], policies={"listed": (["gpt-configured"], None)}
    )
    await until_known(proxy, tenant)
    resp = await get_models(proxy, tenant)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["gpt-configured"]
    assert resp.json()["errors"] == [{"registry": "down", "error": "upstream unreachable"}]


def _binding(name: str) -> Any:
    registry = SimpleNamespace(id=uuid4(), name=name)
    return SimpleNamespace(allowed=(), default=None, provider="openai", registry=registry)


async def test_hanging_upstreams_are_listed_concurrently_within_the_timeout() -> None:
    async with serve_mock() as healthy, serve_hanging() as hanging:
        urls = {"healthy": healthy.url, "slow-1": hanging, "slow-2": hanging}
        targets = {name: UpstreamTarget("openai", url, {}) for name, url in urls.items()}
        view = SimpleNamespace(target=lambda registry: targets[registry.name])
        plan = SimpleNamespace(bindings=[_binding(n) for n in urls])
        async with aiohttp.ClientSession() as session:
            lister = ModelLister(view, session, timeout=0.3)  # type: ignore[arg-type]
            began = time.monotonic()
            listing = await lister.listing(plan)  # type: ignore[arg-type]
            took = time.monotonic() - began
    assert [m["id"] for m in listing["data"]] == ["mock-1"]
    assert listing["errors"] == [
        {"registry": "slow-1", "error": "upstream timed out"},
        {"registry": "slow-2", "error": "upstream timed out"},
    ]
    assert took < 0.3 * 2  # one timeout, not one per registry


async def test_all_hanging_upstreams_raise_a_backend_error() -> None:
    async with serve_hanging() as hanging:
        target = UpstreamTarget("openai", hanging, {})
        view = SimpleNamespace(target=lambda registry: target)
        plan = SimpleNamespace(bindings=[_binding("slow")])
        async with aiohttp.ClientSession() as session:
            lister = ModelLister(view, session, timeout=0.2)  # type: ignore[arg-type]
            with pytest.raises(BackendError) as raised:
                await lister.listing(plan)  # type: ignore[arg-type]
    assert raised.value.extra["errors"] == [{"registry": "slow", "error": "upstream timed out"}]
