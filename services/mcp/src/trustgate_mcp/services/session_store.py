"""What replicas share about live sessions besides the sealed id itself: the upstream
sessions opened after it was sealed (an upstream that forgot one and was initialized
again, or one that was down at ``initialize`` under ``fail_mode: open``) and the sessions
ended by ``DELETE``.

Kept per session nonce for the session's remaining lifetime: in Redis when the plane
shares counters there (a hash ``trustgate:mcp:session:<nonce>``, on the counters'
connection, its deadline and failure mode), else in this process. One read per request.
A replica that finds a replacement uses it instead of initializing the upstream again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol
from uuid import UUID

import orjson

from trustgate_core.counters import Counters, CountersUnavailable, RedisCounters

_KEY_PREFIX: Final = "trustgate:mcp:session:"
_TERMINATED: Final = "terminated"


@dataclass(slots=True)
class SessionState:
    terminated: bool = False
    # registry id -> (upstream session id, protocol version), newer than the sealed ones
    replacements: dict[UUID, tuple[str | None, str]] = field(default_factory=dict)


class SessionStore(Protocol):
    async def state(self, nonce: str) -> SessionState:
        """Never raises: a store that cannot be read knows nothing."""
        ...

    async def replace(
        self, nonce: str, registry_id: UUID, session: tuple[str | None, str], ttl: float
    ) -> None: ...

    async def terminate(self, nonce: str, ttl: float) -> None: ...


class LocalSessionStore:
    """In this process, at most ``max_entries`` sessions (the oldest written go first)."""

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._held: dict[str, tuple[float, SessionState]] = {}

    async def state(self, nonce: str) -> SessionState:
        entry = self._held.get(nonce)
        if entry is None:
            return SessionState()
        if entry[0] <= self._clock():
            del self._held[nonce]
            return SessionState()
        return entry[1]

    def _entry(self, nonce: str, ttl: float) -> SessionState:
        entry = self._held.pop(nonce, None)
        state = entry[1] if entry is not None else SessionState()
        self._held[nonce] = (self._clock() + ttl, state)
        while len(self._held) > self.max_entries:
            del self._held[next(iter(self._held))]
        return state

    async def replace(
        self, nonce: str, registry_id: UUID, session: tuple[str | None, str], ttl: float
    ) -> None:
        self._entry(nonce, ttl).replacements[registry_id] = session

    async def terminate(self, nonce: str, ttl: float) -> None:
        self._entry(nonce, ttl).terminated = True


class RedisSessionStore:
    def __init__(self, counters: RedisCounters) -> None:
        self._counters = counters

    async def state(self, nonce: str) -> SessionState:
        try:
            flat = await self._counters.execute("HGETALL", _KEY_PREFIX + nonce)
        except CountersUnavailable:
            return SessionState()
        state = SessionState()
        if not isinstance(flat, list):
            return state
        for name, value in zip(flat[::2], flat[1::2], strict=True):
            key = name.decode() if isinstance(name, bytes) else str(name)
            if key == _TERMINATED:
                state.terminated = True
                continue
            try:
                sid, version = orjson.loads(value)
                state.replacements[UUID(hex=key)] = (sid, version)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue
        return state

    async def _set(self, nonce: str, name: str, value: bytes, ttl: float) -> None:
        key = _KEY_PREFIX + nonce
        try:
            await self._counters.execute("HSET", key, name, value)
            await self._counters.execute("PEXPIRE", key, max(1, int(ttl * 1000)))
        except CountersUnavailable:
            return

    async def replace(
        self, nonce: str, registry_id: UUID, session: tuple[str | None, str], ttl: float
    ) -> None:
        await self._set(nonce, registry_id.hex, orjson.dumps(list(session)), ttl)

    async def terminate(self, nonce: str, ttl: float) -> None:
        await self._set(nonce, _TERMINATED, b"1", ttl)


def session_store(counters: Counters) -> SessionStore:
    """In Redis when the counters are there, else in this process."""
    if isinstance(counters, RedisCounters):
        return RedisSessionStore(counters)
    return LocalSessionStore()
