"""Several replicas, each a ``trustgate policy-cache`` process on one NATS and one Redis:
an index rebuilt from Redis, stores seen by every replica, purges reaching them all."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process

from .conftest import CacheClient

pytestmark = pytest.mark.slow

A = [1.0, 0.0, 0.0, 0.0]
B = [1.0, 0.1, 0.0, 0.0]


@contextlib.asynccontextmanager
async def replica(env: dict[str, str], log: Path) -> AsyncIterator[PlaneProcess]:
    async with plane_process("policy-cache", env, log) as plane:
        async with httpx.AsyncClient(base_url=plane.url) as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_for(ready, timeout=20, message="the replica never became ready")
        yield plane


async def metric(plane: PlaneProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=plane.url) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


async def test_a_replica_started_after_stores_rebuilds_from_redis(
    private_env: dict[str, str], client: CacheClient, tmp_path: Path
) -> None:
    async with replica(private_env, tmp_path / "first.log"):
        assert (await client.store("k1", A, answer="before"))["stored"] is True
    async with replica(private_env, tmp_path / "second.log") as second:
        assert await metric(second, "trustgate_policy_cache_entries") == 1
        reply = await client.lookup("another-key", B)
        assert reply.hit and not reply.exact and reply.entry == {"answer": "before"}


async def test_a_store_on_one_replica_is_found_through_the_other_and_purge_reaches_both(
    private_env: dict[str, str], client: CacheClient, tmp_path: Path
) -> None:
    async with (
        replica(private_env, tmp_path / "one.log") as one,
        replica(private_env, tmp_path / "two.log") as two,
    ):
        assert (await client.store("k1", A))["stored"] is True

        async def indexed_everywhere() -> bool:
            now = [await metric(p, "trustgate_policy_cache_entries") for p in (one, two)]
            return now == [1.0, 1.0]

        await wait_for(indexed_everywhere, timeout=5, message="a replica never indexed it")
        for _ in range(20):  # the queue group spreads these over both replicas
            reply = await client.lookup("another-key", B)
            assert reply.hit and not reply.exact
        hits = 'trustgate_policy_cache_lookups_total{result="hit_semantic"}'
        assert await metric(one, hits) > 0 and await metric(two, hits) > 0

        await client.purge()

        async def purged_everywhere() -> bool:
            counts = [await metric(p, "trustgate_policy_cache_purges_total") for p in (one, two)]
            return counts == [1.0, 1.0]

        await wait_for(purged_everywhere, timeout=5, message="a replica never saw the purge")
        for _ in range(10):
            assert not (await client.lookup("k1", A)).hit
            assert not (await client.lookup("another-key", B)).hit
        assert [await metric(p, "trustgate_policy_cache_entries") for p in (one, two)] == [0, 0]
