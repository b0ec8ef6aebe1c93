"""A scriptable upstream in OpenAI's Chat Completions wire format, for routing tests: each
request takes the next step of its script (a status with a body and headers, a stream
cut or stalled after N chunks, no answer at all); once the script is spent it answers
plainly (whole or streamed, ``Hello from <name>``). ``GET /v1/models`` answers a list
(or ``models_status``), so active probes have something to read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trustgate_testkit.proxy.mock_base import abort, serve_app, sse


@dataclass(frozen=True)
class Reply:
    """A whole answer: ``status``, a JSON ``body`` (raw bytes when ``raw``), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass(frozen=True)
class Stream:
    """A 200 stream of ``chunks`` text chunks, then ``end``: ``done`` (finished
    properly), ``cut`` (connection dropped) or ``stall`` (silent until the caller
    leaves)."""

    chunks: int = 3
    end: str = "done"


@dataclass(frozen=True)
class Hang:
    """No answer at all until the caller gives up."""


Step = Reply | Stream | Hang


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return sse(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


@dataclass
class ScriptedUpstream:
    name: str = "scripted"
    url: str = ""
    script: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    probes: int = 0
    models_status: int = 200
    in_flight: int = 0

    def then(self, *steps: Step) -> ScriptedUpstream:
        self.script.extend(steps)
        return self

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        step = self.script.popleft() if self.script else None
        model = str(body.get("model") or "none")
        stream = body.get("stream") is True
        if isinstance(step, Reply):
            if step.raw is not None:
                return web.Response(
                    status=step.status,
                    body=step.raw,
                    headers=step.headers,
                    content_type="application/json",
                )
            return web.json_response(step.body, status=step.status, headers=step.headers)
        if isinstance(step, Hang):
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            return web.json_response({})
        text = f"Hello from {self.name}"
        if not stream and step is None:
            return web.json_response(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                }
            )
        plan = step if isinstance(step, Stream) else Stream(3, "done")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        self.in_flight += 1
        try:
            await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
            for i in range(plan.chunks):
                await resp.write(_chunk(model, {"content": f"{text} {i}." if i else text}))
            if plan.end == "cut":
                abort(request)
                return resp
            if plan.end == "stall":
                while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                return resp
            await resp.write(_chunk(model, {}, "stop"))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        finally:
            self.in_flight -= 1
        return resp

    async def models(self, request: web.Request) -> web.Response:
        self.probes += 1
        return web.json_response(
            {"object": "list", "data": [{"id": "m", "object": "model"}]},
            status=self.models_status,
        )


@asynccontextmanager
async def serve_scripted(name: str = "scripted") -> AsyncIterator[ScriptedUpstream]:
    """The mock on a free port; ``url`` is its OpenAI-style base (``…/v1``)."""
    mock = ScriptedUpstream(name)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", mock.chat)
    app.router.add_get("/v1/models", mock.models)
    async with serve_app(app) as base:
        mock.url = f"{base}/v1"
        yield mock
