"""A mock of OpenAI's Responses API (``POST /v1/responses``), for tests.

Plain calls answer a ``Response`` object; ``"stream": true`` answers SSE events
(``event: <type>`` + ``data: {...}``) in the order the API emits them:
``response.created``, ``response.in_progress``, per output item
``response.output_item.added`` → (``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``,
``response.content_part.done``) or (``response.function_call_arguments.delta``…,
``.done``) or (``response.reasoning_summary_part.added``,
``response.reasoning_summary_text.delta``…, ``.done``, ``response.reasoning_summary_part.done``)
→ ``response.output_item.done``, then ``response.completed`` (``response.incomplete`` when
cut by ``max_output_tokens``) carrying the whole response. Every event has a
``sequence_number`` counting from 0. No ``[DONE]`` line: the API sends none.

Credentials: ``Authorization: Bearer <RESPONSES_KEY>``; anything else is OpenAI's 401
``invalid_api_key`` body.

Fixtures' provenance: OpenAI's API reference for ``POST /v1/responses`` and its streaming
events, and the ``openai`` SDK's types (``openai/types/responses/``: ``Response``,
``ResponseOutputMessage``, ``ResponseOutputText``, ``ResponseFunctionToolCall``,
``ResponseReasoningItem``, ``ResponseUsage``, the ``Response*Event`` classes) and its
stream accumulator (``openai/lib/streaming/responses/_responses.py``), which accepts this
mock's streams; error bodies (``invalid_api_key`` 401, ``rate_limit_exceeded`` 429) as
OpenAI documents them.

By model name (``providers``' contract): ``…-tools`` (a ``get_weather``
function_call, or with a ``function_call_output`` in the input the text ``The weather is
<output>``), ``…-long`` (``incomplete``, reason ``max_output_tokens``), ``…-thinking`` (a
reasoning item with a summary first), ``…-cut`` (stream aborted after the first delta),
``…-slow`` (a stream held after its first delta until ``MockResponses.release`` is set),
``…-ratelimited`` (429 + ``Retry-After: 7``); anything else ``Hello from <name>``. Usage:
input 11 (3 cached), output 7.
"""

from __future__ import annotations

import asyncio
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
    record_request,
    serve_app,
    sse,
    words,
)
from trustgate_testkit.proxy.providers import ProviderMock, Recorded

RESPONSES_KEY = "sk-responses-test-0123456789"
RESPONSE_ID = "resp_mock0001"
CALL_ID = "call_mock0001"
ENCRYPTED = "gAAAAmock-encrypted-reasoning"
SUMMARY = ("Thinking", " about", " it")


def _usage(reasoning: int) -> dict[str, Any]:
    return {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": 18,
    }


def _texts(content: Any, kinds: tuple[str, ...]) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") in kinds
    ]


def record(path: str, headers: dict[str, str], body: dict[str, Any]) -> Recorded:
    """What the contract's ``Recorded`` asks of a Responses request."""
    items = body.get("input")
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    system = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    has_image = False
    results: list[str] = []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message" and item.get("role") in ("system", "developer"):
            system.extend(_texts(item.get("content"), ("input_text",)))
        elif kind == "message" and isinstance(item.get("content"), list):
            has_image = has_image or any(
                isinstance(p, dict) and p.get("type") == "input_image" for p in item["content"]
            )
        elif kind == "function_call_output":
            results.append("".join(_texts(item.get("output"), ("input_text",))))
    return Recorded(
        path=path,
        headers=headers,
        body=body,
        system="\n".join(system) if system else None,
        has_image=has_image,
        tool_result=results[-1] if results else None,
    )


def _message(text: str, status: str) -> dict[str, Any]:
    return {
        "id": "msg_mock0001",
        "type": "message",
        "status": status,
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


def _function_call() -> dict[str, Any]:
    return {
        "id": "fc_mock0001",
        "type": "function_call",
        "status": "completed",
        "arguments": '{"city":"Paris"}',
        "call_id": CALL_ID,
        "name": "get_weather",
    }


def _reasoning() -> dict[str, Any]:
    return {
        "id": "rs_mock0001",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "".join(SUMMARY)}],
        "encrypted_content": ENCRYPTED,
    }


def _response(
    body: dict[str, Any], status: str, output: list[dict[str, Any]], reasoning: int
) -> dict[str, Any]:
    """A Response object, echoing the request's parameters as the API does."""
    done = status != "in_progress"
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _usage(reasoning) if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


class _Events:
    """Writes SSE events with their ``sequence_number``."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self.resp = resp
        self.seq = 0

    async def send(self, kind: str, **fields: Any) -> None:
        doc = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        await self.resp.write(sse(doc, kind))


@dataclass
class MockResponses:
    name: str = "responses"
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets ``-slow`` go on
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # a stream was completed

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        recorded = record_request(self.requests, request, body, record)
        if bearer(request) != RESPONSES_KEY:
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        model = str(body.get("model") or "")
        modes = Modes.of(model)
        if modes.ratelimited:
            return web.json_response(
                {
                    "error": {
                        "message": f"Rate limit reached for {model} on requests per min (RPM).",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                status=429,
                headers={"Retry-After": "7", "x-request-id": "req_upstream"},
            )
        answered = recorded.tool_result
        call = modes.tools and answered is None
        text = answer_text(self.name, answered)
        status = "incomplete" if modes.long else "completed"
        thinking = modes.thinking
        output: list[dict[str, Any]] = [_reasoning()] if thinking else []
        output.append(_function_call() if call else _message(text, status))
        reasoning_tokens = 4 if thinking else 0
        if not body.get("stream"):
            return web.json_response(
                _response(body, status, output, reasoning_tokens),
                headers={"x-request-id": "req_upstream", "openai-processing-ms": "5"},
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_upstream"}
        )
        await resp.prepare(request)
        events = _Events(resp)
        start = _response(body, "in_progress", [], reasoning_tokens)
        await events.send("response.created", response=start)
        await events.send("response.in_progress", response=start)
        for index, item in enumerate(output):
            if item["type"] == "reasoning":
                await self._reasoning(events, index, item)
            elif item["type"] == "function_call":
                await self._call(events, index, item)
            elif not await self._text(events, index, item, modes):
                abort(request)  # no terminal event
                return resp
        final = "response.incomplete" if status == "incomplete" else "response.completed"
        await events.send(final, response=_response(body, status, output, reasoning_tokens))
        self.finished.set()
        await resp.write_eof()
        return resp

    async def _text(self, events: _Events, index: int, item: dict[str, Any], modes: Modes) -> bool:
        """A message item's events; ``False`` when ``-cut`` wants the stream broken."""
        ids = {"item_id": item["id"], "output_index": index}
        part = item["content"][0]
        await events.send(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "content": []},
        )
        await events.send(
            "response.content_part.added", **ids, content_index=0, part={**part, "text": ""}
        )
        for n, word in enumerate(words(part["text"])):
            await events.send(
                "response.output_text.delta", **ids, content_index=0, delta=word, logprobs=[]
            )
            if n == 0 and modes.cut:
                return False
            if n == 0 and modes.slow:
                await self.release.wait()
        await events.send(
            "response.output_text.done", **ids, content_index=0, text=part["text"], logprobs=[]
        )
        await events.send("response.content_part.done", **ids, content_index=0, part=part)
        await events.send("response.output_item.done", output_index=index, item=item)
        return True

    async def _call(self, events: _Events, index: int, item: dict[str, Any]) -> None:
        ids = {"item_id": item["id"], "output_index": index}
        await events.send(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "arguments": ""},
        )
        for delta in ('{"city":', '"Paris"}'):
            await events.send("response.function_call_arguments.delta", **ids, delta=delta)
        await events.send(
            "response.function_call_arguments.done", **ids, arguments=item["arguments"]
        )
        await events.send("response.output_item.done", output_index=index, item=item)

    async def _reasoning(self, events: _Events, index: int, item: dict[str, Any]) -> None:
        ids = {"item_id": item["id"], "output_index": index}
        summary = item["summary"][0]
        await events.send(
            "response.output_item.added", output_index=index, item={**item, "summary": []}
        )
        await events.send(
            "response.reasoning_summary_part.added",
            **ids,
            summary_index=0,
            part={**summary, "text": ""},
        )
        for delta in SUMMARY:
            await events.send(
                "response.reasoning_summary_text.delta", **ids, summary_index=0, delta=delta
            )
        await events.send(
            "response.reasoning_summary_text.done", **ids, summary_index=0, text=summary["text"]
        )
        await events.send(
            "response.reasoning_summary_part.done", **ids, summary_index=0, part=summary
        )
        await events.send("response.output_item.done", output_index=index, item=item)


@asynccontextmanager
async def serve_responses(name: str = "responses") -> AsyncIterator[MockResponses]:
    mock = MockResponses(name)
    app = web.Application()
    app.router.add_post("/v1/responses", mock.responses)
    async with serve_app(app) as url:
        mock.url = f"{url}/v1"
        yield mock


@asynccontextmanager
async def serve_responses_mock(name: str = "responses") -> AsyncIterator[ProviderMock]:
    """The mock as an ``openai`` registry calling the Responses API (``api: responses``)."""
    async with serve_responses(name) as mock:
        yield ProviderMock(
            provider="openai",
            wire="openai_responses",
            options={"base_url": mock.url, "api": "responses"},
            auth={"type": "api_key", "api_key": {"api_key": RESPONSES_KEY}},
            requests=mock.requests,
            name=name,
        )
