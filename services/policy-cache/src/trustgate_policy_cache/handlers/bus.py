"""The NATS side: lookups and stores in the queue group (one replica answers each),
purges and store announcements to every replica. Each request is handled in a task of
its own, so a slow store never queues the lookups behind it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from trustgate_core.cache import CacheLookup, CachePurge, CacheReply, CacheStore
from trustgate_core.events.subjects import (
    CACHE_LOOKUP_SUBJECT,
    CACHE_PURGE_SUBJECT,
    CACHE_QUEUE_GROUP,
    CACHE_STORE_SUBJECT,
)
from trustgate_policy_cache.domain.entries import Scope
from trustgate_policy_cache.services.cache import Indexed, PolicyCache

log = logging.getLogger(__name__)

# Stores handled at once by a replica; more wait in the client's buffer, so a burst of
# stores never starves the lookups of Redis connections.
STORES_IN_FLIGHT = 16

# The service's own subject: a store handled by one replica, for the others' indexes;
# the last token is the announcing replica, so a replica skips its own unread.
CACHE_STORED_SUBJECT = "trustgate.cache.stored"


class BusHandlers:
    def __init__(self, nc: NATS, cache: PolicyCache) -> None:
        self.nc = nc
        self.cache = cache
        self.origin = uuid.uuid4().hex
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stores = asyncio.Semaphore(STORES_IN_FLIGHT)

    async def subscribe(self) -> None:
        nc = self.nc
        self._subscriptions = [
            await nc.subscribe(CACHE_LOOKUP_SUBJECT, CACHE_QUEUE_GROUP, cb=self._spawn_lookup),
            await nc.subscribe(CACHE_STORE_SUBJECT, CACHE_QUEUE_GROUP, cb=self._spawn_store),
            await nc.subscribe(CACHE_PURGE_SUBJECT, cb=self._on_purge),
            await nc.subscribe(f"{CACHE_STORED_SUBJECT}.*", cb=self._on_stored),
        ]
        await nc.flush()

    async def unsubscribe(self) -> None:
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribe failed", exc_info=True)
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn_lookup(self, msg: Msg) -> None:
        self._spawn(self._lookup(msg))

    async def _spawn_store(self, msg: Msg) -> None:
        await self._stores.acquire()  # holds this subscription's queue while full
        self._spawn(self._store(msg))

    async def _lookup(self, msg: Msg) -> None:
        try:
            request = CacheLookup.model_validate_json(msg.data)
        except ValidationError:
            self.cache.metrics.lookups.labels("error").inc()
            await _answer(
                msg, CacheReply(hit=False, error="invalid lookup").model_dump_json().encode()
            )
            return
        reply = await self.cache.lookup(request)
        await _answer(msg, reply.model_dump_json(exclude_none=True).encode())

    async def _store(self, msg: Msg) -> None:
        try:
            await self._handle_store(msg)
        finally:
            self._stores.release()

    async def _handle_store(self, msg: Msg) -> None:
        try:
            request = CacheStore.model_validate_json(msg.data)
        except ValidationError:
            await _answer(msg, orjson.dumps({"stored": False, "error": "invalid store"}))
            return
        try:
            indexed = await self.cache.store_entry(request)
        except Exception as exc:
            log.warning("cache store failed: %s", type(exc).__name__)
            error = f"store unavailable: {type(exc).__name__}"
            await _answer(msg, orjson.dumps({"stored": False, "error": error}))
            return
        await _answer(msg, orjson.dumps({"stored": True}))
        await self._announce(indexed)

    async def _announce(self, indexed: Indexed) -> None:
        s = indexed.scope
        doc = {
            "g": s.gateway_id,
            "p": s.policy_id,
            "pt": s.partition,
            "f": s.filter_key,
            "x": indexed.exact_key,
            "v": indexed.vector,
            "exp": indexed.expires_at,
        }
        try:
            await self.nc.publish(f"{CACHE_STORED_SUBJECT}.{self.origin}", orjson.dumps(doc))
        except Exception as exc:
            log.warning("cache store announcement failed: %s", type(exc).__name__)

    async def _on_stored(self, msg: Msg) -> None:
        if msg.subject.endswith(self.origin):
            return
        try:
            doc = orjson.loads(msg.data)
            scope = Scope(doc["g"], doc["p"], doc["pt"], doc["f"])
            vector = doc.get("v")
            if vector is not None and not isinstance(vector, str):
                raise TypeError("a vector is a text")
            self.cache.add_announced(Indexed(scope, doc["x"], vector, float(doc["exp"])))
        except Exception as exc:
            log.warning("bad cache store announcement: %s", type(exc).__name__)

    async def _on_purge(self, msg: Msg) -> None:
        try:
            request = CachePurge.model_validate_json(msg.data)
        except ValidationError:
            log.warning("invalid cache purge")
            return
        try:
            await self.cache.purge(request)
        except Exception as exc:
            log.warning("cache purge of the store failed: %s", type(exc).__name__)
        await _answer(msg, orjson.dumps({"purged": True}))


async def _answer(msg: Msg, data: bytes) -> None:
    if not msg.reply:
        return
    try:
        await msg.respond(data)
    except Exception as exc:
        log.warning("cache reply failed: %s", type(exc).__name__)
