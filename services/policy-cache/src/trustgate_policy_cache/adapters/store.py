"""Where entries live: Redis (shared by the replicas, TTL to the millisecond with ``SET
PX``; a read is one ``GET``, the value holding its expiry) or this process's memory
(``trustgate run`` without Redis), same semantics.

``RedisStore`` keeps the entries it read last in this process's memory (``HOT_BYTES`` at
most, least recently read out first), so a repeated hit costs no round trip to Redis.
They leave it at their expiry, on a purge of their policy (every replica applies every
purge), when this replica stores the key again, and all at once when the replica may have
missed a purge (``forget``, after a reconnect to NATS). An entry another replica stored
again under the same key (the same request) is served as this one read it until it
expires."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Protocol

import orjson
from redis.asyncio import BlockingConnectionPool, Redis

from trustgate_policy_cache.domain.entries import KEY_PREFIX, Entry, entry_of

SCAN_BATCH = 500
# Connections to Redis; a command waits (up to the timeout) for a free one rather than
# opening more under a burst.
MAX_CONNECTIONS = 64
#: the most of Redis's entries a replica keeps in its memory (their stored size), and the
#: largest one it keeps
HOT_BYTES = 64 << 20
HOT_ENTRY_BYTES = 1 << 20


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

    def forget(self) -> None:
        """Drop what this process keeps of a shared store (a purge may have been missed)."""
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
        self._hot: OrderedDict[str, tuple[Entry, int]] = OrderedDict()
        self._hot_bytes = 0

    async def put(self, entry: Entry, ttl_seconds: int) -> None:
        self._drop(entry.key)
        await self.redis.set(entry.key, entry.dump(), px=ttl_seconds * 1000)

    async def get(self, key: str) -> Entry | None:
        kept = self._hot.get(key)
        if kept is not None:
            if kept[0].expires_at > time.time():
                self._hot.move_to_end(key)
                return kept[0]
            self._drop(key)
        raw = await self.redis.get(key)
        if raw is None:
            return None
        entry = await self._live(key, raw, time.time())
        if entry is not None:
            self._keep(key, entry, len(raw))
        return entry

    async def _live(self, key: str | bytes, raw: bytes | str, now: float) -> Entry | None:
        """The entry of the value ``raw`` read at ``key``, or None once it expired: at its
        own expiry (``exp``, a moment before Redis's), or at the store's TTL for a value
        stored before entries held their expiry (one more command, for those alone)."""
        doc = orjson.loads(raw)
        expires_at = doc.get("exp")
        if not isinstance(expires_at, int | float):
            pttl = await self.redis.pttl(key)
            if pttl == -2:
                return None
            expires_at = now + max(pttl, 0) / 1000
        elif expires_at <= now:
            return None
        return entry_of(doc, expires_at)

    def _keep(self, key: str, entry: Entry, size: int) -> None:
        if size > HOT_ENTRY_BYTES:
            return
        self._drop(key)
        self._hot[key] = (entry, size)
        self._hot_bytes += size
        while self._hot_bytes > HOT_BYTES:
            _, (_, dropped) = self._hot.popitem(last=False)
            self._hot_bytes -= dropped

    def _drop(self, key: str) -> None:
        kept = self._hot.pop(key, None)
        if kept is not None:
            self._hot_bytes -= kept[1]

    def forget(self) -> None:
        self._hot.clear()
        self._hot_bytes = 0

    async def purge(self, prefix: str) -> int:
        self._drop_all(prefix)
        dropped = 0
        async for keys in self._batches(prefix + "*"):
            dropped += await self.redis.unlink(*keys)
        self._drop_all(prefix)  # and what a read under way kept meanwhile
        return dropped

    def _drop_all(self, prefix: str) -> None:
        for key in [k for k in self._hot if k.startswith(prefix)]:
            self._drop(key)

    async def scan(self) -> AsyncIterator[Entry]:
        now = time.time()
        async for keys in self._batches(KEY_PREFIX + ":*"):
            for key, raw in zip(keys, await self.redis.mget(keys), strict=True):
                if raw is not None and (entry := await self._live(key, raw, now)) is not None:
                    yield entry

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

    def forget(self) -> None:
        return None  # this store is the entries themselves: nothing kept besides

    async def close(self) -> None:
        return None
