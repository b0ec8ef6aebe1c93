"""The little HTTP the OAuth endpoints need: query and form parsing (a repeated
parameter is an error, RFC 6749 §3.1), bounded bodies, and RFC 6749 error answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from trustgate_core.service.asgi import (
    SECURITY_HEADERS,
    Headers,
    Receive,
    Scope,
    Send,
    send_bytes,
    send_json,
)

# no answer of the authorization server may be cached (RFC 6749 §5.1)
NO_STORE: Headers = [*SECURITY_HEADERS, (b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
MAX_BODY = 64 << 10


class BadRequest(Exception):
    """An OAuth error answered as JSON ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def params(raw: str) -> dict[str, str]:
    """``a=1&b=2`` as a dict; a parameter given twice is refused."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except ValueError as exc:
        raise BadRequest("invalid_request", "too many parameters") from exc
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise BadRequest("invalid_request", f"parameter {name} given more than once")
        out[name] = value
    return out


def query(scope: Scope) -> dict[str, str]:
    return params(scope.get("query_string", b"").decode("latin-1"))


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def body(receive: Receive) -> bytes:
    """The request body, at most ``MAX_BODY`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("invalid_request", "the client went away")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("invalid_request", "request body too large", 413)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def form(scope: Scope, receive: Receive) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body."""
    kind = (header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("invalid_request", "send the parameters form-encoded")
    try:
        return params((await body(receive)).decode())
    except UnicodeDecodeError as exc:
        raise BadRequest("invalid_request", "the body is not UTF-8") from exc


async def error(send: Send, failure: BadRequest, headers: Headers | None = None) -> None:
    doc = {"error": failure.error, "error_description": failure.description}
    await send_json(send, failure.status, doc, [*NO_STORE, *(headers or [])])


async def ok(send: Send, doc: Any, status: int = 200) -> None:
    await send_json(send, status, doc, NO_STORE)


async def html(send: Send, status: int, page: bytes, headers: Headers | None = None) -> None:
    csp = b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    await send_bytes(
        send,
        status,
        page,
        [*NO_STORE, (b"content-security-policy", csp), *(headers or [])],
        b"text/html; charset=utf-8",
    )


async def redirect(send: Send, location: str, extra: dict[str, str]) -> None:
    """A 302 to ``location`` with ``extra`` added to its query."""
    glue = "&" if "?" in location else "?"
    target = f"{location}{glue}{urlencode(extra)}" if extra else location
    await send_bytes(send, 302, b"", [*NO_STORE, (b"location", target.encode())], b"text/plain")
