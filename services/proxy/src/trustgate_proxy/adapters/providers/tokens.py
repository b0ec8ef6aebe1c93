"""Short-lived bearer tokens (Vertex AI service accounts, Azure Entra ID), minted on first
use, cached until shortly before they expire, and refreshed by one caller at a time while
the others wait for its result (single flight)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# A token this close to its expiry is not used for a new request any more.
REFRESH_MARGIN = 60.0

Mint = Callable[[], Awaitable[tuple[str, float]]]
"""Mints a token: ``(token, seconds until it expires)``; raises ``ProviderCredentialError``."""


class BearerCache:
    __slots__ = ("_clock", "_expires", "_lock", "_mint", "_token", "margin", "mints")

    def __init__(
        self,
        mint: Mint,
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mint = mint
        self._clock = clock
        self.margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.mints = 0  # how many tokens were minted (for tests and diagnostics)

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._expires - self.margin:
            return self._token
        return None

    async def token(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()  # minted by the caller we waited for
            if token is not None:
                return token
            started = self._clock()
            token, lifetime = await self._mint()
            self.mints += 1
            self._token, self._expires = token, started + max(lifetime, 0.0)
            return token
