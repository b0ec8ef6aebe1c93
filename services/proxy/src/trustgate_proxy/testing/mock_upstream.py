"""A mock upstream that speaks OpenAI's Chat Completions wire format exactly (JSON, and SSE
``data: {...}`` events ending with ``data: [DONE]``, a usage chunk when
``stream_options.include_usage`` is set), for tests and local trials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

UPSTREAM_KEY = "sk-upstream-test-0123456789"


def _completion(model: str, message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_mock",
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def _usage_chunk(model: str) -> bytes:
    doc = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


@dataclass
class MockUpstream:
    """OpenAI's Chat Completions wire format. The requested model picks the behaviour:
    ``*-tools`` (tool calls), ``*-ratelimited`` (429 + Retry-After), ``*-slow`` (a stream
    held after its first chunk until ``release`` is set), ``*-cut`` (connection dropped
    mid-stream), ``*-stall`` (a stream silent after its first chunk), ``*-hang`` (no answer
    at all, or a stream of keep-alive comments that never ends), anything else (a plain
    answer)."""

    name: str = "mock"
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        self.paths.append(request.path_qs)
        presented = (
            request.headers.get("Authorization") or f"Bearer {request.headers.get('api-key')}"
        )
        if presented != f"Bearer {UPSTREAM_KEY}":
            return web.json_response(
                {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}},
                status=401,
            )
        model: str = body.get("model") or "none"
        if model.endswith("-ratelimited"):
            return web.json_response(
                {
                    "error": {
                        "message": "Rate limit reached",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
                status=429,
                headers={"Retry-After": "7", "x-request-id": "req_upstream"},
            )
        tools = model.endswith("-tools")
        if not body.get("stream") and model.endswith("-hang"):
            # never answers; notices when the caller hangs up
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            self.client_gone.set()
            return web.json_response({})
        if not body.get("stream"):
            message: dict[str, Any] = (
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
                if tools
                else {"role": "assistant", "content": f"Hello from {self.name}"}
            )
            return web.json_response(
                _completion(model, message, "tool_calls" if tools else "stop"),
                headers={"x-request-id": "req_upstream", "openai-processing-ms": "5"},
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_upstream"}
        )
        await resp.prepare(request)
        if tools:
            await resp.write(
                _chunk(model, {"role": "assistant", "tool_calls": [{"index": 0, **TOOL_CALL}]})
            )
            await resp.write(_chunk(model, {}, "tool_calls"))
        else:
            await resp.write(_chunk(model, {"role": "assistant", "content": "Hello"}))
            if model.endswith("-slow"):
                await self.release.wait()
            if model.endswith("-cut"):
                await resp.write(_chunk(model, {"content": " wor"}))
                assert request.transport is not None
                request.transport.abort()  # no terminating chunk: a broken stream
                return resp
            if model.endswith("-stall"):  # one chunk, then silence (until the caller leaves)
                while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                self.client_gone.set()
                return resp
            if model.endswith("-hang"):
                try:
                    while True:
                        await asyncio.sleep(0.02)
                        await resp.write(b": keep-alive\n\n")
                except (ConnectionError, RuntimeError):
                    self.client_gone.set()
                    return resp
            await resp.write(_chunk(model, {"content": f" from {self.name}"}))
            await resp.write(_chunk(model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(_usage_chunk(model))
        await resp.write(b"data: [DONE]\n\n")
        self.finished.set()
        await resp.write_eof()
        return resp

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "mock-1", "object": "model", "created": 0, "owned_by": "mock"}],
            }
        )


@asynccontextmanager
async def serve_mock(name: str = "mock") -> AsyncIterator[MockUpstream]:
    mock = MockUpstream(name)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", mock.chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", mock.chat)
    app.router.add_get("/v1/models", mock.models)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    mock.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield mock
    finally:
        await runner.cleanup()
