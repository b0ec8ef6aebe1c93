"""The semantic cache's cost on the request path, at concurrency 1 (issue 15 §Performance):

- **hit vs direct**: a request answered from the cache against the same request answered
  by a local, instant upstream through a consumer without the cache (budget: the hit's
  p50 at most 1 ms above the direct answer's);
- **miss**: a request the cache does not hold (each one unique, so every one is looked up
  and stored) against the same through the consumer without the cache (budget: at most
  2 ms p50 added; ``mode: exact``, so no embedding call is counted).

The proxy runs in its own process (``trustgate proxy``); the mock upstream, an in-memory
exact-tier cache service answering the core contract on the real NATS (``NATS_URL``,
default ``nats://127.0.0.1:4222``) and the client (``aiohttp``) in this one::

    .venv/bin/python bench/cache_bench.py --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
import orjson
from nats.aio.msg import Msg

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.cache import CacheLookup, CacheReply, CacheStore
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import CACHE_LOOKUP_SUBJECT, CACHE_STORE_SUBJECT
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.processes import plane_process
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.sdk_clients import gateway_headers
from trustgate_testkit.proxy.tenant import new_tenant

HIT_BUDGET_MS = 1.0
MISS_BUDGET_MS = 2.0


class ExactCache:
    """The exact tier of the cache service, in memory (what the proxy waits on)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str, str], Any] = {}

    async def lookup(self, msg: Msg) -> None:
        ask = CacheLookup.model_validate_json(msg.data)
        entry = self.entries.get(
            (str(ask.gateway_id), str(ask.policy_id), ask.partition, ask.exact_key)
        )
        reply = CacheReply(hit=entry is not None, entry=entry, similarity=1.0, exact=True)
        await msg.respond(orjson.dumps(reply.model_dump(mode="json")))

    async def store(self, msg: Msg) -> None:
        s = CacheStore.model_validate_json(msg.data)
        self.entries[(str(s.gateway_id), str(s.policy_id), s.partition, s.exact_key)] = s.entry


async def timed(count: int, senders: list[Callable[[int], Awaitable[int]]]) -> list[list[float]]:
    """Milliseconds of ``count`` requests of each sender, one at a time, the senders taking
    turns (so a drift of the machine's load weighs on all alike); 20 each unmeasured."""
    for i in range(20):
        for send in senders:
            assert await send(-1 - i) == 200
    out: list[list[float]] = [[] for _ in senders]
    for i in range(count):
        for send, times in zip(senders, out, strict=True):
            started = perf_counter()
            status = await send(i)
            times.append((perf_counter() - started) * 1000)
            assert status == 200
    return out


async def ready(send: Callable[[int], Awaitable[int]]) -> bool:
    """Whether the proxy knows the tenant (its replica caught up with the bus)."""
    return await send(-1) == 200


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def main(count: int) -> int:
    nats_url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    nc = await connect(nats_url, name="cache-bench")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
    cache = ExactCache()
    await nc.subscribe(CACHE_LOOKUP_SUBJECT, cb=cache.lookup)
    await nc.subscribe(CACHE_STORE_SUBJECT, cb=cache.store)
    env = {"NATS_URL": nats_url, "SERVER_SECRET_KEY": DEV_SECRET_KEY, "TELEMETRY_ENABLED": "false"}
    log = Path(tempfile.gettempdir()) / "cache_bench_proxy.log"
    async with serve_mock("bench") as upstream, plane_process("proxy", env, log) as proxy:
        tenant = await new_tenant(nc)
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("plain", ["primary"])
        await tenant.add_consumer("cached", ["primary"])
        await tenant.add_policy("cache", "semantic_cache", {"mode": "exact"}, consumers=["cached"])
        async with aiohttp.ClientSession() as http:

            def sender(consumer: str, unique: bool) -> Callable[[int], Awaitable[int]]:
                url = f"{proxy.url}/{tenant.consumers[consumer].slug}/v1/chat/completions"
                headers = gateway_headers(tenant, consumer)

                async def send(i: int) -> int:
                    text = f"question {i}" if unique else "the same question"
                    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
                    async with http.post(url, data=orjson.dumps(body), headers=headers) as resp:
                        await resp.read()
                        return resp.status

                return send

            await wait_for(lambda: ready(sender("cached", unique=False)), timeout=15)
            direct, hits, plain_unique, misses = await timed(
                count,
                [
                    sender("plain", unique=False),
                    sender("cached", unique=False),
                    sender("plain", unique=True),
                    sender("cached", unique=True),
                ],
            )
    await nc.close()
    hit_delta = p50(hits) - p50(direct)
    miss_delta = p50(misses) - p50(plain_unique)
    rows = [
        ("direct (no cache)", direct),
        ("cache hit", hits),
        ("direct, unique prompts", plain_unique),
        ("cache miss, unique prompts", misses),
    ]
    for name, values in rows:
        q = statistics.quantiles(values, n=100)
        sys.stdout.write(f"{name:28} p50 {p50(values):7.3f} ms  p95 {q[94]:7.3f} ms\n")
    ok = hit_delta <= HIT_BUDGET_MS and miss_delta <= MISS_BUDGET_MS
    sys.stdout.write(
        f"hit - direct: {hit_delta:+.3f} ms (budget +{HIT_BUDGET_MS} ms); "
        f"miss - direct: {miss_delta:+.3f} ms (budget +{MISS_BUDGET_MS} ms): "
        f"{'OK' if ok else 'OVER BUDGET'}\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400)
    sys.exit(asyncio.run(main(parser.parse_args().requests)))
