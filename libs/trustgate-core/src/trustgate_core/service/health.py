"""Health, readiness and metrics over HTTP: one bare ASGI app, one body shape for every plane.

- ``GET /healthz`` (or ``/health``): 200 ``{"status": "healthy", "service", "version",
  "time"}`` while the process serves;
- ``GET /readyz``: 200 ``{"status": "ready", ...}`` or 503 ``{"status": "not_ready", ...}``,
  with ``"dependencies"``: each one ``"ok"`` or what it is instead;
- ``GET /metrics``: the Prometheus text page;
- ``HEAD`` on each of them: the same headers, no body; another method: 405 with ``Allow``;
  another path: 404 ``{"error": "not_found", "message": ...}``.

A plane with more HTTP than this (the proxy) asks `HealthApp.handles` and hands those paths
over. ``/metrics`` belongs on a plane's operations port only: a traffic port serves
`HealthApp.for_traffic`, which answers it 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from trustgate_core.errors import MethodNotAllowed, NotFound, TrustGateError
from trustgate_core.service.asgi import (
    SECURITY_HEADERS,
    Headers,
    Receive,
    Scope,
    Send,
    send_bytes,
    send_json,
)

_HEALTH = frozenset({"/healthz", "/health"})
_READY = "/readyz"
_METRICS = "/metrics"
PATHS = frozenset({*_HEALTH, _READY, _METRICS})
_ALLOW = "GET, HEAD"


def _normalize(path: str) -> str:
    if len(path) > 1 and path[-1] == "/":
        return path.rstrip("/") or "/"
    return path


class HealthApp:
    """``is_ready`` and ``dependencies`` are asked on each ``/readyz``; ``metrics`` returns
    ``(body, content_type)`` on each ``/metrics``. Every response carries ``headers``."""

    def __init__(
        self,
        service: str,
        version: str,
        is_ready: Callable[[], bool],
        dependencies: Callable[[], Mapping[str, str]],
        metrics: Callable[[], tuple[bytes, str]],
        *,
        headers: Headers = SECURITY_HEADERS,
    ) -> None:
        self.service = service
        self.version = version
        self.is_ready = is_ready
        self.dependencies = dependencies
        self.metrics = metrics
        self.headers = headers
        self.paths = PATHS

    def for_traffic(self) -> HealthApp:
        """The same app without ``/metrics``, for a traffic port (load balancers probe
        ``/healthz`` and ``/readyz`` there; the metrics name every tenant)."""
        app = HealthApp(
            self.service,
            self.version,
            self.is_ready,
            self.dependencies,
            self.metrics,
            headers=self.headers,
        )
        app.paths = PATHS - {_METRICS}
        return app

    def handles(self, path: str) -> bool:
        """Whether ``path`` is one of this app's (a trailing slash allowed)."""
        return _normalize(path) in self.paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = _normalize(scope["path"])
        method: str = scope["method"]
        head = method == "HEAD"
        if path not in self.paths:
            await self._error(send, NotFound(f"no such path: {path}"), head)
        elif method != "GET" and not head:
            await self._error(send, MethodNotAllowed(f"use {_ALLOW}"), head, allow=_ALLOW)
        elif path in _HEALTH:
            await self._json(send, 200, self._about("healthy"), head)
        elif path == _READY:
            ready = self.is_ready()
            doc = self._about("ready" if ready else "not_ready")
            doc["dependencies"] = dict(self.dependencies())
            await self._json(send, 200 if ready else 503, doc, head)
        else:
            body, content_type = self.metrics()
            await send_bytes(send, 200, body, self.headers, content_type.encode(), head=head)

    def _about(self, status: str) -> dict[str, Any]:
        return {
            "status": status,
            "service": self.service,
            "version": self.version,
            "time": datetime.now(UTC).isoformat(),
        }

    async def _json(self, send: Send, status: int, doc: Mapping[str, Any], head: bool) -> None:
        await send_json(send, status, doc, self.headers, head=head)

    async def _error(
        self, send: Send, error: TrustGateError, head: bool, *, allow: str | None = None
    ) -> None:
        headers = self.headers if allow is None else [*self.headers, (b"allow", allow.encode())]
        await send_json(send, error.status, error.body(), headers, head=head)
