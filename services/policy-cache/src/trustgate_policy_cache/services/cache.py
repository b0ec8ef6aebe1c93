"""The cache's use cases: lookup (exact, then semantic), store, purge, and the rebuild of
the index from the store. Every failure of the store becomes an error reply: a lookup is
always answered."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from trustgate_core.cache import CacheLookup, CachePurge, CacheReply, CacheStore
from trustgate_policy_cache.adapters.store import EntryStore
from trustgate_policy_cache.domain.entries import Entry, Scope, entry_key, from_store, policy_prefix
from trustgate_policy_cache.services.index import VectorIndex, similarity
from trustgate_policy_cache.services.metrics import CacheMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Indexed:
    """What a replica tells the others after a store, so their indexes add it."""

    scope: Scope
    exact_key: str
    vector: str
    expires_at: float


class PolicyCache:
    def __init__(self, store: EntryStore, index: VectorIndex, metrics: CacheMetrics) -> None:
        self.store = store
        self.index = index
        self.metrics = metrics

    async def lookup(self, request: CacheLookup) -> CacheReply:
        try:
            reply = await self._lookup(request)
        except Exception as exc:
            log.warning("cache lookup failed: %s", type(exc).__name__)
            self.metrics.lookups.labels("error").inc()
            return CacheReply(hit=False, error=f"store unavailable: {type(exc).__name__}")
        result = "miss" if not reply.hit else "hit_exact" if reply.exact else "hit_semantic"
        self.metrics.lookups.labels(result).inc()
        return reply

    async def _lookup(self, request: CacheLookup) -> CacheReply:
        gateway, policy = str(request.gateway_id), str(request.policy_id)
        exact = await self.store.get(
            entry_key(gateway, policy, request.partition, request.exact_key)
        )
        if exact is not None and exact.scope.filter_key == request.filter_key:
            return CacheReply(hit=True, entry=exact.payload, similarity=1.0, exact=True)
        if request.vector is None:
            return CacheReply(hit=False)
        scope = Scope(gateway, policy, request.partition, request.filter_key)
        for exact_key, _ in self.index.search(
            scope, request.vector, request.threshold, time.time()
        ):
            entry = await self.store.get(entry_key(gateway, policy, request.partition, exact_key))
            if entry is None or entry.scope != scope or entry.vector is None:
                self.index.discard(scope, exact_key)  # expired or purged elsewhere
                continue
            # the index's similarity is approximate: the threshold holds on the exact one
            score = min(similarity(request.vector, entry.vector), 1.0)
            if score >= request.threshold:
                return CacheReply(hit=True, entry=entry.payload, similarity=score)
        return CacheReply(hit=False)

    async def store_entry(self, request: CacheStore) -> Indexed | None:
        """Keep the entry (raises if the store fails); what to announce, if it has a vector."""
        entry = from_store(request, time.time())
        await self.store.put(entry, request.ttl_seconds)
        self.metrics.stores.inc()
        return self.add(entry)

    def add(self, entry: Entry) -> Indexed | None:
        """Index the entry's vector; an undecodable one leaves it to the exact tier."""
        if entry.vector is None:
            return None
        try:
            self.index.add(entry.scope, entry.exact_key, entry.vector, entry.expires_at)
        except ValueError:
            log.warning("cache entry with an invalid vector: not indexed")
            return None
        return Indexed(entry.scope, entry.exact_key, entry.vector, entry.expires_at)

    def add_announced(self, indexed: Indexed) -> None:
        if indexed.expires_at > time.time():
            self.index.add(indexed.scope, indexed.exact_key, indexed.vector, indexed.expires_at)

    async def purge(self, request: CachePurge) -> None:
        """Drop the policy's entries from this replica's index, then from the store (every
        replica does both: the store's part is idempotent)."""
        gateway, policy = str(request.gateway_id), str(request.policy_id)
        self.index.purge(gateway, policy)
        self.metrics.purges.inc()
        await self.store.purge(policy_prefix(gateway, policy))

    async def rebuild(self) -> int:
        """Index every live entry of the store; how many."""
        added = 0
        async for entry in self.store.scan():
            if self.add(entry) is not None:
                added += 1
        return added
