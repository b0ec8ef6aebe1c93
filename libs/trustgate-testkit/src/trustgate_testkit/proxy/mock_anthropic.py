"""A mock of Anthropic's Messages API, speaking its wire format exactly, for tests.

Fixtures' provenance: the shapes follow Anthropic's API reference (Messages, Streaming
Messages, Errors, Models) and the official ``anthropic`` SDK's types (``Message``,
``Usage``, ``RawMessageStartEvent`` … ``RawMessageStopEvent``, ``MessageDeltaUsage``,
``ErrorResponse``): JSON answers ``{"id":"msg_…","type":"message","role":"assistant",
"model","content":[…],"stop_reason","stop_sequence","usage":{…}}``; SSE streams of named
events ``message_start`` → ``content_block_start`` → ``ping`` → ``content_block_delta``… →
``content_block_stop`` (per block) → ``message_delta`` → ``message_stop``, each
``event: <type>\\ndata: <json>\\n\\n``; errors ``{"type":"error","error":{"type","message"},
"request_id"}``; a ``request-id`` header on every answer.

Checks made as the API makes them: the key in ``x-api-key`` (or ``Authorization: Bearer``,
as the SDK 2.x sends it; else 401 ``authentication_error``),
``anthropic-version`` (else 400 ``invalid_request_error``, as the API answers),
``max_tokens`` and ``messages`` present, roles ``user``/``assistant``, no empty text
blocks, tool results first in their user turn and answering a ``tool_use`` of the turn
before (the API's 400s for translations that get these wrong).

Behaviour by model (the contract in ``trustgate_testkit.proxy.providers``): ``Hello from
<name>`` in three deltas, usage input 8 + cache read 3 (normalised: 11, cached 3) and
output 7; ``…-tools`` a ``get_weather`` ``tool_use`` (arguments in two
``input_json_delta``s, ``stop_reason: tool_use``) or, answering a tool result, ``The
weather is <result>``; ``…-long`` ``stop_reason: max_tokens``; ``…-cut`` a stream aborted
after its first delta; ``…-slow`` a stream held after its first text delta until
``release`` is set (``client_gone`` is set if the caller leaves meanwhile);
``…-ratelimited`` 429 ``rate_limit_error`` with ``retry-after: 7``;
``…-thinking`` a thinking block (thinking deltas and a ``signature_delta``) before the text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trustgate_testkit.proxy.mock_base import (
    Modes,
    abort,
    answer_text,
    read_json,
    record_request,
    serve_app,
    sse,
    words,
)
from trustgate_testkit.proxy.providers import ProviderMock, Recorded

ANTHROPIC_KEY = "sk-ant-api03-mock-0123456789"
ANTHROPIC_VERSION = "2023-06-01"
REQUEST_ID = "req_011CMockAnthropic"
MESSAGE_ID = "msg_01MockAnthropic"
TOOL_USE_ID = "toolu_01MockWeather"
SIGNATURE = "EqQBCkYIARgCIkB3b3JraW5nIGl0IG91dA=="
# input_tokens excludes cache reads and writes (Anthropic reports them apart).
START_USAGE = {
    "input_tokens": 8,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 3,
    "output_tokens": 1,
    "service_tier": "standard",
}
USAGE = {**START_USAGE, "output_tokens": 7}


def error_doc(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": REQUEST_ID}


def _error(status: int, kind: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        error_doc(kind, message), status=status, headers={"request-id": REQUEST_ID, **headers}
    )


def authorised(request: web.Request) -> bool:
    """The key in ``x-api-key`` (what the API documents), or as a bearer token (what the
    ``anthropic`` SDK 2.x sends)."""
    key = request.headers.get("x-api-key")
    if key is None:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return key == ANTHROPIC_KEY


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def record(path: str, headers: dict[str, str], body: dict[str, Any]) -> Recorded:
    """What the contract's ``Recorded`` asks of a Messages request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = body.get("system")
    blocks = [b for m in messages for b in _blocks(m)]
    inner = [
        b
        for r in blocks
        if r.get("type") == "tool_result" and isinstance(r.get("content"), list)
        for b in r["content"]
        if isinstance(b, dict)
    ]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    results = [
        _text(b.get("content"))
        for b in (_blocks(last_user) if last_user else [])
        if b.get("type") == "tool_result"
    ]
    return Recorded(
        path=path,
        headers=headers,
        body=body,
        system=_text(system) if system is not None else None,
        has_image=any(b.get("type") == "image" for b in blocks + inner),
        tool_result=results[-1] if results else None,
    )


def invalid(body: Any) -> str | None:
    """The API's 400 message for a body it refuses, or None."""
    if not isinstance(body, dict):
        return "body: Input should be an object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous_calls: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Field required"
        blocks = _blocks(message)
        seen_other = False
        for j, block in enumerate(blocks):
            kind = block.get("type")
            if kind == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if kind == "tool_result":
                if message["role"] != "user":
                    return f"messages.{i}: tool_result blocks are only allowed in user turns"
                if seen_other:
                    return f"messages.{i}: tool_result blocks must come first in the user message"
                if block.get("tool_use_id") not in previous_calls:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        "`tool_result` blocks; each must have a corresponding `tool_use` "
                        "block in the previous message"
                    )
            else:
                seen_other = True
        previous_calls = (
            {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
            if message["role"] == "assistant"
            else set()
        )
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024 or budget >= body["max_tokens"]:
            return "thinking.budget_tokens: must be ≥ 1024 and less than max_tokens"
        if body.get("temperature") not in (None, 1) or body.get("top_k") is not None:
            return "temperature and top_k may not be set when thinking is enabled"
    return None


def _sse(kind: str, doc: dict[str, Any]) -> bytes:
    return sse({"type": kind, **doc}, kind)


@dataclass
class AnthropicMock:
    """The mock's state: what a registry needs and every request received (``raw``: the
    bodies as received, byte for byte)."""

    name: str = "anthropic"
    url: str = ""
    recorded: list[Recorded] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets ``-slow`` go on
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # a stream was completed
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)  # left a held stream

    def _answer(self, model: str, answered: str | None) -> tuple[list[dict[str, Any]], str]:
        modes = Modes.of(model)
        if modes.tools and answered is None:
            call = {"type": "tool_use", "id": TOOL_USE_ID, "name": "get_weather"}
            return [{**call, "input": {"city": "Paris"}}], "tool_use"
        text = answer_text(self.name, answered)
        content: list[dict[str, Any]] = []
        if modes.thinking:
            content.append(
                {
                    "type": "thinking",
                    "thinking": "Let me think. A greeting.",
                    "signature": SIGNATURE,
                }
            )
        content.append({"type": "text", "text": text, "citations": None})
        return content, "max_tokens" if modes.long else "end_turn"

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw, body = await read_json(request)
        self.raw.append(raw)
        seen = record_request(self.recorded, request, body, record)
        if not authorised(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        problem = invalid(body)
        if problem is not None:
            return _error(400, "invalid_request_error", problem)
        model: str = body["model"]
        if Modes.of(model).ratelimited:
            return _error(
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 "
                "requests per minute.",
                **{"retry-after": "7"},
            )
        content, stop = self._answer(model, seen.tool_result)
        if body.get("stream") is not True:
            return web.json_response(
                {
                    "id": MESSAGE_ID,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": USAGE,
                },
                headers={"request-id": REQUEST_ID},
            )
        return await self._stream(request, model, content, stop)

    async def _stream(
        self, request: web.Request, model: str, content: list[dict[str, Any]], stop: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": REQUEST_ID,
            }
        )
        await resp.prepare(request)
        message: dict[str, Any] = {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": START_USAGE,
        }
        await resp.write(_sse("message_start", {"message": message}))
        modes = Modes.of(model)
        for index, block in enumerate(content):
            kind = block["type"]
            if kind == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": w} for w in words(block["text"])]
            elif kind == "tool_use":
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": p}
                    for p in ("", '{"city":', '"Paris"}')
                ]
            else:
                start = {"type": "thinking", "thinking": "", "signature": ""}
                head, _, tail = block["thinking"].partition(" ")
                deltas = [
                    {"type": "thinking_delta", "thinking": head + " "},
                    {"type": "thinking_delta", "thinking": tail},
                    {"type": "signature_delta", "signature": block["signature"]},
                ]
            await resp.write(_sse("content_block_start", {"index": index, "content_block": start}))
            if index == 0:
                await resp.write(_sse("ping", {}))
            for n, delta in enumerate(deltas):
                await resp.write(_sse("content_block_delta", {"index": index, "delta": delta}))
                if modes.cut and n == 0:
                    abort(request)  # no message_stop
                    return resp
                if modes.slow and n == 0 and index == len(content) - 1:
                    if not await self._hold(request):
                        return resp
            await resp.write(_sse("content_block_stop", {"index": index}))
        await resp.write(
            _sse(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": USAGE["output_tokens"]},
                },
            )
        )
        await resp.write(_sse("message_stop", {}))
        self.finished.set()
        await resp.write_eof()
        return resp

    async def _hold(self, request: web.Request) -> bool:
        """Until ``release`` is set (``True``) or the caller hangs up (``False``, and
        ``client_gone`` is set)."""
        while not self.release.is_set():
            if request.transport is None or request.transport.is_closing():
                self.client_gone.set()
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 0.02)
        return True

    async def count_tokens(self, request: web.Request) -> web.Response:
        raw, body = await read_json(request)
        self.raw.append(raw)
        record_request(self.recorded, request, body, record)
        if not authorised(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        return web.json_response({"input_tokens": 11}, headers={"request-id": REQUEST_ID})

    async def models(self, request: web.Request) -> web.Response:
        if not authorised(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        model = {
            "type": "model",
            "id": "claude-mock-1",
            "display_name": "Claude Mock",
            "created_at": "2025-01-01T00:00:00Z",
        }
        return web.json_response(
            {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]},
            headers={"request-id": REQUEST_ID},
        )


@asynccontextmanager
async def serve_anthropic(name: str = "anthropic") -> AsyncIterator[AnthropicMock]:
    """The mock on a free port; ``url`` is its SDK-style base (``http://127.0.0.1:<port>``)."""
    mock = AnthropicMock(name)
    app = web.Application()
    app.router.add_post("/v1/messages", mock.messages)
    app.router.add_post("/v1/messages/count_tokens", mock.count_tokens)
    app.router.add_get("/v1/models", mock.models)
    async with serve_app(app) as url:
        mock.url = url
        yield mock


@asynccontextmanager
async def serve_anthropic_mock(name: str = "anthropic") -> AsyncIterator[ProviderMock]:
    """The mock as an ``anthropic`` registry (key in ``x-api-key``)."""
    async with serve_anthropic(name) as mock:
        yield ProviderMock(
            provider="anthropic",
            wire="anthropic",
            options={"base_url": mock.url},
            auth={"type": "api_key", "api_key": {"api_key": ANTHROPIC_KEY}},
            requests=mock.recorded,
            name=name,
        )
