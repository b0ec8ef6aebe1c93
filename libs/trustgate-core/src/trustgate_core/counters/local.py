"""Counters kept in this process: exact here, shared with nobody.

For `trustgate run` without Redis (one process) and for tests. Entries leave with their
window: a sweep, at most once per `sweep_every_s`, drops what expired.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from trustgate_core.counters.base import Reservation, WindowHit


class _Log:
    __slots__ = ("hits", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.hits: deque[int] = deque()
        self.window_ms = window_ms


class LocalCounters:
    """The `Counters` port in one process's memory."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, sweep_every_s: float = 1.0
    ) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        # key -> [value, expires at (epoch ms)]
        self._values: dict[str, list[int]] = {}
        self._sweep_every_ms = int(sweep_every_s * 1000)
        self._next_sweep = 0
        self.unavailable_total = 0

    def __len__(self) -> int:
        """How many keys are held (expired ones until the next sweep)."""
        return len(self._logs) + len(self._values)

    def _now(self) -> int:
        now = int(self._clock() * 1000)
        if now >= self._next_sweep:
            self._sweep(now)
        return now

    def _sweep(self, now: int) -> None:
        self._next_sweep = now + self._sweep_every_ms
        for key in [k for k, log in self._logs.items() if _trim(log, now) == 0]:
            del self._logs[key]
        for key in [k for k, entry in self._values.items() if entry[1] <= now]:
            del self._values[key]

    async def hit(self, key: str, limit: int, window_ms: int, *, force: bool = False) -> WindowHit:
        now = self._now()
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log(window_ms)
        log.window_ms = window_ms
        count = _trim(log, now)
        allowed = count < limit
        if allowed or force:
            log.hits.append(now)
            count += 1
        hits = log.hits
        reset_ms = (hits[0] if hits else now) + window_ms
        retry_ms = 0
        if not allowed:
            frees = count - limit  # this many leaving makes room for one more
            retry_ms = hits[frees] + window_ms - now if 0 <= frees < count else window_ms
        return WindowHit(allowed, count, limit, reset_ms, retry_ms)

    async def reserve(
        self,
        keys: Sequence[str],
        maxima: Sequence[int],
        amount: int,
        ttls_ms: Sequence[int],
        *,
        force: bool = False,
    ) -> Reservation:
        if amount < 0:
            raise ValueError("reserve: amount must not be negative (adjust releases)")
        now = self._now()
        entries = [self._live(key, now) for key in keys]
        used = [entry[0] if entry else 0 for entry in entries]
        blocked = next(
            (
                i
                for i, (value, most) in enumerate(zip(used, maxima, strict=True))
                if value + amount > most
            ),
            -1,
        )
        if amount and (blocked == -1 or force):
            for i, (key, entry) in enumerate(zip(keys, entries, strict=True)):
                if entry is None:
                    entry = self._values[key] = [0, now + ttls_ms[i]]
                entry[0] += amount
                used[i] = entry[0]
        return Reservation(blocked == -1, tuple(used), blocked)

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        self.adjust_soon(keys, delta)

    def adjust_soon(self, keys: Sequence[str], delta: int) -> None:
        now = self._now()
        for key in keys:
            entry = self._live(key, now)
            if entry is not None:
                entry[0] = max(entry[0] + delta, 0)

    async def aclose(self) -> None:
        self._logs.clear()
        self._values.clear()

    def _live(self, key: str, now: int) -> list[int] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] <= now:
            del self._values[key]
            return None
        return entry


def _trim(log: _Log, now: int) -> int:
    """Drop the hits that left the window; return how many are left."""
    hits, oldest_kept = log.hits, now - log.window_ms
    while hits and hits[0] <= oldest_kept:
        hits.popleft()
    return len(hits)
