"""Gateway errors as HTTP responses (reference §3 "Proxy error body"): the one place the
proxy renders an error, in the shape the route's clients read."""

from __future__ import annotations

from typing import Any

from trustgate_core.errors import PolicyRejected, TrustGateError
from trustgate_core.service.asgi import SECURITY_HEADERS, send_json
from trustgate_proxy.domain.formats import INBOUND
from trustgate_proxy.services.pipeline import ClientShapedError
from trustgate_proxy.services.ports import Headers, Send

__all__ = ["SECURITY_HEADERS", "send_error"]


async def send_error(
    send: Send, error: TrustGateError, headers: Headers, *, anthropic: bool = False
) -> int:
    """The error with its status and headers; the bytes written. Its body is
    ``error.body()`` (``{"error": code, "message": ...}``, the client format's shape for an
    error that carries one, or a policy's own), or else on an Anthropic route (``anthropic``) Anthropic's error shape, which
    its SDKs parse: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    extra: Headers = headers
    if error.headers:
        extra = [*headers, *error.headers]
    if error.status == 405 and "allow" in error.extra:
        extra = [*extra, (b"allow", str(error.extra.pop("allow")).encode())]
    body = _anthropic_body(error) if anthropic else error.body()
    return await send_json(send, error.status, body, extra)


def _anthropic_body(error: TrustGateError) -> dict[str, Any]:
    if isinstance(error, ClientShapedError | PolicyRejected):  # its own shape
        return error.body()
    return INBOUND["anthropic"].error_body(error.status, error.message or error.code)
