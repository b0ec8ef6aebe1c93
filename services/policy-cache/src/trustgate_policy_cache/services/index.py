"""The vector index: one usearch HNSW index (cosine) per scope, so the filter key, the
partition, the policy and the gateway are hard filters by construction. Entries past
their expiry are never returned and are dropped when met (and by ``sweep``)."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field

import numpy as np
from usearch.index import Index

from trustgate_policy_cache.domain.entries import Scope

# Live candidates a lookup may try (one may have left the store since it was indexed);
# a round is widened while expired ones crowd it.
MAX_CANDIDATES = 4


@dataclass
class _Group:
    index: Index
    labels: dict[str, int] = field(default_factory=dict)  # exact key -> label
    items: dict[int, tuple[str, float]] = field(default_factory=dict)  # label -> key, expiry

    def drop(self, label: int) -> None:
        exact_key, _ = self.items.pop(label)
        self.labels.pop(exact_key, None)
        self.index.remove(label)


class VectorIndex:
    def __init__(self) -> None:
        self._groups: dict[Scope, _Group] = {}
        self._labels = itertools.count(1)

    def __len__(self) -> int:
        return sum(len(group.items) for group in self._groups.values())

    def add(self, scope: Scope, exact_key: str, vector: str, expires_at: float) -> None:
        """Index (or re-index) ``exact_key``; a vector of another dimension than the
        scope's first one is not indexed (the exact tier still finds the entry)."""
        values = _array(vector)
        group = self._groups.get(scope)
        if group is None:
            group = _Group(Index(ndim=len(values), metric="cos", dtype="f32"))
            self._groups[scope] = group
        if len(values) != group.index.ndim or not np.any(values):
            return
        old = group.labels.get(exact_key)
        if old is not None:
            group.drop(old)
        label = next(self._labels)
        group.index.add(label, values)
        group.labels[exact_key] = label
        group.items[label] = (exact_key, expires_at)

    def search(
        self, scope: Scope, vector: str, threshold: float, now: float
    ) -> list[tuple[str, float]]:
        """Up to ``MAX_CANDIDATES`` live matches at or above ``threshold``, best first:
        (exact key, similarity). Synchronous, so the groups cannot change under it."""
        group = self._groups.get(scope)
        values = _array(vector)
        if group is None or len(values) != group.index.ndim or not np.any(values):
            return []
        found: list[tuple[str, float]] = []
        count = MAX_CANDIDATES
        while group.items:
            matches = group.index.search(values, count)
            expired = False
            for label, distance in zip(matches.keys, matches.distances, strict=True):
                similarity = 1.0 - float(distance)
                if similarity < threshold - 1e-6:
                    return found
                exact_key, expires_at = group.items[int(label)]
                if expires_at <= now:
                    group.drop(int(label))
                    expired = True
                elif len(found) < MAX_CANDIDATES:
                    found.append((exact_key, min(similarity, 1.0)))
            if len(found) >= MAX_CANDIDATES or not expired or len(matches.keys) < count:
                return found
            found.clear()  # the next, wider round sees the live ones again
            count *= 2
        return found

    def discard(self, scope: Scope, exact_key: str) -> None:
        group = self._groups.get(scope)
        if group is not None and exact_key in group.labels:
            group.drop(group.labels[exact_key])

    def purge(self, gateway_id: str, policy_id: str) -> None:
        for scope in [
            s for s in self._groups if (s.gateway_id, s.policy_id) == (gateway_id, policy_id)
        ]:
            del self._groups[scope]

    def sweep(self, now: float) -> None:
        for scope, group in list(self._groups.items()):
            for label in [k for k, (_, exp) in group.items.items() if exp <= now]:
                group.drop(label)
            if not group.items:
                del self._groups[scope]


def _array(vector: str) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    """``encode_vector``'s text (float32 little-endian, base64) as an array, without the
    tuple of Python floats ``decode_vector`` builds."""
    data = base64.b64decode(vector)  # binascii.Error (a ValueError) if it is not base64
    if len(data) % 4:
        raise ValueError("a vector is whole float32 values")
    return np.frombuffer(data, dtype="<f4")
