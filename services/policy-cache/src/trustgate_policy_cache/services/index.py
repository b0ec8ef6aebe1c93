"""The vector index: one group per scope, so the filter key, the partition, the policy
and the gateway are hard filters by construction. Entries past their expiry are never
returned and are dropped when met (and by ``sweep``).

A group of at most ``FLAT_LIMIT`` vectors is a plain matrix searched exactly (usearch's
brute-force ``search``); a larger one becomes a usearch HNSW index (cosine, half floats). Most scopes
are small (with ``scope: consumer``, one per consumer and filter key), and an HNSW index
costs about 48 KiB even with one vector in it, eight times a 1,536-dimension vector: the
matrix costs the vectors and little more (``docs/policy-cache.md``, "Memory")."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field

import numpy as np
from usearch.index import Index
from usearch.index import search as exact_search

from trustgate_policy_cache.domain.entries import Scope

# Live candidates a lookup may try (one may have left the store since it was indexed);
# a round is widened while expired ones crowd it.
MAX_CANDIDATES = 4
#: a group with more vectors than this becomes an HNSW index. Below, the exact search is
#: as fast (1,536 dimensions, one thread: 30 µs at 64 vectors, 100 µs at 256, as HNSW's
#: 40 and 110) and adding a vector costs a copy of the matrix (50 µs at 256) where HNSW's
#: insertion costs 300-400 µs
FLAT_LIMIT = 256
#: an HNSW index keeps its vectors as half floats: at 2,000 vectors of 1,536 dimensions a
#: search takes 230 µs instead of 560 µs and an insertion 340 µs instead of 660 µs (one
#: thread, usearch 2.26), in half the memory; a similarity moves by about 0.001, well
#: inside any threshold's meaning (a candidate is then read back from the store)
HNSW_DTYPE = "f16"
#: how far below the threshold the index still offers a candidate: its similarities are
#: approximate (half floats), and the lookup decides on the exact one (``similarity``)
SLACK = 0.005

Vectors = np.ndarray[tuple[int, int], np.dtype[np.float32]]


@dataclass
class _Group:
    ndim: int
    index: Index | None = None  # HNSW, once the group outgrew FLAT_LIMIT
    rows: Vectors | None = None  # until then: the vectors, one a row ...
    order: list[int] = field(default_factory=list)  # ... and their labels, in row order
    labels: dict[str, int] = field(default_factory=dict)  # exact key -> label
    items: dict[int, tuple[str, float]] = field(default_factory=dict)  # label -> key, expiry

    def insert(self, label: int, values: np.ndarray[tuple[int], np.dtype[np.float32]]) -> None:
        if self.index is not None:
            self.index.add(label, values)
            return
        row = values.reshape(1, -1)
        self.rows = row.copy() if self.rows is None else np.vstack((self.rows, row))
        self.order.append(label)
        if len(self.order) > FLAT_LIMIT:
            index = Index(ndim=self.ndim, metric="cos", dtype=HNSW_DTYPE)
            index.add(np.array(self.order, dtype=np.uint64), self.rows)
            self.index, self.rows, self.order = index, None, []

    def drop(self, label: int) -> None:
        exact_key, _ = self.items.pop(label)
        self.labels.pop(exact_key, None)
        if self.index is not None:
            self.index.remove(label)
            return
        assert self.rows is not None
        row = self.order.index(label)
        del self.order[row]
        self.rows = np.delete(self.rows, row, axis=0) if self.order else None

    def nearest(
        self, values: np.ndarray[tuple[int], np.dtype[np.float32]], count: int
    ) -> list[tuple[int, float]]:
        """Up to ``count`` (label, cosine distance), nearest first."""
        if self.index is not None:
            matches = self.index.search(values, count)
            return [
                (int(k), float(d)) for k, d in zip(matches.keys, matches.distances, strict=True)
            ]
        if self.rows is None:
            return []
        found = exact_search(
            self.rows, values, min(count, len(self.order)), "cos", exact=True, threads=1
        )
        return [
            (self.order[int(k)], float(d)) for k, d in zip(found.keys, found.distances, strict=True)
        ]


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
            group = _Group(ndim=len(values))
            self._groups[scope] = group
        if len(values) != group.ndim or not np.any(values):
            return
        old = group.labels.get(exact_key)
        if old is not None:
            group.drop(old)
        label = next(self._labels)
        group.insert(label, values)
        group.labels[exact_key] = label
        group.items[label] = (exact_key, expires_at)

    def search(
        self, scope: Scope, vector: str, threshold: float, now: float
    ) -> list[tuple[str, float]]:
        """Up to ``MAX_CANDIDATES`` live matches at or above ``threshold``, best first:
        (exact key, similarity). Synchronous, so the groups cannot change under it."""
        group = self._groups.get(scope)
        values = _array(vector)
        if group is None or len(values) != group.ndim or not np.any(values):
            return []
        found: list[tuple[str, float]] = []
        count = MAX_CANDIDATES
        while group.items:
            matches = group.nearest(values, count)
            expired = False
            for label, distance in matches:
                similarity = 1.0 - distance
                if similarity < threshold - SLACK:
                    return found
                exact_key, expires_at = group.items[label]
                if expires_at <= now:
                    group.drop(label)
                    expired = True
                elif len(found) < MAX_CANDIDATES:
                    found.append((exact_key, min(similarity, 1.0)))
            if len(found) >= MAX_CANDIDATES or not expired or len(matches) < count:
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


def similarity(a: str, b: str) -> float:
    """The exact cosine similarity of two ``encode_vector`` texts (0 for vectors of other
    sizes, or a zero one)."""
    x, y = _array(a), _array(b)
    if len(x) != len(y):
        return 0.0
    norms = float(np.linalg.norm(x)) * float(np.linalg.norm(y))
    return float(np.dot(x, y)) / norms if norms else 0.0


def _array(vector: str) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    """``encode_vector``'s text (float32 little-endian, base64) as an array, without the
    tuple of Python floats ``decode_vector`` builds."""
    data = base64.b64decode(vector)  # binascii.Error (a ValueError) if it is not base64
    if len(data) % 4:
        raise ValueError("a vector is whole float32 values")
    return np.frombuffer(data, dtype="<f4")
