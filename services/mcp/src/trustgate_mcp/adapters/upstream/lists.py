"""Upstream lists (tools, resources, templates, prompts) kept for a while.

An entry belongs to one registry object: a config change replaces the object, so the
next caller fetches again without anyone invalidating. Callers asking for one key while it
is being fetched share that fetch (an agent's first ``tools/list`` fans out to every
server; a hundred agents connecting at once must not make a hundred fetches each).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from trustgate_core.models import Registry
from trustgate_mcp.services.ports import ListKind

# (registry id, credential key, kind)
ListKey = tuple[UUID, str, ListKind]
Items = list[dict[str, Any]]
# Lists kept (per registry, caller credential and kind) before expired ones are pruned:
# passthrough and exchange keep one per caller token.
MAX_ENTRIES = 4096


@dataclass(slots=True)
class _Entry:
    registry: Registry
    expires: float
    items: Items


@dataclass(slots=True)
class _Fetch:
    registry: Registry
    task: asyncio.Task[Items]


def _retrieve(task: asyncio.Task[Items]) -> None:
    """A fetch whose every waiter was cancelled must not log 'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


class ListCache:
    """The lists it returns are the ones it keeps, not copies: the catalog recognises an
    unchanged catalog by their identity (so it is not rebuilt per call), and nobody
    mutates them."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[ListKey, _Entry] = {}
        self._fetches: dict[ListKey, _Fetch] = {}
        # Bumped by every drop: a fetch that started before a drop is not kept.
        self._generation: dict[UUID, int] = {}

    async def get(
        self, key: ListKey, registry: Registry, fetch: Callable[[], Awaitable[Items]]
    ) -> Items:
        entry = self._entries.get(key)
        if entry is not None and entry.registry is registry and entry.expires > time.monotonic():
            return entry.items
        running = self._fetches.get(key)
        if running is None or running.registry is not registry:
            generation = self._generation.get(key[0], 0)
            task = asyncio.create_task(self._load(key, registry, fetch, generation))
            task.add_done_callback(_retrieve)
            running = self._fetches[key] = _Fetch(registry, task)
        # Shielded: one waiter cancelled (its client went away) leaves the fetch to the others.
        return await asyncio.shield(running.task)

    async def _load(
        self,
        key: ListKey,
        registry: Registry,
        fetch: Callable[[], Awaitable[Items]],
        generation: int,
    ) -> Items:
        try:
            items = await fetch()
        finally:
            running = self._fetches.get(key)
            if running is not None and running.task is asyncio.current_task():
                del self._fetches[key]
        if self._generation.get(key[0], 0) == generation:
            self._keep(key, _Entry(registry, time.monotonic() + self._ttl, items))
        return items

    def _keep(self, key: ListKey, entry: _Entry) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            now = time.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e.expires > now}
            while len(self._entries) >= MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]
        self._entries.pop(key, None)
        self._entries[key] = entry

    def drop(self, registry_id: UUID, kinds: tuple[ListKind, ...] | None = None) -> None:
        """Forget ``registry_id``'s lists (of ``kinds``, or all). A fetch in flight still
        answers its callers but is not kept, and later callers start a new one."""
        self._generation[registry_id] = self._generation.get(registry_id, 0) + 1
        for table in (self._entries, self._fetches):
            for key in [k for k in table if k[0] == registry_id]:
                if kinds is None or key[2] in kinds:
                    del table[key]

    async def aclose(self) -> None:
        tasks = [f.task for f in self._fetches.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fetches.clear()
        self._entries.clear()
