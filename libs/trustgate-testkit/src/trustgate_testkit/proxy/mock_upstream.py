"""A mock upstream that speaks OpenAI's Chat Completions wire format exactly (JSON, and SSE
``data: {...}`` events ending with ``data: [DONE]``, a usage chunk when
``stream_options.include_usage`` is set), for tests and local trials; also served at
Azure OpenAI's deployment paths (``api-key`` header). ``serve_openai_mock`` and
``serve_azure_mock`` yield it as a ``ProviderMock`` (``providers``' contract).

Fixtures' provenance: the shapes of ``chat.completion`` / ``chat.completion.chunk`` objects,
tool-call deltas (``index``, then ``id``/``function.name``, then argument fragments), the
usage-only last chunk (``choices: []``) and the error bodies (``invalid_api_key`` 401,
``rate_limit_exceeded`` 429) follow OpenAI's API reference and the ``openai`` SDK's types
(``ChatCompletion``, ``ChatCompletionChunk``, ``CompletionUsage``); Azure's 401 body
(``{"error":{"code":"401","message":...}}``) follows Azure OpenAI's REST reference.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trustgate_testkit.proxy.mock_base import (
    Modes,
    abort,
    answer_text,
    bearer,
    serve_app,
    sse,
    words,
)
from trustgate_testkit.proxy.providers import ProviderMock, Recorded

UPSTREAM_KEY = "sk-upstream-test-0123456789"


USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def _completion(model: str, message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": USAGE,
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
    return sse(doc)


def _usage_chunk(model: str) -> bytes:
    doc = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": USAGE,
    }
    return sse(doc)


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def _text(content: Any) -> str:
    """The text of a message's ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def record(path: str, headers: dict[str, str], body: dict[str, Any]) -> Recorded:
    """What the contract's ``Recorded`` asks of an OpenAI Chat request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    has_image = any(
        isinstance(p, dict) and p.get("type") == "image_url"
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
    )
    results = [_text(m.get("content")) for m in messages if m.get("role") == "tool"]
    return Recorded(
        path=path,
        headers=headers,
        body=body,
        system="\n".join(system) if system else None,
        has_image=has_image,
        tool_result=results[-1] if results else None,
    )


@dataclass
class MockUpstream:
    """OpenAI's Chat Completions wire format. The requested model picks the behaviour:
    ``*-tools`` (a tool call, or with a tool result in the request the text ``The weather
    is <result>``), ``*-long`` (finished by ``length``), ``*-ratelimited`` (429 +
    Retry-After), ``*-slow`` (a stream
    held after its first chunk until ``release`` is set), ``*-cut`` (connection dropped
    mid-stream), ``*-stall`` (a stream silent after its first chunk), ``*-hang`` (no answer
    at all, or a stream of keep-alive comments that never ends), anything else (a plain
    answer)."""

    name: str = "mock"
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    recorded: list[Recorded] = field(default_factory=list)
    entra_tokens: list[str] = field(default_factory=list)  # bearers deployments accept
    release: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        self.paths.append(request.path_qs)
        self.recorded.append(record(request.path_qs, dict(request.headers), body))
        azure = "deployment" in request.match_info
        if azure:
            ok = request.headers.get("api-key") == UPSTREAM_KEY or (
                bearer(request) in self.entra_tokens
            )
        else:
            presented = (
                request.headers.get("Authorization") or f"Bearer {request.headers.get('api-key')}"
            )
            ok = presented == f"Bearer {UPSTREAM_KEY}"
        if not ok and azure:
            return web.json_response(
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong API"
                        " endpoint. Make sure to provide a valid key for an active subscription"
                        " and use a correct regional API endpoint for your resource.",
                    }
                },
                status=401,
            )
        if not ok:
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        model: str = body.get("model") or "none"
        if azure:
            model = request.match_info["deployment"]
        modes = Modes.of(model)
        if modes.ratelimited:
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
        answered = self.recorded[-1].tool_result
        tools = modes.tools and answered is None
        text = answer_text(self.name, answered)
        finish = "tool_calls" if tools else "length" if modes.long else "stop"
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
                else {"role": "assistant", "content": text, "refusal": None}
            )
            return web.json_response(
                _completion(model, message, finish),
                headers={"x-request-id": "req_upstream", "openai-processing-ms": "5"},
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_upstream"}
        )
        await resp.prepare(request)
        if tools:
            start = {"index": 0, **TOOL_CALL, "function": {"name": "get_weather", "arguments": ""}}
            await resp.write(_chunk(model, {"role": "assistant", "tool_calls": [start]}))
            for part in ('{"city":', '"Paris"}'):
                args = {"index": 0, "function": {"arguments": part}}
                await resp.write(_chunk(model, {"tool_calls": [args]}))
            await resp.write(_chunk(model, {}, "tool_calls"))
        else:
            first, *rest = words(text)
            await resp.write(_chunk(model, {"role": "assistant", "content": first}))
            if modes.slow:
                await self.release.wait()
            if modes.cut:
                await resp.write(_chunk(model, {"content": " wor"}))
                abort(request)
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
            for word in rest:
                await resp.write(_chunk(model, {"content": word}))
            await resp.write(_chunk(model, {}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(_usage_chunk(model))
        await resp.write(b"data: [DONE]\n\n")
        self.finished.set()
        await resp.write_eof()
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        """OpenAI's embeddings: one 3-dimension vector per input, usage 8 prompt tokens."""
        body = await request.json()
        self.recorded.append(Recorded(request.path_qs, dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}" and (
            request.headers.get("api-key") != UPSTREAM_KEY
        ):
            return web.json_response(
                {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}},
                status=401,
            )
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        vector = openai_embedding([0.1, 0.2, 0.3], body.get("encoding_format"))
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector} for i in range(count)
                ],
                "model": body.get("model"),
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "mock-1", "object": "model", "created": 0, "owned_by": "mock"}],
            }
        )


def openai_embedding(values: list[float], encoding_format: object) -> list[float] | str:
    """An embedding as OpenAI writes it: numbers, or with ``encoding_format: "base64"``
    the float32 values little-endian in base64."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


@asynccontextmanager
async def serve_mock(name: str = "mock") -> AsyncIterator[MockUpstream]:
    mock = MockUpstream(name)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", mock.chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", mock.chat)
    app.router.add_post("/v1/embeddings", mock.embeddings)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", mock.embeddings)
    app.router.add_get("/v1/models", mock.models)
    async with serve_app(app) as url:
        mock.url = f"{url}/v1"
        yield mock


@asynccontextmanager
async def serve_openai_mock(name: str = "openai") -> AsyncIterator[ProviderMock]:
    """The mock as an ``openai`` registry (Chat Completions: ``api: completions``)."""
    async with serve_mock(name) as mock:
        yield ProviderMock(
            provider="openai",
            wire="openai_chat",
            options={"base_url": mock.url, "api": "completions"},
            auth={"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
            requests=mock.recorded,
            name=name,
        )


@asynccontextmanager
async def serve_azure_mock(name: str = "azure") -> AsyncIterator[ProviderMock]:
    """The mock as an ``azure`` registry: deployment paths, the ``api-key`` header."""
    async with serve_mock(name) as mock:
        yield ProviderMock(
            provider="azure",
            wire="openai_chat",
            options={},
            auth={
                "type": "azure",
                "azure": {"endpoint": mock.url.removesuffix("/v1"), "api_key": UPSTREAM_KEY},
            },
            requests=mock.recorded,
            name=name,
        )
