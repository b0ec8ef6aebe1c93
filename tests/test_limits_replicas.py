"""A rate limit is exact across proxy replicas: two ``trustgate proxy`` processes, sharing
one Redis and one NATS, enforce one consumer's limit of N per minute together. Of 3N
concurrent requests split across both, exactly N succeed and 2N get 429 with
Retry-After (each check is one atomic script in Redis, never a read then a write)."""

from __future__ import annotations

import asyncio
import functools
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import openai

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_testkit.fixtures import Infra, NatsServer, wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

N = 20
HI: Any = [{"role": "user", "content": "Hi"}]


def replica(env: dict[str, str], log: Path) -> AbstractAsyncContextManager[PlaneProcess]:
    """``trustgate proxy`` in a process of its own, keeping no config snapshot."""
    return plane_process("proxy", env | {"PROXY_CONFIG_SNAPSHOT": ""}, log)


def sdk(url: str, tenant: Tenant, bucket: str) -> openai.AsyncOpenAI:
    """The consumer ``app`` on one replica; ``bucket`` is the ``X-Bucket`` header the
    policy groups by (so probing a replica does not spend the limit under test)."""
    return tracked(
        openai.AsyncOpenAI(
            base_url=f"{url}/{tenant.consumers['app'].slug}/v1",
            api_key="unused",
            max_retries=0,
            timeout=15,
            default_headers={
                "X-AG-Gateway-Slug": tenant.slug,
                "X-AG-API-Key": tenant.keys["app"],
                "X-Bucket": bucket,
            },
        )
    )


async def enforces_the_policy(client: openai.AsyncOpenAI) -> bool:
    """The replica knows the consumer and applies its rate limit."""
    try:
        response = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI
        )
    except openai.APIStatusError:
        return False
    return response.headers.get("x-ratelimit-consumer-limit") == str(N)


async def outcome(client: openai.AsyncOpenAI) -> tuple[int, str | None]:
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    except openai.RateLimitError as error:
        return 429, error.response.headers.get("retry-after")
    return 200, None


async def test_two_replicas_sharing_redis_admit_exactly_the_limit_of_concurrent_requests(
    infra: Infra, nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_server.url, "REDIS_URL": infra.redis_url}
    nc = await connect(nats_server.url, name="limits-replicas")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
    upstream: MockUpstream
    async with (
        serve_mock("mock") as upstream,
        replica(env, tmp_path / "a.log") as first,
        replica(env, tmp_path / "b.log") as second,
    ):
        a, b = first.url, second.url
        tenant = await new_tenant(nc)
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        limit = {"limit": N, "window": "1m", "group_by_header": "X-Bucket"}
        await tenant.add_policy("rpm", "rate_limiter", limit, consumers=["app"])
        for url in (a, b):
            probe = sdk(url, tenant, f"probe-{url}")
            await wait_for(functools.partial(enforces_the_policy, probe), timeout=10)

        clients = [sdk(a, tenant, "load"), sdk(b, tenant, "load")]
        results = await asyncio.gather(*(outcome(clients[i % 2]) for i in range(3 * N)))

        assert sum(status == 200 for status, _ in results) == N
        refused = [retry for status, retry in results if status == 429]
        assert len(refused) == 2 * N
        assert all(retry is not None and 1 <= int(retry) <= 60 for retry in refused)
    await nc.close()
