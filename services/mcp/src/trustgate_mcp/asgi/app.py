"""The MCP plane's HTTP surface: a plain ASGI callable, no framework on the request path.

The OAuth endpoints go to the authorization server; paths of one segment (``/healthz``,
``/readyz``, ``/health``) to the service's health app (``/metrics`` is on the operations
port only); ``/{consumer_slug}/mcp`` to the endpoint (``asgi.endpoint``); anything else
is a 404 JSON body."""

from __future__ import annotations

from trustgate_core.service import HealthApp
from trustgate_core.service.asgi import SECURITY_HEADERS, Receive, Scope, Send, send_json
from trustgate_mcp.asgi.endpoint import Endpoint
from trustgate_mcp.oauth.server import OAuthServer


class McpApp:
    def __init__(self, *, system: HealthApp, oauth: OAuthServer, endpoint: Endpoint) -> None:
        self.system = system
        self.oauth = oauth
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self.oauth.handles(path):
            await self.oauth(scope, receive, send)
            return
        if len(path) > 1 and path[-1] == "/":
            path = path.rstrip("/") or "/"
        slash = path.find("/", 1)
        if slash < 0:
            await self.system(scope, receive, send)
        elif path[slash:] == "/mcp" and slash > 1:
            await self.endpoint(scope, receive, send, path[1:slash])
        else:
            await send_json(
                send, 404, {"error": "not_found", "message": "not found"}, [*SECURITY_HEADERS]
            )
