"""The ``semantic_cache`` plugin end to end: the proxy and a real policy-cache replica
(entries in its memory) on a private NATS. A repeated request is a hit (exact), a
reworded one a semantic hit through the gateway's embeddings registry, and a stop of the
service leaves every call served uncached."""

from __future__ import annotations

from typing import Any

import pytest

from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import openai_sdk, route_to_url
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

HI: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def nats_url(private_nats_url: str) -> str:
    return private_nats_url


async def test_hits_through_the_policy_cache_service_and_uncached_without_it(
    proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream, cache_service: PolicyCacheRuntime
) -> None:
    app = await route_to_url(proxy, tenant, upstream.url)
    registry = app.registries["primary"]
    settings = {
        "mode": "both",
        "embedding": {"registry_id": str(registry.id), "model": "text-embedding-3-small"},
    }
    await app.add_policy("cache", "semantic_cache", settings, consumers=["app"])
    await until_known(proxy, app)
    chat = openai_sdk(proxy, app).chat.completions
    first = await chat.with_raw_response.create(model="m", messages=HI)
    assert first.headers["x-cache"] == "MISS"
    answer = first.parse().choices[0].message.content

    async def hit() -> Any:
        got = await chat.with_raw_response.create(model="m", messages=HI)
        return got if got.headers["x-cache"] == "HIT" else None

    again = await wait_for(hit, timeout=5)  # the store is asynchronous
    assert again.parse().choices[0].message.content == answer
    reworded = [{"role": "user", "content": "Which city is the capital of France?"}]
    semantic = await chat.with_raw_response.create(model="m", messages=reworded)
    assert semantic.headers["x-cache"] == "HIT" and "x-cache-similarity" in semantic.headers

    await cache_service.stop()
    calls = len(upstream.requests)
    down = await chat.with_raw_response.create(model="m", messages=HI)
    assert down.status_code == 200 and down.headers["x-cache"] == "MISS"
    assert len(upstream.requests) == calls + 1
