"""The MCP plane's HTTP surface (stub: filled in by the protocol work)."""

from __future__ import annotations

from trustgate_core.service import HealthApp
from trustgate_core.service.asgi import Receive, Scope, Send, send_json
from trustgate_mcp.oauth.server import OAuthServer


class McpApp:
    def __init__(self, *, system: HealthApp, oauth: OAuthServer) -> None:
        self.system = system
        self.oauth = oauth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self.oauth.handles(path):
            await self.oauth(scope, receive, send)
        elif path.count("/") <= 1:
            await self.system(scope, receive, send)
        else:
            await send_json(send, 404, {"error": "not_found", "message": "not found"}, [])
