"""The request-event publisher, generic over what a plane buffers (here an MCP-like tool
call): the plane's payload and traceparent, core's subject, dedupe id and bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from trustgate_core.bus import RequestEventPublisher
from trustgate_testkit.fixtures import wait_for

GATEWAY = UUID(int=9)


@dataclass
class ToolCall:
    trace_id: str
    gateway_id: UUID | None
    tool: str


def payload(call: ToolCall) -> dict[str, Any]:
    return {"kind": "mcp", "trace_id": call.trace_id, "tool": call.tool}


def traceparent(call: ToolCall, sampled: bool) -> str:
    return f"00-{call.trace_id}-{'1' * 16}-{'01' if sampled else '00'}"


class FakeNats:
    def __init__(self) -> None:
        self.is_connected = True
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        self.published.append((subject, data, headers))

    async def flush(self, timeout: float = 1) -> None:  # noqa: ASYNC109 - nats-py's signature
        return None


def tool_call(n: int, gateway: UUID | None = GATEWAY) -> ToolCall:
    return ToolCall(f"{n:032x}", gateway, f"tool-{n}")


async def test_the_planes_payload_and_traceparent_are_published_with_core_headers() -> None:
    nc = FakeNats()
    publisher: RequestEventPublisher[ToolCall] = RequestEventPublisher(
        payload, traceparent, capacity=10, linger=0
    )
    publisher.sampled = lambda call: call.tool != "tool-1"
    publisher.attach(nc)  # type: ignore[arg-type]
    publisher.start()
    try:
        for n in range(3):
            publisher.emit(tool_call(n))
        publisher.emit(tool_call(9, gateway=None))  # no gateway: nothing to publish
        await wait_for(lambda: publisher.published == 3, timeout=2)
    finally:
        await publisher.stop()
    assert {subject for subject, _, _ in nc.published} == {f"trustgate.requests.{GATEWAY}"}
    docs = [orjson.loads(data) for _, data, _ in nc.published]
    assert [d["kind"] for d in docs] == ["mcp"] * 3
    assert [d["tool"] for d in docs] == ["tool-0", "tool-1", "tool-2"]
    headers = [h for _, _, h in nc.published]
    assert [h["Nats-Msg-Id"] for h in headers] == [f"{n:032x}" for n in range(3)]
    assert [h["traceparent"][-2:] for h in headers] == ["01", "00", "01"]
    assert (publisher.dropped, publisher.failed, publisher.pending) == (0, 0, 0)


async def test_a_full_buffer_drops_and_counts_and_stop_flushes_the_rest() -> None:
    nc = FakeNats()
    nc.is_connected = False
    publisher: RequestEventPublisher[ToolCall] = RequestEventPublisher(
        payload, traceparent, capacity=2, linger=0
    )
    publisher.attach(nc)  # type: ignore[arg-type]
    publisher.start()
    for n in range(4):
        publisher.emit(tool_call(n))
    assert (publisher.pending, publisher.dropped) == (2, 2)
    nc.is_connected = True
    await publisher.stop()  # publishes what is buffered before it stops
    assert (publisher.published, publisher.pending) == (2, 0)
