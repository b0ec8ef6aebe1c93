"""Agents for the MCP plane's tests: the official SDK client with a consumer's API key,
and a load balancer without affinity in front of several replicas."""

from __future__ import annotations

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


class Alternating(httpx2.AsyncBaseTransport):
    """A load balancer without affinity: each request goes to the next port of ``ports``
    (a test may replace one, e.g. after a replica restarted); ``sent`` records where each
    went."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent: list[int] = []
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def agent(
    url: str,
    key: str,
    transport: httpx2.AsyncBaseTransport | None = None,
    *,
    mode: str = "legacy",
) -> Client:
    """The SDK's client on ``url`` (``…/{slug}/mcp``) sending ``X-AG-API-Key: key``;
    ``mode`` as the SDK's (``legacy``: the initialize handshake and a session)."""
    http = httpx2.AsyncClient(
        headers={"X-AG-API-Key": key}, transport=transport, timeout=httpx2.Timeout(20)
    )
    return Client(streamable_http_client(url, http_client=http), mode=mode)
