"""Where finished calls go besides the request-event publisher."""

from __future__ import annotations

from trustgate_mcp.domain.call import McpCall


class NullSink:
    """Telemetry off: calls are discarded."""

    def emit(self, item: McpCall) -> None:
        return None


class MemorySink:
    """Keeps every call (tests, the in-process harness)."""

    def __init__(self) -> None:
        self.calls: list[McpCall] = []

    def emit(self, item: McpCall) -> None:
        self.calls.append(item)
