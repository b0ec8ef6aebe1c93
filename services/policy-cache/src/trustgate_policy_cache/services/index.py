"""The vector index: one group per scope, so the filter key, the partition, the policy
and the gateway are hard filters by construction. Entries past their expiry are never
returned and are dropped when met (and by ``sweep``).

A group of at most ``FLAT_LIMIT`` vectors is a matrix of unit vectors searched exactly by
one matrix-vector product (numpy's BLAS); a larger one becomes a usearch HNSW index
(cosine, half floats). Most scopes are small (with ``scope: consumer``, one per consumer
and filter key), and an HNSW index costs about 48 KiB even with one vector in it, eight
times a 1,536-dimension vector: the matrix costs the vectors and little more
(``docs/policy-cache.md``, "Memory")."""

from __future__ import annotations

import base64
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from usearch.index import Index

from trustgate_policy_cache.domain.entries import Scope

# Live candidates a lookup may try (one may have left the store since it was indexed);
# a round is widened while expired ones crowd it.
MAX_CANDIDATES = 4
#: a group with more vectors than this becomes an HNSW index. Below, one BLAS product over
#: the matrix is faster than HNSW's search, most of all on a CPU whose caches other
#: processes emptied, as between a gateway's requests (1,536 dimensions, one thread, each
#: search after 5 ms idle: 85 µs at 100 vectors, 190 µs at 400, 310 µs at 1,000, where
#: usearch's HNSW took 215, 315 and 485 µs and its brute-force search 195, 410 and
#: 810 µs), exact, and an insertion is a row written where HNSW's costs 100-300 µs. The
#: move to HNSW indexes the group's vectors at once (about 40 ms at 512, two threads)
FLAT_LIMIT = 512
#: an HNSW index keeps its vectors as half floats: at 2,000 vectors of 1,536 dimensions a
#: search takes 230 µs instead of 560 µs and an insertion 340 µs instead of 660 µs (one
#: thread, usearch 2.26), in half the memory; a similarity moves by about 0.001, well
#: inside any threshold's meaning (a candidate is then read back from the store)
HNSW_DTYPE = "f16"
#: how far below the threshold the index still offers a candidate: its similarities are
#: approximate (half floats), and the lookup decides on the exact one (``similarity``)
SLACK = 0.005

Vector = np.ndarray[tuple[int], np.dtype[np.float32]]
Vectors = np.ndarray[tuple[int, int], np.dtype[np.float32]]


@dataclass
class _Group:
    ndim: int
    index: Index | None = None  # HNSW, once the group outgrew FLAT_LIMIT
    rows: Vectors | None = None  # until then: unit vectors, one a row (spare rows at the end)
    order: list[int] = field(default_factory=list)  # ... and their labels, in row order
    labels: dict[str, int] = field(default_factory=dict)  # exact key -> label
    items: dict[int, tuple[str, float]] = field(default_factory=dict)  # label -> key, expiry

    def insert(self, label: int, values: Vector) -> None:
        """Add ``values`` (a unit vector) as ``label``."""
        if self.index is not None:
            self.index.add(label, values)
            return
        count = len(self.order)
        if self.rows is None or count == len(self.rows):  # a quarter more room
            grown = np.empty((count + max(16, count // 4), self.ndim), dtype=np.float32)
            if self.rows is not None:
                grown[:count] = self.rows
            self.rows = grown
        self.rows[count] = values
        self.order.append(label)
        if len(self.order) > FLAT_LIMIT:
            index = Index(ndim=self.ndim, metric="cos", dtype=HNSW_DTYPE)
            index.add(np.array(self.order, dtype=np.uint64), self.rows[: len(self.order)])
            self.index, self.rows, self.order = index, None, []

    def drop(self, label: int) -> None:
        exact_key, _ = self.items.pop(label)
        self.labels.pop(exact_key, None)
        if self.index is not None:
            self.index.remove(label)
            return
        assert self.rows is not None
        row, last = self.order.index(label), len(self.order) - 1
        self.rows[row] = self.rows[last]  # the last row takes its place
        self.order[row] = self.order[last]
        del self.order[last]
        if not self.order:
            self.rows = None

    def nearest(self, values: Vector, norm: float, count: int) -> list[tuple[int, float]]:
        """Up to ``count`` (label, cosine distance) of ``values`` (of length ``norm``),
        nearest first."""
        if self.index is not None:
            matches = self.index.search(values, count)
            return [
                (int(k), float(d)) for k, d in zip(matches.keys, matches.distances, strict=True)
            ]
        size = len(self.order)
        if self.rows is None or not size:
            return []
        scores = self.rows[:size] @ values  # the rows are unit vectors: cosine x norm
        rows = np.argpartition(scores, size - count)[size - count :] if count < size else None
        ranked = sorted(
            zip(
                scores.tolist() if rows is None else scores[rows].tolist(),
                range(size) if rows is None else rows.tolist(),
                strict=True,
            ),
            reverse=True,
        )
        return [(self.order[row], 1.0 - score / norm) for score, row in ranked]


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
        norm = _norm(values) if len(values) == group.ndim else None
        if norm is None:
            return
        old = group.labels.get(exact_key)
        if old is not None:
            group.drop(old)
        label = next(self._labels)
        group.insert(label, values / np.float32(norm))
        group.labels[exact_key] = label
        group.items[label] = (exact_key, expires_at)

    def search(
        self, scope: Scope, vector: str, threshold: float, now: float
    ) -> list[tuple[str, float]]:
        """Up to ``MAX_CANDIDATES`` live matches at or above ``threshold``, best first:
        (exact key, similarity). Synchronous, so the groups cannot change under it."""
        group = self._groups.get(scope)
        values = _array(vector)
        norm = _norm(values) if group is not None and len(values) == group.ndim else None
        if group is None or norm is None:
            return []
        found: list[tuple[str, float]] = []
        count = MAX_CANDIDATES
        while group.items:
            matches = group.nearest(values, norm, count)
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


class KnownKeys:
    """The live entries' keys, with their expiry (epoch seconds), by gateway and policy (a
    purge drops a policy's at once). Each is held as the hash of its partition and exact
    key, about 0.1 KiB an entry. Two keys with one hash (one chance in 2**64 a pair) cost a
    read of the store that finds nothing, and the other key's entry missing until the
    next rebuild: never a wrong answer (the store is read by the full key)."""

    def __init__(self) -> None:
        self._policies: dict[tuple[str, str], dict[int, float]] = {}

    def add(self, scope: Scope, exact_key: str, expires_at: float) -> None:
        keys = self._policies.setdefault((scope.gateway_id, scope.policy_id), {})
        keys[hash((scope.partition, exact_key))] = expires_at

    def live(self, scope: Scope, exact_key: str, now: float) -> bool:
        keys = self._policies.get((scope.gateway_id, scope.policy_id))
        if keys is None:
            return False
        key = hash((scope.partition, exact_key))
        expires_at = keys.get(key)
        if expires_at is None:
            return False
        if expires_at <= now:
            del keys[key]
            return False
        return True

    def discard(self, scope: Scope, exact_key: str) -> None:
        keys = self._policies.get((scope.gateway_id, scope.policy_id))
        if keys is not None:
            keys.pop(hash((scope.partition, exact_key)), None)

    def purge(self, gateway_id: str, policy_id: str) -> None:
        self._policies.pop((gateway_id, policy_id), None)

    def sweep(self, now: float) -> None:
        for policy, keys in list(self._policies.items()):
            for key in [k for k, exp in keys.items() if exp <= now]:
                del keys[key]
            if not keys:
                del self._policies[policy]


def similarity(a: str, b: str) -> float:
    """The exact cosine similarity of two ``encode_vector`` texts (0 for vectors of other
    sizes, or a zero or not finite one)."""
    x, y = _array(a), _array(b)
    nx, ny = _norm(x), _norm(y)
    if len(x) != len(y) or nx is None or ny is None:
        return 0.0
    return float(np.dot(x, y)) / (nx * ny)


def _array(vector: str) -> Vector:
    """``encode_vector``'s text (float32 little-endian, base64) as an array, without the
    tuple of Python floats ``decode_vector`` builds."""
    data = base64.b64decode(vector)  # binascii.Error (a ValueError) if it is not base64
    if len(data) % 4:
        raise ValueError("a vector is whole float32 values")
    return np.frombuffer(data, dtype="<f4")


def _norm(values: Vector) -> float | None:
    """The length of ``values``; ``None`` for a zero or not finite vector."""
    squared = float(np.dot(values, values))
    return math.sqrt(squared) if squared and math.isfinite(squared) else None
