"""What every provider mock shares: serving an aiohttp app on a free port, reading and
recording a request, the contract's model-suffix modes, the answer texts, SSE frames and
breaking a stream.

The wire formats themselves (bodies, event names, error shapes, credential checks) stay
in each provider's mock module; only the mechanics live here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from trustgate_testkit.proxy.providers import Recorded

RecordFn = Callable[[str, dict[str, str], dict[str, Any]], Recorded]


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free loopback port; yields ``http://127.0.0.1:<port>``."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The body as received and decoded (``None`` when it is not JSON)."""
    raw = await request.read()
    try:
        return raw, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, None


def record_request(
    log: list[Recorded], request: web.Request, body: Any, record: RecordFn
) -> Recorded:
    """``request`` decoded by the provider's ``record`` (a non-object body as ``{}``),
    appended to ``log``."""
    seen = record(request.path_qs, dict(request.headers), body if isinstance(body, dict) else {})
    log.append(seen)
    return seen


def bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


@dataclass(frozen=True)
class Modes:
    """The contract's behaviour switches, read from the model's suffix."""

    tools: bool
    long: bool
    cut: bool
    slow: bool
    ratelimited: bool
    thinking: bool

    @classmethod
    def of(cls, model: str) -> Modes:
        return cls(
            tools=model.endswith("-tools"),
            long=model.endswith("-long"),
            cut=model.endswith("-cut"),
            slow=model.endswith("-slow"),
            ratelimited=model.endswith("-ratelimited"),
            thinking=model.endswith("-thinking"),
        )


def answer_text(name: str, tool_result: str | None) -> str:
    """``Hello from <name>``, or ``The weather is <result>`` answering a tool result."""
    return f"Hello from {name}" if tool_result is None else f"The weather is {tool_result}"


def words(text: str) -> list[str]:
    """``text`` as the contract's text deltas: ``["Hello", " from", " <name>"]``."""
    first, *rest = text.split(" ")
    return [first, *(f" {w}" for w in rest)]


def sse(doc: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One SSE frame: ``[event: <event>\\n]data: <json>\\n\\n`` (``\\r\\n`` line ends when
    ``crlf``, as Google sends them)."""
    end = b"\r\n" if crlf else b"\n"
    head = f"event: {event}".encode() + end if event is not None else b""
    return head + b"data: " + orjson.dumps(doc) + end + end


def abort(request: web.Request) -> None:
    """Drop the connection mid-answer (no terminating event: a broken stream)."""
    assert request.transport is not None
    request.transport.abort()
