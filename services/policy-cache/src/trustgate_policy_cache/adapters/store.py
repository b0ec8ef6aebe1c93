"""Where entries live: Redis (shared by the replicas, TTL to the millisecond with ``SET
PX``) or this process's memory (``trustgate run`` without Redis), same semantics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis

from trustgate_policy_cache.domain.entries import KEY_PREFIX, Entry, load

SCAN_BATCH = 500
# Connections to Redis; a command waits (up to the timeout) for a free one rather than
# opening more under a burst.
MAX_CONNECTIONS = 64


class EntryStore(Protocol):
    async def put(self, entry: Entry, ttl_seconds: int) -> None: ...

    async def get(self, key: str) -> Entry | None:
        """The live entry at ``key``, or None (absent or expired)."""
        ...

    async def purge(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; how many."""
        ...

    def scan(self) -> AsyncIterator[Entry]:
        """Every live entry (to rebuild the index on start)."""
        ...

    async def close(self) -> None: ...


class RedisStore:
    def __init__(self, url: str, timeout: float) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.redis: Redis = Redis(connection_pool=pool)

    async def put(self, entry: Entry, ttl_seconds: int) -> None:
        await self.redis.set(entry.key, entry.dump(), px=ttl_seconds * 1000)

    async def get(self, key: str) -> Entry | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            raw, pttl = await pipe.execute()
        if raw is None or pttl == -2:
            return None
        return load(raw, time.time() + max(pttl, 0) / 1000)

    async def purge(self, prefix: str) -> int:
        dropped = 0
        async for keys in self._batches(prefix + "*"):
            dropped += await self.redis.unlink(*keys)
        return dropped

    async def scan(self) -> AsyncIterator[Entry]:
        now = time.time()
        async for keys in self._batches(KEY_PREFIX + ":*"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                values = await pipe.execute()
            for raw, pttl in zip(values[::2], values[1::2], strict=True):
                if raw is not None and pttl > 0:
                    yield load(raw, now + pttl / 1000)

    async def _batches(self, pattern: str) -> AsyncIterator[list[bytes | str]]:
        cursor = 0
        while True:
            cursor, keys = await self.redis.scan(cursor, match=pattern, count=SCAN_BATCH)
            if keys:
                yield keys
            if cursor == 0:
                return

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)


class MemoryStore:
    """Entries in a dict, expired on read and by ``sweep`` (the runtime's janitor)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    async def put(self, entry: Entry, ttl_seconds: int) -> None:
        self._entries[entry.key] = entry

    async def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= time.time():
            del self._entries[key]
            return None
        return entry

    async def purge(self, prefix: str) -> int:
        keys = [key for key in self._entries if key.startswith(prefix)]
        for key in keys:
            del self._entries[key]
        return len(keys)

    async def scan(self) -> AsyncIterator[Entry]:
        for entry in list(self._entries.values()):
            yield entry

    def sweep(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    async def close(self) -> None:
        return None
