"""What a counter store answers, and the port the limit plugins use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class CountersUnavailable(Exception):
    """Redis unreachable, slow (over the timeout) or erroring."""


@dataclass(slots=True, frozen=True)
class WindowHit:
    """One hit on a sliding-window log."""

    allowed: bool
    count: int  # hits in the window, including this one when it was counted
    limit: int
    reset_ms: int  # epoch ms when the oldest counted hit leaves the window (now+window if none)
    retry_after_ms: int  # 0 when allowed; else ms until one slot frees

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def retry_after_s(self) -> int:
        """`Retry-After` in whole seconds, rounded up (0 when allowed)."""
        return -(-self.retry_after_ms // 1000)


@dataclass(slots=True, frozen=True)
class Reservation:
    """A fixed-window budget reservation over one or more keys."""

    allowed: bool
    used: tuple[int, ...]  # per key: the value after it when allowed, else the current value
    blocked: int  # index of the first key that would go over its maximum, -1 when allowed


class Counters(Protocol):
    """Counters shared by every process that enforces the same limits."""

    #: Operations that failed with `CountersUnavailable` (and settlements lost), for metrics.
    unavailable_total: int

    async def hit(self, key: str, limit: int, window_ms: int, *, force: bool = False) -> WindowHit:
        """Sliding window (a log of hits in the last ``window_ms``), atomic: counted only
        if it fits (count < limit), or always when ``force`` (observe mode)."""
        ...

    async def reserve(
        self,
        keys: Sequence[str],
        maxima: Sequence[int],
        amount: int,
        ttls_ms: Sequence[int],
        *,
        force: bool = False,
    ) -> Reservation:
        """Atomically: if for every key used+amount <= max, add amount to all (creating a
        missing key with its ttl); else add nothing (unless ``force``). ``amount`` may be 0
        (a read)."""
        ...

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        """Add ``delta`` (may be negative) to the keys that still exist; a key whose window
        is over is left alone; never below 0."""
        ...

    def adjust_soon(self, keys: Sequence[str], delta: int) -> None:
        """`adjust` without waiting: failures are logged once per burst and counted."""
        ...

    async def aclose(self) -> None: ...
