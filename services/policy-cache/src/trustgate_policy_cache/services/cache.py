"""The cache's use cases: lookup (exact, then semantic), store, purge, and the rebuild of
the index from the store. Every failure of the store becomes an error reply: a lookup is
always answered.

The replica knows every live entry's key (``KnownKeys``: its own stores, the other
replicas' announced ones, the store's at a rebuild), so a lookup reads the store only for
an entry there is: a miss, the common case, costs no round trip to Redis. Until a rebuild
has completed (at start, and again after a reconnect to NATS, when announcements may have
been missed) every exact key is read from the store."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from trustgate_core.cache import CacheLookup, CachePurge, CacheReply, CacheStore
from trustgate_policy_cache.adapters.store import EntryStore
from trustgate_policy_cache.domain.entries import Entry, Scope, entry_key, from_store, policy_prefix
from trustgate_policy_cache.services.index import KnownKeys, VectorIndex, similarity
from trustgate_policy_cache.services.metrics import CacheMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Indexed:
    """What a replica tells the others after a store, so they know its key and index its
    vector (``None``: the exact tier's alone)."""

    scope: Scope
    exact_key: str
    vector: str | None
    expires_at: float


class PolicyCache:
    def __init__(self, store: EntryStore, index: VectorIndex, metrics: CacheMetrics) -> None:
        self.store = store
        self.index = index
        self.metrics = metrics
        self.keys = KnownKeys()
        #: whether ``keys`` holds every live entry's key (a rebuild completed since the
        #: start or the last reconnect): until then every exact key is read from the store
        self.all_known = False
        self._missed = 0  # how many times announcements may have been lost

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
        scope = Scope(gateway, policy, request.partition, request.filter_key)
        now = time.time()
        if not self.all_known or self.keys.live(scope, request.exact_key, now):
            key = entry_key(gateway, policy, request.partition, request.exact_key)
            exact = await self.store.get(key)
            if exact is None:
                self.keys.discard(scope, request.exact_key)  # expired or purged elsewhere
            elif exact.scope.filter_key == request.filter_key:
                return CacheReply(hit=True, entry=exact.payload, similarity=1.0, exact=True)
        if request.vector is None:
            return CacheReply(hit=False)
        for exact_key, _ in self.index.search(scope, request.vector, request.threshold, now):
            entry = await self.store.get(entry_key(gateway, policy, request.partition, exact_key))
            if entry is None or entry.scope != scope or entry.vector is None:
                self.index.discard(scope, exact_key)  # expired or purged elsewhere
                if entry is None:
                    self.keys.discard(scope, exact_key)
                continue
            # the index's similarity is approximate: the threshold holds on the exact one
            score = min(similarity(request.vector, entry.vector), 1.0)
            if score >= request.threshold:
                return CacheReply(hit=True, entry=entry.payload, similarity=score)
        return CacheReply(hit=False)

    async def store_entry(self, request: CacheStore) -> Indexed:
        """Keep the entry (raises if the store fails); what to announce."""
        entry = from_store(request, time.time())
        await self.store.put(entry, request.ttl_seconds)
        self.metrics.stores.inc()
        return self.add(entry)

    def add(self, entry: Entry) -> Indexed:
        """Know the entry's key and index its vector; an undecodable one leaves the entry
        to the exact tier."""
        self.keys.add(entry.scope, entry.exact_key, entry.expires_at)
        vector = entry.vector
        if vector is not None:
            try:
                self.index.add(entry.scope, entry.exact_key, vector, entry.expires_at)
            except ValueError:
                log.warning("cache entry with an invalid vector: not indexed")
                vector = None
        return Indexed(entry.scope, entry.exact_key, vector, entry.expires_at)

    def add_announced(self, indexed: Indexed) -> None:
        if indexed.expires_at <= time.time():
            return
        self.keys.add(indexed.scope, indexed.exact_key, indexed.expires_at)
        if indexed.vector is not None:
            self.index.add(indexed.scope, indexed.exact_key, indexed.vector, indexed.expires_at)

    def may_have_missed(self) -> None:
        """Announcements and purges may have been lost (a reconnect): forget what this
        process keeps of the store, and read every exact key from it until a rebuild
        started after this completes."""
        self.all_known = False
        self._missed += 1
        self.store.forget()

    def sweep(self, now: float) -> None:
        """Drop what expired from the index and the known keys."""
        self.index.sweep(now)
        self.keys.sweep(now)

    async def purge(self, request: CachePurge) -> None:
        """Drop the policy's entries from this replica's index, then from the store (every
        replica does both: the store's part is idempotent)."""
        gateway, policy = str(request.gateway_id), str(request.policy_id)
        self.index.purge(gateway, policy)
        self.keys.purge(gateway, policy)
        self.metrics.purges.inc()
        await self.store.purge(policy_prefix(gateway, policy))

    async def rebuild(self) -> int:
        """Know and index every live entry of the store; how many vectors it indexed. A
        pass during which announcements may have been missed (``may_have_missed``) is
        followed by another: what was missed may not be in its scan."""
        while True:
            missed, added = self._missed, 0
            async for entry in self.store.scan():
                if self.add(entry).vector is not None:
                    added += 1
            if missed == self._missed:
                self.all_known = True
                return added
