"""Policy-cache fixtures: a private NATS (the cache subjects are shared by every replica
on a bus), the shared Redis, and a client that speaks the cache's wire contract."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from trustgate_core.cache import CacheLookup, CachePurge, CacheReply, CacheStore, encode_vector
from trustgate_core.embedded import free_port
from trustgate_core.events.subjects import (
    CACHE_LOOKUP_SUBJECT,
    CACHE_PURGE_SUBJECT,
    CACHE_STORE_SUBJECT,
)
from trustgate_testkit.fixtures import Infra, NatsServer, wait_for


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-store", log_file=tmp_path / "nats.log")
    server.start()
    yield server
    server.cleanup()


@dataclass
class CacheClient:
    """The proxy's side of the contract, for one gateway and policy (fresh ids per test,
    so tests sharing Redis never see each other's entries)."""

    nc: NATS
    gateway_id: uuid.UUID = field(default_factory=uuid.uuid4)
    policy_id: uuid.UUID = field(default_factory=uuid.uuid4)

    async def store(
        self,
        exact_key: str,
        vector: Sequence[float] | None = None,
        *,
        answer: str = "cached",
        filter_key: str = "f",
        partition: str = "consumer-a",
        ttl: int = 60,
        **scope: Any,
    ) -> dict[str, Any]:
        message = CacheStore(
            gateway_id=scope.get("gateway_id", self.gateway_id),
            policy_id=scope.get("policy_id", self.policy_id),
            partition=partition,
            exact_key=exact_key,
            filter_key=filter_key,
            vector=encode_vector(vector) if vector is not None else None,
            ttl_seconds=ttl,
            entry={"answer": answer},
        )
        reply = await self.nc.request(CACHE_STORE_SUBJECT, message.model_dump_json().encode(), 2)
        doc: dict[str, Any] = orjson.loads(reply.data)
        return doc

    async def lookup(
        self,
        exact_key: str,
        vector: Sequence[float] | None = None,
        *,
        filter_key: str = "f",
        partition: str = "consumer-a",
        threshold: float = 0.9,
        wait: float = 2.0,
        **scope: Any,
    ) -> CacheReply:
        message = CacheLookup(
            gateway_id=scope.get("gateway_id", self.gateway_id),
            policy_id=scope.get("policy_id", self.policy_id),
            partition=partition,
            exact_key=exact_key,
            filter_key=filter_key,
            vector=encode_vector(vector) if vector is not None else None,
            threshold=threshold,
        )
        reply = await self.nc.request(
            CACHE_LOOKUP_SUBJECT, message.model_dump_json().encode(), wait
        )
        return CacheReply.model_validate_json(reply.data)

    async def purge(self) -> None:
        message = CachePurge(gateway_id=self.gateway_id, policy_id=self.policy_id)
        await self.nc.publish(CACHE_PURGE_SUBJECT, message.model_dump_json().encode())
        await self.nc.flush()


@pytest.fixture
async def client(bus: NatsServer) -> AsyncIterator[CacheClient]:
    nc = await nats.connect(bus.url)
    try:
        yield CacheClient(nc)
    finally:
        await nc.close()


@pytest.fixture
def bus_env(bus: NatsServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No Redis: entries in the replica's memory."""
    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    return {"NATS_URL": bus.url}


@dataclass
class PrivateRedis:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A redis-server of this test's own (the replica tests count every entry it holds;
    the outage test stops it)."""
    binary = shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
    if not await asyncio.to_thread(Path(binary).exists):
        pytest.fail("no redis-server: run `python3 scripts/services.py ensure`")
    port = free_port()
    command = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [*command, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PrivateRedis(f"redis://127.0.0.1:{port}/0", proc)
    try:

        async def pong() -> bool:
            try:
                async with Redis.from_url(server.url) as redis:
                    return bool(await redis.ping())
            except Exception:
                return False

        await wait_for(pong, timeout=10, message="the private redis-server never answered")
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_env(private_redis: PrivateRedis, bus: NatsServer) -> dict[str, str]:
    return {"NATS_URL": bus.url, "REDIS_URL": private_redis.url}


@pytest.fixture
def redis_env(infra: Infra, bus: NatsServer) -> dict[str, str]:
    return {"NATS_URL": bus.url, "REDIS_URL": infra.redis_url}
