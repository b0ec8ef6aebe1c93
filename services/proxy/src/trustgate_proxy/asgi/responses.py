"""Writing responses: JSON bodies, gateway errors (reference §3 "Proxy error body")."""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_core.errors import TrustGateError
from trustgate_proxy.asgi.types import Headers, Send

SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
JSON = (b"content-type", b"application/json")


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Headers, content_type: bytes = JSON[1]
) -> None:
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
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, doc: Any, headers: Headers) -> int:
    body = orjson.dumps(doc)
    await send_bytes(send, status, body, headers)
    return len(body)


async def send_error(send: Send, error: TrustGateError, headers: Headers) -> int:
    """``{"error": code, "message": ...}`` with the error's status."""
    extra: Headers = headers
    if error.status == 405 and "allow" in error.extra:
        extra = [*headers, (b"allow", str(error.extra.pop("allow")).encode())]
    return await send_json(send, error.status, error.body(), extra)
