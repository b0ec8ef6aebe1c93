"""A fast mock MCP server (streamable HTTP, JSON answers) to measure the MCP plane against.

The mcp SDK's ``MCPServer`` spends about 3 ms of CPU per ``tools/call`` (pydantic models,
anyio streams, a task per request): behind a gateway that must add under 1 ms and pass
1,000 calls/s on one core, it would be the thing measured. This one is raw asyncio +
httptools and speaks only what a client needs, on the exact wire format:

- ``POST /mcp`` ``initialize`` → the negotiated protocol version (the client's if known,
  else the newest handshake version), ``tools`` capability, and a fresh
  ``Mcp-Session-Id`` header;
- a notification (``notifications/initialized`` …) or a client's response → 202, no body;
- ``ping`` → ``{}``; ``tools/list`` → one tool, ``echo`` (``{"text": string}``);
- ``tools/call`` ``echo`` → ``{"content":[{"type":"text","text":<text>}],"isError":false}``;
  another tool → ``-32602``; any other method → ``-32601``; a body that is not JSON →
  ``-32700``; a request without a known session id (after ``initialize``) → 404, as the
  transport spec says;
- ``GET /mcp`` (the optional server-to-client stream) → 405, ``DELETE /mcp`` → 200.

Every answer is ``application/json`` whatever the client accepts (the spec lets the server
choose).

    python bench/mock_mcp_upstream.py --port 18301    # http://127.0.0.1:18301/mcp
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
from typing import Any

import httptools
import orjson

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ECHO_TOOL = {
    "name": "echo",
    "description": "Returns its text.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}
SERVER_INFO = {"name": "bench-mock-mcp", "version": "1.0.0"}

Doc = dict[str, Any]


def response(status: bytes, body: bytes = b"", session: bytes | None = None) -> bytes:
    head = [b"HTTP/1.1 " + status]
    if body:
        head.append(b"content-type: application/json")
    if session is not None:
        head.append(b"mcp-session-id: " + session)
    head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


NO_CONTENT = response(b"202 Accepted")
NOT_FOUND = response(
    b"404 Not Found",
    orjson.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}}
    ),
)
NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nallow: POST, DELETE\r\ncontent-length: 0\r\n\r\n"
DELETED = response(b"200 OK")
PARSE_ERROR = response(
    b"400 Bad Request",
    orjson.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    ),
)


def error(rid: Any, code: int, message: str) -> Doc:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def answer(message: Doc) -> Doc | None:
    """The reply to one JSON-RPC message (None for a notification or a response)."""
    rid = message.get("id")
    method = message.get("method")
    if rid is None or not isinstance(method, str):
        return None
    params = message.get("params") or {}
    if method == "tools/call":
        args = params.get("arguments") or {}
        if params.get("name") != "echo":
            return error(rid, -32602, f"Unknown tool: {params.get('name')}")
        text = args.get("text", "")
        result: Doc = {"content": [{"type": "text", "text": str(text)}], "isError": False}
    elif method == "tools/list":
        result = {"tools": [ECHO_TOOL]}
    elif method == "ping":
        result = {}
    elif method == "initialize":
        asked = params.get("protocolVersion")
        result = {
            "protocolVersion": asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1],
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO,
        }
    else:
        return error(rid, -32601, f"Method not found: {method}")
    return {"jsonrpc": "2.0", "id": rid, "result": result}


class McpProtocol(asyncio.Protocol):
    """One keep-alive connection; ``sessions`` is shared by every connection."""

    def __init__(self, sessions: set[bytes]) -> None:
        self.sessions = sessions
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.session: bytes | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.session = None
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"mcp-session-id":
            self.session = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"POST":
            out = self._post(b"".join(self.body))
        elif method == b"DELETE":
            self.sessions.discard(self.session or b"")
            out = DELETED
        else:
            out = NOT_ALLOWED
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(out)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def _post(self, raw: bytes) -> bytes:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return PARSE_ERROR
        messages = doc if isinstance(doc, list) else [doc]
        if not all(isinstance(m, dict) for m in messages):
            return PARSE_ERROR
        opened: bytes | None = None
        if any(m.get("method") == "initialize" for m in messages):
            opened = secrets.token_hex(16).encode()
            self.sessions.add(opened)
        elif self.session not in self.sessions:
            return NOT_FOUND
        replies = [r for r in map(answer, messages) if r is not None]
        if not replies:
            return NO_CONTENT
        body = orjson.dumps(replies if isinstance(doc, list) else replies[0])
        return response(b"200 OK", body, opened)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    sessions: set[bytes] = set()
    server = await loop.create_server(lambda: McpProtocol(sessions), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mcp http://{host}:{port}/mcp", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18301)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
