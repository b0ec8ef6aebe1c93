"""A fast mock LLM upstream in OpenAI's Chat Completions and Anthropic's Messages wire
formats.

Answers any ``POST .../chat/completions`` at once (or after ``--delay-ms``) with a fixed
``chat.completion`` JSON body, or, on the SSE port, with 20 ``chat.completion.chunk``
events, a usage chunk and ``data: [DONE]`` (chunked transfer encoding). A ``POST
.../messages`` (Anthropic mode, same ports) gets a fixed Anthropic ``message`` JSON body,
or on the SSE port the Messages API's event sequence: ``message_start``, a text block
(``content_block_start``, ``ping``, 16 ``text_delta``s, ``content_block_stop``),
``message_delta`` and ``message_stop`` (22 events, like the OpenAI stream's 22). ``GET .../models`` lists one model. Raw asyncio + httptools, so the mock is
never the bottleneck of the proxy it stands behind.

    python bench/mock_upstream.py --port 18201            # JSON on 18201, SSE on 18202
    python bench/mock_upstream.py --port 18201 --delay-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import httptools
import orjson

MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {"prompt_tokens": 42, "completion_tokens": 21, "total_tokens": 63}
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
ANTHROPIC_USAGE = {
    "input_tokens": 42,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 21,
}


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "A gateway gives one place for auth, limits and telemetry.",
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    )


def stream_body(chunks: int = 20) -> bytes:
    def event(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        doc = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": []
            if usage
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    parts = [event({"role": "assistant", "content": ""})]
    parts += [event({"content": f"word{i} "}) for i in range(chunks - 2)]
    parts.append(event({}, "stop"))
    parts.append(event({}, usage=USAGE))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def http_response(body: bytes, content_type: bytes, chunked: bool) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n"
    if not chunked:
        return head + b"content-length: %d\r\n\r\n" % len(body) + body
    out = [head, b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"]
    for event in body.split(b"\n\n")[:-1]:
        data = event + b"\n\n"
        out.append(b"%x\r\n%s\r\n" % (len(data), data))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def anthropic_message_body() -> bytes:
    return orjson.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [
                {
                    "type": "text",
                    "text": "A gateway gives one place for auth, limits and telemetry.",
                }
            ],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        }
    )


def anthropic_stream_body(deltas: int = 16) -> bytes:
    def event(kind: str, doc: dict[str, Any]) -> bytes:
        return (
            b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **doc}) + b"\n\n"
        )

    start: dict[str, Any] = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
    }
    parts = [
        event("message_start", {"message": start}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    parts += [
        event(
            "content_block_delta",
            {"index": 0, "delta": {"type": "text_delta", "text": f"word{i} "}},
        )
        for i in range(deltas)
    ]
    parts.append(event("content_block_stop", {"index": 0}))
    parts.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
            },
        )
    )
    parts.append(event("message_stop", {}))
    return b"".join(parts)


JSON_RESPONSE = http_response(completion_body(), b"application/json", chunked=False)
SSE_RESPONSE = http_response(stream_body(), b"text/event-stream", chunked=True)
ANTHROPIC_JSON_RESPONSE = http_response(
    anthropic_message_body(), b"application/json", chunked=False
)
ANTHROPIC_SSE_RESPONSE = http_response(
    anthropic_stream_body(), b"text/event-stream; charset=utf-8", chunked=True
)
MODELS_RESPONSE = http_response(
    orjson.dumps(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}],
        }
    ),
    b"application/json",
    chunked=False,
)


class MockProtocol(asyncio.Protocol):
    def __init__(self, answer: bytes, anthropic: bytes, delay: float) -> None:
        self.answer = answer
        self.anthropic = anthropic
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        url = self.url.split(b"?", 1)[0]
        if url.endswith(b"/models"):
            answer = MODELS_RESPONSE
        elif url.endswith(b"/messages"):
            answer = self.anthropic
        else:
            answer = self.answer
        keep = self.parser.should_keep_alive()
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._write, answer, keep)
        else:
            self._write(answer, keep)

    def _write(self, answer: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(answer)
        if not keep:
            self.transport.close()


async def serve(host: str, port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: MockProtocol(JSON_RESPONSE, ANTHROPIC_JSON_RESPONSE, delay), host, port
        ),
        await loop.create_server(
            lambda: MockProtocol(SSE_RESPONSE, ANTHROPIC_SSE_RESPONSE, delay), host, port + 1
        ),
    ]
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"json http://{host}:{port}/v1  sse http://{host}:{port + 1}/v1", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18201, help="JSON port; SSE is port+1")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port, args.delay_ms / 1000))
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
