"""Route health is shared by proxy replicas: two ``trustgate proxy`` processes on one
Redis and one NATS, a consumer round-robining over a flaky and a steady registry. A
429 with ``Retry-After`` seen by one replica keeps the other off that route within a
second; once the cooldown has passed, exactly one request in the whole cluster tries it
(the half-open trial), and every client call is still served (by the steady route)."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import openai

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_testkit.fixtures import Infra, NatsServer, wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.scripted import Reply, serve_scripted
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

HI: Any = [{"role": "user", "content": "Hi"}]
COOLDOWN = 3  # seconds, the flaky route's Retry-After
TOO_MANY = {"error": {"message": "slow down", "type": "rate_limit_error"}}


def replica(env: dict[str, str], log: Path) -> AbstractAsyncContextManager[PlaneProcess]:
    return plane_process("proxy", env | {"PROXY_CONFIG_SNAPSHOT": ""}, log)


def sdk(url: str, tenant: Tenant) -> openai.AsyncOpenAI:
    return tracked(
        openai.AsyncOpenAI(
            base_url=f"{url}/{tenant.consumers['app'].slug}/v1",
            api_key="unused",
            max_retries=0,
            timeout=15,
            default_headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
        )
    )


async def served(client: openai.AsyncOpenAI) -> bool:
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    except openai.APIError:
        return False
    return True


async def test_a_cooldown_seen_by_one_replica_is_kept_by_the_other_then_one_trial_decides(
    infra: Infra, nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {
        "NATS_URL": nats_server.url,
        "REDIS_URL": infra.redis_url,
        "PROVIDER_MAX_RETRIES": "0",  # a 429 moves on to the next route at once
    }
    nc = await connect(nats_server.url, name="routing-replicas")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
    async with (
        serve_scripted("flaky") as flaky,
        serve_mock("steady") as steady,
        replica(env, tmp_path / "a.log") as first,
        replica(env, tmp_path / "b.log") as second,
    ):
        tenant = await new_tenant(nc)
        await tenant.add_registry("flaky", flaky.url)
        await tenant.add_registry("steady", steady.url)
        await tenant.add_consumer("app", ["flaky", "steady"])
        a, b = sdk(first.url, tenant), sdk(second.url, tenant)
        for client in (a, b):
            await wait_for(lambda c=client: served(c), timeout=10)

        # the flaky route answers 429 with Retry-After to its next two requests
        retry = {"Retry-After": str(COOLDOWN)}
        flaky.then(Reply(429, TOO_MANY, retry), Reply(429, TOO_MANY, retry))
        before = len(flaky.requests)
        while len(flaky.requests) == before:  # round-robin: within two calls
            assert await served(a)  # the 429 is not the client's: steady serves it
        cooled_at = time.monotonic()

        # within a second the other replica skips the route too
        await asyncio.sleep(1.0)
        seen = len(flaky.requests)
        assert all(await asyncio.gather(*(served(b) for _ in range(8))))
        assert all(await asyncio.gather(*(served(a) for _ in range(8))))
        assert len(flaky.requests) == seen, "a replica sent traffic to a cooling route"

        # past the cooldown (wall-clock: the provider's Retry-After), exactly one request of
        # the whole cluster is the half-open trial; it fails again, every call is served
        await asyncio.sleep(max(0.0, cooled_at + COOLDOWN + 0.3 - time.monotonic()))
        burst = [served(client) for client in (a, b) for _ in range(10)]
        assert all(await asyncio.gather(*burst))
        assert len(flaky.requests) == seen + 1
    await nc.close()
