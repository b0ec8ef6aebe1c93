"""The small ports the proxy's use cases are written against."""

from __future__ import annotations

from typing import Protocol

from trustgate_proxy.domain.call import Call


class EventSink(Protocol):
    """Takes a finished call's request event. Never blocks, never raises."""

    def emit(self, call: Call) -> None: ...


class NullSink:
    """Telemetry off: events are discarded."""

    def emit(self, call: Call) -> None:
        return None


class MemorySink:
    """Keeps every call (unit tests)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def emit(self, call: Call) -> None:
        self.calls.append(call)
