"""Gateway errors as HTTP responses (reference §3 "Proxy error body"): the one place the
proxy renders an error."""

from __future__ import annotations

from trustgate_core.errors import TrustGateError
from trustgate_core.service.asgi import SECURITY_HEADERS, send_json
from trustgate_proxy.services.ports import Headers, Send

__all__ = ["SECURITY_HEADERS", "send_error"]


async def send_error(send: Send, error: TrustGateError, headers: Headers) -> int:
    """``error.body()`` (``{"error": code, "message": ...}``, or the client format's shape
    for an error that carries one) with the error's status; the bytes written."""
    extra: Headers = headers
    if error.status == 405 and "allow" in error.extra:
        extra = [*headers, (b"allow", str(error.extra.pop("allow")).encode())]
    return await send_json(send, error.status, error.body(), extra)
