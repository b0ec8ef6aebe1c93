"""The service's metrics. The names are a contract: the dashboard reads them."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

RESULTS = ("hit_exact", "hit_semantic", "miss", "error")


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry, index_size: Callable[[], int]) -> None:
        self.lookups = Counter(
            "trustgate_policy_cache_lookups",
            "Cache lookups answered, by result.",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self.lookups.labels(result)
        self.stores = Counter(
            "trustgate_policy_cache_stores", "Entries stored by this replica.", registry=registry
        )
        self.purges = Counter(
            "trustgate_policy_cache_purges",
            "Policy purges applied by this replica.",
            registry=registry,
        )
        self.resyncs = Counter(
            "trustgate_policy_cache_resyncs",
            "Index rebuilds from the store after a reconnect to NATS (stores announced "
            "while this replica was cut off reach its index this way).",
            registry=registry,
        )
        entries = Gauge(
            "trustgate_policy_cache_entries",
            "Vectors in this replica's index.",
            registry=registry,
        )
        entries.set_function(lambda: float(index_size()))
