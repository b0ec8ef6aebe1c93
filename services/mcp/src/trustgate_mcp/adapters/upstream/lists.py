"""Upstream lists (tools, resources, templates, prompts) kept for a while, per server.

A server's lists (per registry and upstream credential) are fetched together: one
listing session, one attempt, one deadline (``MCP_LIST_TIMEOUT``) for all of them.
Callers asking while they are being fetched share that fetch (an agent's first
``tools/list`` fans out to every server; a hundred agents connecting at once must not make
a hundred fetches each).

A server that failed (its lists did not come within the deadline, it could not be reached,
or its handshake failed) is remembered as failing: for ``MCP_LIST_BACKOFF`` nobody asks it
again, and then it is asked again in the background, so no caller waits for a sick server
twice. While it fails, its last good lists (if it ever had some) are still answered to
callers that fail open; callers that fail closed get the failure at once.

An entry belongs to one registry object: a config change replaces the object, so the
next caller fetches again without anyone invalidating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_args
from uuid import UUID

from trustgate_core.models import Registry
from trustgate_mcp.services.ports import ListKind, UpstreamAuthRequired, UpstreamUnavailable

# (registry id, credential key)
ServerKey = tuple[UUID, str]
Items = list[dict[str, Any]]
Lists = dict[ListKind, Items]
Fetch = Callable[[tuple[ListKind, ...]], Awaitable[Lists]]
KINDS: tuple[ListKind, ...] = get_args(ListKind)
# Servers kept (per registry and caller credential) before the oldest are forgotten:
# passthrough and exchange keep one per caller token.
MAX_ENTRIES = 4096


@dataclass(slots=True)
class _Fetch:
    generation: int
    task: asyncio.Task[Lists]


@dataclass(slots=True)
class _Server:
    registry: Registry
    lists: Lists = field(default_factory=dict)  # the last good lists, kept past expiry
    expires: float = 0.0
    dropped: set[ListKind] = field(default_factory=set)  # list_changed since they came
    failure: UpstreamUnavailable | None = None
    retry_at: float = 0.0
    fetch: _Fetch | None = None

    def fresh(self, kind: ListKind, now: float) -> bool:
        return kind in self.lists and kind not in self.dropped and self.expires > now


def again(failure: UpstreamUnavailable) -> UpstreamUnavailable:
    """A remembered failure raised anew (the kept one must not collect tracebacks)."""
    return type(failure)(*failure.args)


def _retrieve(task: asyncio.Task[Lists]) -> None:
    """A fetch nobody awaits (a background retry, or every waiter cancelled) must not log
    'exception never retrieved'."""
    if not task.cancelled():
        task.exception()


class ListCache:
    """The lists it returns are the ones it keeps, not copies: the catalog recognises an
    unchanged catalog by their identity (so it is not rebuilt per call), and nobody
    mutates them."""

    def __init__(self, ttl: float, *, deadline: float = 5.0, backoff: float = 2.0) -> None:
        self._ttl = ttl
        self._deadline = deadline
        self._backoff = backoff
        self._servers: dict[ServerKey, _Server] = {}
        self._failures = 0  # servers failing now (calls check only when there are some)
        # Bumped by every drop: a fetch that started before a drop does not clear it.
        self._generation: dict[UUID, int] = {}

    async def get(
        self, key: ServerKey, registry: Registry, kind: ListKind, fetch: Fetch, *, stale_ok: bool
    ) -> Items:
        """``kind``'s list of the server at ``key``; raises the server's
        `UpstreamUnavailable` when it is failing (unless ``stale_ok`` and it has an earlier
        list of that kind)."""
        server = self._server(key, registry)
        error: UpstreamUnavailable | None = None
        for _ in range(2):  # twice: a drop may land while we wait
            now = time.monotonic()
            if server.fresh(kind, now):
                return server.lists[kind]
            if server.failure is not None:
                if now >= server.retry_at:  # asked again, but nobody waits for it
                    server.retry_at = now + self._backoff
                    self._fetching(key, server, fetch)
                break
            try:
                lists = await asyncio.shield(self._fetching(key, server, fetch))
            except UpstreamUnavailable as exc:
                error = exc
                break
            if kind in lists:
                return lists[kind]
        failure = server.failure or error
        if kind in server.lists and (failure is None or stale_ok):
            return server.lists[kind]
        if failure is None:  # (dropped twice while it was fetched, and nothing came)
            failure = UpstreamUnavailable("the server's list did not come")
        raise again(failure)

    @property
    def any_failing(self) -> bool:
        return self._failures > 0

    def failing(self, key: ServerKey, registry: Registry) -> UpstreamUnavailable | None:
        """Why the server at ``key`` failed, while it is not to be asked again."""
        if not self._failures:
            return None
        server = self._servers.get(key)
        if (
            server is None
            or server.registry is not registry
            or server.failure is None
            or time.monotonic() >= server.retry_at
        ):
            return None
        return server.failure

    def failed(self, key: ServerKey, registry: Registry, failure: UpstreamUnavailable) -> None:
        """Remember that the server at ``key`` failed (not asked again for the backoff)."""
        self._fail(key, self._server(key, registry), failure)

    def drop(self, registry_id: UUID, kinds: tuple[ListKind, ...] | None = None) -> None:
        """``registry_id``'s lists (of ``kinds``, or all) are asked again by the next caller
        (kept only to answer while the server fails). A fetch in flight still answers its
        callers, and later callers start a new one."""
        self._generation[registry_id] = self._generation.get(registry_id, 0) + 1
        for (rid, _), server in self._servers.items():
            if rid == registry_id:
                server.dropped.update(kinds or KINDS)

    async def aclose(self) -> None:
        tasks = [s.fetch.task for s in self._servers.values() if s.fetch is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._servers.clear()
        self._failures = 0

    # --- internals ---------------------------------------------------------------------

    def _server(self, key: ServerKey, registry: Registry) -> _Server:
        server = self._servers.get(key)
        if server is not None and server.registry is registry:
            return server
        # (a fetch of a forgotten entry still answers its waiters: it has a deadline)
        self._forget(key)
        while len(self._servers) >= MAX_ENTRIES:
            self._forget(next(iter(self._servers)))
        server = self._servers[key] = _Server(registry)
        return server

    def _fetching(self, key: ServerKey, server: _Server, fetch: Fetch) -> asyncio.Task[Lists]:
        """The fetch of the server's missing lists in flight, or a new one."""
        generation = self._generation.get(key[0], 0)
        running = server.fetch
        if running is not None and running.generation == generation:
            return running.task
        now = time.monotonic()
        if server.expires <= now:
            kinds = KINDS
        else:
            kinds = tuple(k for k in KINDS if k in server.dropped or k not in server.lists)
        task = asyncio.create_task(self._load(key, server, kinds, fetch, generation))
        task.add_done_callback(_retrieve)
        server.fetch = _Fetch(generation, task)
        return task

    async def _load(
        self,
        key: ServerKey,
        server: _Server,
        kinds: tuple[ListKind, ...],
        fetch: Fetch,
        generation: int,
    ) -> Lists:
        try:
            try:
                async with asyncio.timeout(self._deadline):
                    lists = await fetch(kinds)
            except TimeoutError:
                failure = UpstreamUnavailable(
                    f"the server's lists did not come within {self._deadline:g}s"
                )
                self._fail(key, server, failure)
                raise failure from None
            except UpstreamUnavailable as exc:
                self._fail(key, server, exc)
                raise
        finally:
            if server.fetch is not None and server.fetch.task is asyncio.current_task():
                server.fetch = None
        if server.failure is not None:
            server.failure = None
            self._failures -= 1
        if self._generation.get(key[0], 0) == generation:
            server.lists.update(lists)
            server.dropped.difference_update(kinds)
        else:  # raced a drop: a fallback at most, never over a newer list
            for kind, items in lists.items():
                server.lists.setdefault(kind, items)
        if kinds == KINDS:
            server.expires = time.monotonic() + self._ttl
        return lists

    def _forget(self, key: ServerKey) -> None:
        server = self._servers.pop(key, None)
        if server is not None and server.failure is not None:
            server.failure = None
            self._failures -= 1

    def _fail(self, key: ServerKey, server: _Server, failure: UpstreamUnavailable) -> None:
        if isinstance(failure, UpstreamAuthRequired):
            return  # the caller's credential, not the server: asked again once it has one
        if self._servers.get(key) is not server:
            return  # forgotten meanwhile (a new registry object)
        if server.failure is None:
            self._failures += 1
        server.failure = failure
        server.retry_at = time.monotonic() + self._backoff
