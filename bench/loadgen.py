"""A closed-loop HTTP/1.1 load generator for chat completions (asyncio + httptools).

``-c`` keep-alive connections each send the request, wait for the whole answer, check it
(2xx, and a ``"choices"`` body or an SSE stream ending in ``[DONE]``; with ``--format
anthropic`` a Messages request, a ``"content"`` body or a stream ending in
``message_stop``) and send the next,
for ``-d`` seconds after ``--warmup``. Prints one JSON line: req/s, latency percentiles,
errors. It costs far more CPU than wrk (use wrk if you have it); pin it away from the
gateway.

    python bench/loadgen.py http://127.0.0.1:18141/bench/v1/chat/completions -c 32 -d 10 \\
        -H 'X-AG-Gateway-Slug: bench' -H 'X-AG-API-Key: ag_...' --model json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

import httptools
import orjson

QUESTION = "Why does an API gateway help with LLM providers?"
SYSTEM = "You are a helpful assistant."


def build_request(
    url: str, headers: list[str], model: str, stream: bool, fmt: str = "openai"
) -> bytes:
    parts = urlsplit(url)
    if fmt == "anthropic":  # Anthropic Messages (/v1/messages)
        doc = {
            "model": model,
            "max_tokens": 256,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": stream,
        }
    else:
        doc = {
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION},
            ],
            "stream": stream,
        }
    body = orjson.dumps(doc)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn(asyncio.Protocol):
    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.sent = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self) -> None:
        if self.gen.stopping or self.transport is None:
            if self.transport is not None:
                self.transport.close()
            return
        self.body = []
        self.sent = time.perf_counter()
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.gen.errors += 1
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        latency = time.perf_counter() - self.sent
        body = b"".join(self.body)
        ok = 200 <= self.parser.get_status_code() < 300 and (
            self.gen.done in body[-64:] if self.gen.stream else self.gen.answer in body
        )
        self.gen.record(latency, ok)
        self.send()


class LoadGen:
    def __init__(self, request: bytes, stream: bool, fmt: str = "openai") -> None:
        self.request = request
        self.stream = stream
        # what a good answer holds: a stream's end marker, a body's content
        anthropic = fmt == "anthropic"
        self.done = b'{"type":"message_stop"}' if anthropic else b"[DONE]"
        self.answer = b'"content"' if anthropic else b'"choices"'
        self.stopping = False
        self.measuring = False
        self.latencies: list[float] = []
        self.errors = 0

    def record(self, latency: float, ok: bool) -> None:
        if not self.measuring:
            return
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    gen = LoadGen(
        build_request(args.url, args.header, args.model, args.stream, args.format),
        args.stream,
        args.format,
    )
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(lambda: Conn(gen), parts.hostname, parts.port or 80))[1]
        for _ in range(args.connections)
    ]
    await asyncio.sleep(args.warmup)
    gen.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    gen.measuring = False
    elapsed = time.perf_counter() - started
    gen.stopping = True
    await asyncio.wait([c.closed for c in conns], timeout=5)
    lat = sorted(gen.latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 3) if lat else None

    return {
        "requests": len(lat),
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "errors": gen.errors,
        "connections": args.connections,
        "stream": args.stream,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--format",
        choices=("openai", "anthropic"),
        default="openai",
        help="request/answer format: OpenAI Chat, or Anthropic Messages (/v1/messages)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
