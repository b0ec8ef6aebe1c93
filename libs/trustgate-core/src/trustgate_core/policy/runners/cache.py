"""Runner: ``semantic_cache``. What needs no wire format is decided here; the plane's
``CachePort`` (``PolicyDeps.extra["semantic_cache"]``, the proxy's) does the rest: the
request's keys and embedding, the lookup, serving a hit in the client's format, and
storing a fresh answer after ``post_response``.

``pre_request``: a bypass (the ``bypass_header``, ``Cache-Control: no-cache`` or
``no-store``, tools with ``skip_if_tools_present``, a stream with ``skip_if_streaming``)
answers ``X-Cache: BYPASS`` and neither reads nor stores; otherwise the runner asks the
port for a lookup. The port defers it until the whole ``pre_request`` stage has run (so
the keys and the embedding are those of the request as the upstream would get it, pii's
masking included, whatever the priorities); a hit then goes through ``pre_response`` and
the response filters like an upstream answer, and on a miss the answer is watched to be
stored. In
``observe`` the outcome is only recorded (no hit served, no ``X-Cache``; misses are
stored). A plane without a port (none configured) lets every call pass.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from trustgate_core.plugins.cache import SemanticCacheSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import PolicyExchange

PORT: Final = "semantic_cache"
BYPASS: Final = [(b"x-cache", b"BYPASS")]


class CachePort(Protocol):
    async def lookup(self, runner: SemanticCacheRunner, x: PolicyExchange) -> None:
        """Ask for this call's lookup, run once the ``pre_request`` stage is over (the
        port serves a hit then, or arranges to store the answer); never raises."""
        ...

    def store(self, runner: SemanticCacheRunner, x: PolicyExchange) -> None:
        """Store the answer the lookup arranged to watch, in the background."""
        ...

    def bypassed(self, x: PolicyExchange) -> None:
        """Record a bypass on the call (its event and metrics)."""
        ...


class SemanticCacheRunner(Runner):
    settings: SemanticCacheSettings

    def __init__(self, info: PolicyInfo, settings: SemanticCacheSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self.port: CachePort | None = deps.extra.get(PORT)
        self._bypass_header = settings.bypass_header.lower().encode("latin-1")
        self.ttl_seconds: int = settings.ttl_seconds or 1
        self.ok_statuses = (
            frozenset(settings.cache_only_on_status) if settings.cache_only_on_status else None
        )

    def partition(self, x: PolicyExchange) -> str:
        """Where entries may be served: the consumer's own, or the whole gateway's."""
        return "global" if self.settings.scope == "global" else str(x.consumer.id)

    def storable_status(self, status: int) -> bool:
        ok = self.ok_statuses
        return 200 <= status < 300 if ok is None else status in ok

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        port = self.port
        if port is None:
            return None
        if self._bypassed(x):
            if self.mode != "observe":  # an observing policy changes no answer
                x.response_headers.extend(BYPASS)
            port.bypassed(x)
            return None
        await port.lookup(self, x)
        return None

    async def post_response(self, x: PolicyExchange) -> Decision | None:
        if self.port is not None and self.id in x.scratch:
            self.port.store(self, x)
        return None

    def _bypassed(self, x: PolicyExchange) -> bool:
        settings = self.settings
        for name, value in x.request_headers:
            if name == self._bypass_header and value.strip().lower() not in (b"", b"0", b"false"):
                return True
            if name == b"cache-control":
                directives = {d.strip() for d in value.lower().split(b",")}
                if b"no-cache" in directives or b"no-store" in directives:
                    return True
        doc: dict[str, Any] = x.doc
        if settings.skip_if_tools_present and doc.get("tools"):
            return True
        return settings.skip_if_streaming and doc.get("stream") is True


def _semantic_cache(info: PolicyInfo, settings: Any, deps: PolicyDeps) -> Runner:
    return SemanticCacheRunner(info, settings, deps)


RUNNERS: Final[dict[str, RunnerType]] = {"semantic_cache": _semantic_cache}
