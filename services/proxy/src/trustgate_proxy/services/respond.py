"""Writing a whole response to the client (core's ``send_bytes``, and JSON)."""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_core.service.asgi import send_bytes
from trustgate_proxy.services.ports import Headers, Send

__all__ = ["send_bytes", "send_json"]


async def send_json(send: Send, status: int, doc: Any, headers: Headers) -> int:
    """``doc`` as JSON; the number of body bytes written."""
    body = orjson.dumps(doc)
    await send_bytes(send, status, body, headers)
    return len(body)
