"""One JSON-RPC message over MCP's streamable HTTP transport (spec 2025-06-18 / 2025-11-25).

A POST carries the message; the answer is a JSON body, an SSE stream (read until the
response with our id, collecting the server's notifications on the way), or 202 for a
notification. Raw dicts and orjson only: this is the request path.

Requests the server sends on the way (sampling, elicitation, roots: the plane has no
client to relay them to) are answered at once with ``-32601`` (method not found), as a
client without that capability does, so the server's tool goes on (or fails) instead of
waiting for an answer until ``MCP_UPSTREAM_TIMEOUT``.

``listen`` reads a session's standalone stream (a GET), where a server sends what belongs
to no request, such as ``list_changed`` when its tools change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from trustgate_mcp.services.ports import (
    RpcFailure,
    SessionExpired,
    UpstreamUnavailable,
)

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
BASE_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


# What a server's own request (sampling, elicitation, roots) is answered.
UNSUPPORTED = -32601
# How long the rest of an SSE stream is awaited once the response arrived.
DRAIN_GRACE = 0.1
# Connection failures before an answer began: closed or reset (a stale keep-alive
# connection), or refused.
_UNTAKEN = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Refused(UpstreamUnavailable):
    """HTTP 401 or 403: the upstream did not accept the credential sent."""


@dataclass(slots=True)
class Answer:
    """What one POST brought back: the JSON-RPC ``result`` (None for a notification), the
    session id the server set, and the notifications it sent on the way."""

    result: dict[str, Any] | None
    session_id: str | None = None
    notifications: list[str] = field(default_factory=list)


async def post(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    message: dict[str, Any],
    limit: aiohttp.ClientTimeout,
) -> Answer:
    """POST ``message``; its answer. ``headers`` are complete (content type, accept,
    session, version, auth). Raises `RpcFailure`, `SessionExpired`, `UpstreamUnavailable`.

    A connection that failed before the answer began (the server restarted or dropped an
    idle keep-alive connection the pool still held) is retried once on a new connection:
    otherwise the first call after every upstream restart would fail."""
    try:
        return await _post(http, url, headers, message, limit)
    except _UNTAKEN:
        pass
    try:
        return await _post(http, url, headers, message, limit)
    except _UNTAKEN as exc:
        raise _unreachable(exc) from None


async def _post(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    message: dict[str, Any],
    limit: aiohttp.ClientTimeout,
) -> Answer:
    """One attempt; `_UNTAKEN` errors escape only when the connection failed before the
    answer began (a stale pooled connection, or none at all)."""
    try:
        async with http.post(
            url, data=orjson.dumps(message), headers=headers, timeout=limit
        ) as resp:
            try:
                return await _answer(resp, headers, message, http, url, limit)
            except aiohttp.ClientError as exc:
                raise _unreachable(exc) from None
    except TimeoutError:
        raise UpstreamUnavailable(f"the upstream did not answer within {limit.total:g}s") from None
    except _UNTAKEN:
        raise
    except aiohttp.ClientError as exc:
        raise _unreachable(exc) from None


def _unreachable(exc: Exception) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"cannot reach the upstream ({type(exc).__name__})")


async def _answer(
    resp: aiohttp.ClientResponse,
    headers: dict[str, str],
    message: dict[str, Any],
    http: aiohttp.ClientSession,
    url: str,
    limit: aiohttp.ClientTimeout,
) -> Answer:
    status = resp.status
    if status == 404 and SESSION_HEADER in headers:
        raise SessionExpired("the upstream no longer knows the session")
    session_id = resp.headers.get(SESSION_HEADER)
    if status == 202 or (200 <= status < 300 and "id" not in message):
        return Answer(None, session_id)
    if status in (401, 403):
        raise Refused(f"the upstream refused the credential (HTTP {status})")
    if not 200 <= status < 300:
        raise UpstreamUnavailable(f"the upstream answered HTTP {status}")
    if resp.content_type == "text/event-stream":
        reply_headers = dict(headers)
        if session_id is not None:
            reply_headers[SESSION_HEADER] = session_id

        async def refuse(request_id: Any, method: str) -> None:
            await _refuse(http, url, reply_headers, limit, request_id, method)

        answer = await _read_stream(resp, message["id"], refuse)
        answer.session_id = session_id
        return answer
    body = await resp.read()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable("the upstream's answer is not JSON") from None
    return Answer(_outcome(doc), session_id)


def _outcome(doc: Any) -> dict[str, Any]:
    """The ``result`` of a JSON-RPC response, or its error raised."""
    if isinstance(doc, dict):
        result = doc.get("result")
        if isinstance(result, dict):
            return result
        error = doc.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            raise RpcFailure(
                code if isinstance(code, int) else -32603,
                message if isinstance(message, str) else "upstream error",
                error.get("data"),
            )
    raise UpstreamUnavailable("the upstream's answer is not a JSON-RPC response")


async def _read_stream(
    resp: aiohttp.ClientResponse,
    request_id: Any,
    refuse: Callable[[Any, str], Awaitable[None]],
) -> Answer:
    """Read SSE events until the response to ``request_id``. Comments, pings and events
    that are not JSON are skipped; the server's own requests (sampling, elicitation) are
    answered ``-32601`` by ``refuse``; notifications' methods are collected (progress
    and log messages are dropped)."""
    answer = Answer(None)
    async for doc in _messages(resp):
        method = doc.get("method")
        if isinstance(method, str):
            if "id" not in doc:
                answer.notifications.append(method)
            else:
                await refuse(doc["id"], method)
            continue
        if doc.get("id") == request_id:
            await _drain(resp)
            answer.result = _outcome(doc)
            return answer
    raise UpstreamUnavailable("the upstream's stream ended without an answer")


async def listen(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    connect_timeout: float,
    heard: Callable[[dict[str, Any]], Awaitable[None]],
) -> bool:
    """Read the session's standalone SSE stream (GET; ``headers`` carry the session) and
    give each JSON-RPC message on it to ``heard``, until the server ends it. False when
    the server offers no such stream (405, or its session is gone)."""
    get_headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    get_headers["Accept"] = "text/event-stream"
    limit = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=None
    )
    async with http.get(url, headers=get_headers, timeout=limit) as resp:
        if resp.status != 200 or resp.content_type != "text/event-stream":
            return False
        async for doc in _messages(resp):
            await heard(doc)
    return True


async def _messages(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE stream: each event's ``data`` lines joined, as
    JSON objects; comments, other fields and data that is not a JSON object (a keep-alive
    such as ``data: ping``) are skipped."""
    data: list[bytes] = []
    async for raw in resp.content:
        line = raw.rstrip(b"\r\n")
        if line:
            if line.startswith(b"data:"):
                chunk = line[5:]
                data.append(chunk[1:] if chunk.startswith(b" ") else chunk)
            continue
        if not data:
            continue
        payload, data = b"\n".join(data), []
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            yield doc


async def refuse(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    limit: aiohttp.ClientTimeout,
    request_id: Any,
    method: str,
) -> None:
    """Answer the server's request ``request_id`` -32601 (see the module)."""
    await _refuse(http, url, headers, limit, request_id, method)


async def _refuse(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    limit: aiohttp.ClientTimeout,
    request_id: Any,
    method: str,
) -> None:
    """Answer the server's request ``request_id`` with -32601; failures are ignored (the
    server then waits for its own timeout, as before)."""
    error = {"code": UNSUPPORTED, "message": f"the gateway does not support {method}"}
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
    try:
        async with http.post(url, data=body, headers=headers, timeout=limit) as resp:
            await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        pass


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read the stream to its end: the server closes it after the response, and only a
    response read to its end gives its connection back to the pool (else every call
    would open a new connection). A server that keeps the stream open loses the
    connection after `DRAIN_GRACE`."""
    if resp.content.at_eof():
        return
    try:
        async with asyncio.timeout(DRAIN_GRACE):
            async for _ in resp.content:
                pass
    except TimeoutError:
        resp.close()
