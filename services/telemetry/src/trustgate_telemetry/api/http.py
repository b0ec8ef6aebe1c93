"""Health, readiness and metrics over HTTP (a bare ASGI app: three routes, no framework)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HealthApp:
    def __init__(
        self,
        *,
        is_ready: Callable[[], bool],
        dependencies: Callable[[], dict[str, str]],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self.is_ready = is_ready
        self.dependencies = dependencies
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/") or "/"
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, b'{"error":"method_not_allowed"}', "application/json")
        elif path == "/healthz":
            await _send(send, 200, b'{"status":"ok"}', "application/json")
        elif path == "/readyz":
            ready = self.is_ready()
            body = orjson.dumps(
                {"status": "ready" if ready else "not_ready", "dependencies": self.dependencies()}
            )
            await _send(send, 200 if ready else 503, body, "application/json")
        elif path == "/metrics":
            data, content_type = self.metrics()
            await _send(send, 200, data, content_type)
        else:
            await _send(send, 404, b'{"error":"not_found"}', "application/json")


async def _send(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
