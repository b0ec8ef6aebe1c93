"""The plane's authorization server (stub: filled in by the OAuth work)."""

from __future__ import annotations

from trustgate_core.counters import Counters
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Receive, Scope, Send, send_json
from trustgate_mcp.services.ports import Grant
from trustgate_mcp.settings import McpSettings


class OAuthServer:
    def __init__(self, state: ReplicaState, settings: McpSettings, counters: Counters) -> None:
        self.state = state
        self.settings = settings
        self.counters = counters

    def handles(self, path: str) -> bool:
        """Whether ``path`` is one of the OAuth endpoints (served by ``__call__``)."""
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 404, {"error": "not_found"}, [])

    def verify(self, token: str, resource: str) -> Grant | None:
        return None

    def challenge(self, resource: str) -> str:
        return f'Bearer resource_metadata="{resource}"'
