"""The little ASGI a service's own HTTP needs: loose types, security headers, one writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Sent on every response a TrustGate plane writes (the proxy's request path included).
SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Headers,
    content_type: bytes = b"application/json",
    *,
    head: bool = False,
) -> None:
    """One whole response. ``head``: headers only (``content-length`` still says what a GET
    would carry)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_json(
    send: Send, status: int, doc: Any, headers: Headers, *, head: bool = False
) -> int:
    """``doc`` as a JSON response; the number of body bytes (a GET's, for ``head``)."""
    body = orjson.dumps(doc)
    await send_bytes(send, status, body, headers, head=head)
    return len(body)
