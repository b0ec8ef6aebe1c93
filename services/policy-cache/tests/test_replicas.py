"""Several replicas, each a ``trustgate policy-cache`` process on one NATS and one Redis:
an index rebuilt from Redis, stores seen by every replica, purges reaching them all."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process, until_readyz

from .conftest import CacheClient

pytestmark = pytest.mark.slow

A = [1.0, 0.0, 0.0, 0.0]
B = [1.0, 0.1, 0.0, 0.0]


@contextlib.asynccontextmanager
async def replica(env: dict[str, str], log: Path) -> AsyncIterator[PlaneProcess]:
    async with plane_process("policy-cache", env, log) as plane:
        await until_readyz(plane, within=20)
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
        # an entry without a vector (its embedding failed) is announced too: each replica
        # knows its key, so both serve it, while a key nobody stored misses on both
        assert (await client.store("k2", answer="exact only"))["stored"] is True
        exact_hits = 'trustgate_policy_cache_lookups_total{result="hit_exact"}'

        async def both_served_it() -> bool:
            reply = await client.lookup("k2")
            assert reply.hit and reply.exact and reply.entry == {"answer": "exact only"}
            return all([await metric(p, exact_hits) > 0 for p in (one, two)])

        await wait_for(both_served_it, timeout=5, message="a replica never served k2")
        for _ in range(10):
            assert not (await client.lookup("k3")).hit

        await client.purge()

        async def purged_everywhere() -> bool:
            counts = [await metric(p, "trustgate_policy_cache_purges_total") for p in (one, two)]
            return counts == [1.0, 1.0]

        await wait_for(purged_everywhere, timeout=5, message="a replica never saw the purge")
        for _ in range(10):
            assert not (await client.lookup("k1", A)).hit
            assert not (await client.lookup("another-key", B)).hit
        assert [await metric(p, "trustgate_policy_cache_entries") for p in (one, two)] == [0, 0]


class Relay:
    """A TCP relay to NATS that the test can cut and restore: one replica's own link to
    the bus, so it alone is cut off while the others go on."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    async def to(cls, nats_url: str) -> Relay:
        """An open relay to ``nats_url``."""
        target = urlsplit(nats_url)
        assert target.hostname and target.port
        relay = cls((target.hostname, target.port))
        await relay.open()
        return relay

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_a_replica_cut_off_from_nats_catches_up_on_the_stores_it_missed(
    private_env: dict[str, str], client: CacheClient, tmp_path: Path
) -> None:
    """Stores are announced to the other replicas on plain NATS: one cut off while another
    stores hears nothing of it. On reconnecting it rebuilds its index from Redis, so its
    semantic lookups find what was stored meanwhile (they used to miss until a restart)."""
    relay = await Relay.to(private_env["NATS_URL"])
    try:
        async with (
            replica(private_env, tmp_path / "one.log") as one,
            replica({**private_env, "NATS_URL": relay.url}, tmp_path / "two.log") as two,
        ):
            await relay.cut()
            await until_readyz(two, 503, within=10)  # it lost NATS
            assert (await client.store("k1", A))["stored"] is True  # only `one` hears it
            assert (await client.store("k2"))["stored"] is True  # no vector: its key only
            assert await metric(one, "trustgate_policy_cache_entries") == 1
            assert await metric(two, "trustgate_policy_cache_entries") == 0

            await relay.open()

            async def caught_up() -> bool:
                return await metric(two, "trustgate_policy_cache_entries") == 1

            await wait_for(caught_up, timeout=15, message="the replica never caught up")
            assert await metric(two, "trustgate_policy_cache_resyncs_total") == 1
            for _ in range(20):  # the queue group spreads these over both replicas
                reply = await client.lookup("another-key", B)
                assert reply.hit and not reply.exact
            hits = 'trustgate_policy_cache_lookups_total{result="hit_semantic"}'
            assert await metric(two, hits) > 0
            for _ in range(20):  # the key it missed is known again: an exact hit on both
                reply = await client.lookup("k2")
                assert reply.hit and reply.exact
            exact_hits = 'trustgate_policy_cache_lookups_total{result="hit_exact"}'
            assert await metric(two, exact_hits) > 0
    finally:
        await relay.cut()


async def test_a_replica_cut_off_during_a_purge_serves_nothing_it_purged(
    private_env: dict[str, str], client: CacheClient, tmp_path: Path
) -> None:
    """Each replica keeps the entries it read in its memory. One cut off from NATS while a
    purge goes out hears nothing of it; on reconnecting it drops what it kept, so what was
    purged is never served again."""
    relay = await Relay.to(private_env["NATS_URL"])
    exact_hits = 'trustgate_policy_cache_lookups_total{result="hit_exact"}'
    try:
        async with (
            replica(private_env, tmp_path / "one.log") as one,
            replica({**private_env, "NATS_URL": relay.url}, tmp_path / "two.log") as two,
        ):
            assert (await client.store("k1", answer="to purge"))["stored"] is True

            async def both_read_it() -> bool:
                assert (await client.lookup("k1")).hit
                return all([await metric(p, exact_hits) > 0 for p in (one, two)])

            await wait_for(both_read_it, timeout=5, message="a replica never served k1")
            await relay.cut()
            await until_readyz(two, 503, within=10)  # it lost NATS
            await client.purge()  # only `one` hears it

            async def purged() -> bool:
                return await metric(one, "trustgate_policy_cache_purges_total") == 1

            await wait_for(purged, timeout=5, message="the purge never reached the replica")
            await relay.open()

            async def caught_up() -> bool:
                return await metric(two, "trustgate_policy_cache_resyncs_total") == 1

            await wait_for(caught_up, timeout=15, message="the replica never caught up")
            served = await metric(two, exact_hits)
            for _ in range(20):  # the queue group spreads these over both replicas
                assert not (await client.lookup("k1")).hit
            assert await metric(two, exact_hits) == served
            misses = 'trustgate_policy_cache_lookups_total{result="miss"}'
            assert await metric(two, misses) > 0
    finally:
        await relay.cut()
