"""The connection limits every plane's HTTP server keeps, on an in-process server: what a
well-behaved client does is never cut short (a head in the same packet as a large body,
pipelined requests, a slow answer, keep-alive reuse); what a slow or greedy one does is.
(The attacks on real plane processes are in tests/test_connection_limits.py.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from trustgate_core.serving import EmbeddedServer, server_config
from trustgate_core.settings import DEV_SECRET_KEY, CoreSettings
from trustgate_testkit.fixtures import wait_for

LIMITS = {
    "SERVER_SECRET_KEY": DEV_SECRET_KEY,
    "SERVER_MAX_HEADER_BYTES": "4096",
    "SERVER_HEADER_TIMEOUT": "300ms",
    "SERVER_BODY_TIMEOUT": "300ms",
    "SERVER_IDLE_TIMEOUT": "300ms",
    "SERVER_MAX_CONNECTIONS": "8",
    "LOG_LEVEL": "warning",
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the body's length; ``/slow`` answers after 1 s (past every timeout)."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    body = orjson.dumps({"path": scope["path"], "size": size})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = server_config(
        app, CoreSettings(**LIMITS), host="127.0.0.1", port=0, lifespan="off", loop="none"
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(server.up.wait(), 5)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, within: float = 3.0) -> tuple[int, dict[str, Any]]:
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            body = await self.reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), orjson.loads(body)

    async def closed(self, within: float = 3.0) -> bool:
        """Whether the server closes the connection within ``within`` (what it still
        sends is skipped)."""
        async with asyncio.timeout(within):
            try:
                await self.reader.read()
            except ConnectionResetError:
                pass
        return True


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        extra,
        len(body),
        body,
    )


async def test_a_small_head_sent_with_a_large_body_in_one_write_is_served() -> None:
    async with serving() as port, connected(port) as client:
        await client.send(post("/upload", b"x" * (1 << 20)))
        assert await client.response() == (200, {"path": "/upload", "size": 1 << 20})


async def test_a_head_within_the_limit_is_served_and_one_beyond_gets_431() -> None:
    async with serving() as port:
        async with connected(port) as client:
            await client.send(post("/fits", b"", b"X-Pad: %s\r\n" % (b"p" * 3000)))
            assert (await client.response())[0] == 200
        async with connected(port) as client:
            await client.send(post("/big", b"", b"X-Pad: %s\r\n" % (b"p" * 5000)))
            status, body = await client.response()
            assert status == 431
            assert body["error"] == "request_header_too_large"
            assert await client.closed()


async def test_pipelined_requests_and_keep_alive_reuse_are_answered_in_order() -> None:
    async with serving() as port, connected(port) as client:
        await client.send(post("/a", b"1") + post("/b", b"22") + post("/c", b"333"))
        for path, size in (("/a", 1), ("/b", 2), ("/c", 3)):
            assert await client.response() == (200, {"path": path, "size": size})
        await client.send(post("/again", b""))
        assert (await client.response())[1]["path"] == "/again"


async def test_an_answer_slower_than_every_timeout_is_not_cut_short() -> None:
    async with serving() as port, connected(port) as client:
        await client.send(post("/slow", b"done"))
        assert await client.response() == (200, {"path": "/slow", "size": 4})


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with serving() as port, connected(port) as client:
        await client.send(post("/once", b""))
        assert (await client.response())[0] == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.closed()
        assert 0.25 < loop.time() - started < 1.5


async def test_a_body_that_stops_gets_408_and_a_close() -> None:
    async with serving() as port, connected(port) as client:
        await client.send(b"POST /stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12")
        status, body = await client.response()
        assert status == 408
        assert body["error"] == "request_timeout"
        assert await client.closed()


async def test_beyond_the_cap_a_connection_gets_503_with_retry_after_until_others_leave() -> None:
    async with serving() as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        try:
            async with connected(port) as refused:
                await refused.send(post("/over", b""))
                async with asyncio.timeout(3):
                    head = await refused.reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 503")
                assert b"retry-after: 1" in head
                assert await refused.closed()
        finally:
            for _, writer in held:
                writer.close()

        async def served() -> bool:
            async with connected(port) as client:
                await client.send(post("/after", b""))
                return (await client.response())[0] == 200

        await wait_for(served, timeout=3, message="not served once the others left")
