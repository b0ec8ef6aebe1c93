"""Retrying with exponential backoff: the one way a TrustGate service waits between attempts
(connecting to NATS, starting a replica, resubscribing, starting a sink)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

_log = logging.getLogger(__name__)


class Backoff:
    """Delays that start at ``minimum`` and double up to ``maximum``; ``reset()`` after a
    success starts over."""

    def __init__(self, minimum: float = 0.2, maximum: float = 5.0) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError("backoff needs 0 < minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self._next = minimum

    def next_delay(self) -> float:
        """The delay to wait now; the following one doubles (up to ``maximum``)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.minimum


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff | None = None,
    log: logging.Logger | None = None,
) -> T:
    """Await ``attempt()`` until it returns, waiting with ``backoff`` after each failure (an
    ``Exception``, logged as a warning naming ``what``). Cancellation ends it at once."""
    backoff = backoff or Backoff()
    logger = log or _log
    while True:
        try:
            return await attempt()
        except Exception as exc:
            delay = backoff.next_delay()
            logger.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
