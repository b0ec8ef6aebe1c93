"""The composition root: the entry store (Redis or memory), the index, the NATS
handlers, health and metrics. The runtime boots while NATS or Redis is down: a task
connects (with backoff), subscribes, then rebuilds the index from the store; the service
is ready once both are done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from trustgate_core.backoff import Backoff, retry
from trustgate_core.bus import keep_connecting
from trustgate_core.observability.metrics import Aggregates, render
from trustgate_core.service import HealthApp, Lifecycle
from trustgate_core.tasks import cancel_and_wait
from trustgate_policy_cache import __version__
from trustgate_policy_cache.adapters.store import EntryStore, MemoryStore, RedisStore
from trustgate_policy_cache.handlers.bus import BusHandlers
from trustgate_policy_cache.services.cache import PolicyCache
from trustgate_policy_cache.services.index import VectorIndex
from trustgate_policy_cache.services.metrics import CacheMetrics
from trustgate_policy_cache.settings import PolicyCacheSettings

SERVICE_NAME = "trustgate-policy-cache"
# How often expired entries leave the index (and the memory store); lookups never
# return them in between.
SWEEP_INTERVAL = 10.0

log = logging.getLogger(__name__)


def entry_store(settings: PolicyCacheSettings) -> EntryStore:
    url = settings.redis_url
    return RedisStore(url, settings.redis_timeout) if url else MemoryStore()


class PolicyCacheRuntime(Lifecycle):
    def __init__(self, settings: PolicyCacheSettings) -> None:
        self.settings = settings
        self.aggregates = Aggregates()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.aggregates)
        self.index = VectorIndex()
        self.store = entry_store(settings)
        self.cache = PolicyCache(
            self.store, self.index, CacheMetrics(self.registry, lambda: len(self.index))
        )
        self.nc = NATS()
        self.handlers = BusHandlers(self.nc, self.cache)
        self.loaded = False
        self._resyncing: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.app = HealthApp(
            SERVICE_NAME,
            __version__,
            is_ready=lambda: self.nc.is_connected and self.loaded,
            dependencies=self.dependencies,
            metrics=lambda: render(self.registry),
        )

    def dependencies(self) -> dict[str, str]:
        return {
            "nats": "ok" if self.nc.is_connected else "unavailable",
            "index": "ok" if self.loaded else "unavailable",
        }

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="policy-cache-boot"),
            asyncio.create_task(self._sweep(), name="policy-cache-sweep"),
        ]

    async def _run(self) -> None:
        await keep_connecting(
            self.nc, self.settings.nats_url, name=SERVICE_NAME, on_reconnect=self._resync
        )
        # Subscribed before the rebuild: stores announced meanwhile are not missed.
        await retry(self.handlers.subscribe, what="policy-cache: subscribe", log=log)
        count = await retry(
            self.cache.rebuild,
            what="policy-cache: index rebuild",
            backoff=Backoff(0.2, 5.0),
            log=log,
        )
        self.loaded = True
        log.info("policy-cache: index rebuilt with %d entries", count)

    def _resync(self) -> None:
        """After a reconnect: what other replicas stored while this one was cut off was
        announced to nobody here, so the index is rebuilt from the shared store (entries
        it already holds are re-indexed in place). A store in this process's memory is
        this replica's alone: nothing to catch up. Before the first rebuild has completed
        it is that rebuild which passes again."""
        if isinstance(self.store, MemoryStore):
            return
        self.cache.may_have_missed()
        if not self.loaded:
            return
        if self._resyncing is not None and not self._resyncing.done():
            return  # the rebuild under way passes again
        self._resyncing = asyncio.create_task(self._rebuild_after_reconnect())

    async def _rebuild_after_reconnect(self) -> None:
        try:
            count = await self.cache.rebuild()
        except Exception as exc:  # the store is down too: its entries come back as hits
            log.warning("policy-cache: index resync failed: %s", type(exc).__name__)
            return
        self.cache.metrics.resyncs.inc()
        log.info("policy-cache: index resynced after a reconnect, %d entries", count)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.time()
            self.cache.sweep(now)
            if isinstance(self.store, MemoryStore):
                self.store.sweep(now)

    async def stop(self) -> None:
        if self._resyncing is not None:
            await cancel_and_wait(self._resyncing)
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        await self.handlers.unsubscribe()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.close(), 5.0)
        with contextlib.suppress(Exception):
            await self.store.close()
