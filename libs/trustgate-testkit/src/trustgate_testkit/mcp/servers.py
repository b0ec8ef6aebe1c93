"""Upstream MCP servers for tests and the benchmark: real ``mcp``-SDK ``MCPServer``s.

Two of them share a tool name (``search``), as two registered servers do in practice:

- ``weather``: tools ``forecast(city)``, ``search(query)``, ``slow(seconds)``; a resource
  ``weather://stations`` and a template ``weather://city/{name}``; a prompt
  ``weather_report(city)``.
- ``docs``: tools ``search(query)``, ``echo(text)``, ``fail()`` (a tool error,
  ``isError``); a resource ``docs://readme``; a prompt ``summarize(text)``.

``serve(kind, port)`` serves one over streamable HTTP at ``/mcp`` (in a thread of this
process: `UpstreamThread`; or ``python -m trustgate_testkit.mcp.servers KIND PORT`` in a
process of its own, for tests that kill it).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

KINDS = ("weather", "docs")


def weather_server(name: str = "weather") -> MCPServer:
    server: MCPServer = MCPServer(name)

    @server.tool()
    def forecast(city: str) -> str:
        """The forecast for a city."""
        return f"sunny in {city}"

    @server.tool()
    def search(query: str) -> str:
        """Search weather stations."""
        return f"weather results for {query}"

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answers after ``seconds``."""
        await asyncio.sleep(seconds)
        return "done"

    @server.resource("weather://stations")
    def stations() -> str:
        """Every station."""
        return "north,south"

    @server.resource("weather://city/{name}")
    def city(name: str) -> str:
        """One city's station."""
        return f"station of {name}"

    @server.prompt()
    def weather_report(city: str) -> str:
        """Write a weather report."""
        return f"Write a weather report for {city}."

    return server


def docs_server(name: str = "docs") -> MCPServer:
    server: MCPServer = MCPServer(name)

    @server.tool()
    def search(query: str) -> str:
        """Search the docs."""
        return f"docs results for {query}"

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise ValueError("this tool always fails")

    @server.resource("docs://readme")
    def readme() -> str:
        """The readme."""
        return "# Docs readme"

    @server.prompt()
    def summarize(text: str) -> str:
        """Summarize a text."""
        return f"Summarize: {text}"

    return server


def build(kind: str) -> MCPServer:
    if kind == "weather":
        return weather_server()
    if kind == "docs":
        return docs_server()
    raise ValueError(f"unknown server kind {kind!r} (one of {', '.join(KINDS)})")


def config(kind: str, port: int, **options: Any) -> uvicorn.Config:
    app = build(kind).streamable_http_app(**options)
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


class UpstreamThread:
    """An upstream served by uvicorn in a thread of this process (its own event loop):
    ``with UpstreamThread("docs", port) as url: ...``; ``url`` ends in ``/mcp``."""

    def __init__(self, kind: str, port: int, **options: Any) -> None:
        self.server = uvicorn.Server(config(kind, port, **options))
        self.url = f"http://127.0.0.1:{port}/mcp"
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP upstream did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    uvicorn.Server(config(kind, port)).run()


if __name__ == "__main__":
    main(sys.argv[1:])
