"""The request-event publisher against a fake NATS connection: bounded, never blocking."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from trustgate_core.bus import RequestEventPublisher
from trustgate_core.events import RequestEvent
from trustgate_proxy.domain.call import Call, event_payload
from trustgate_proxy.observability.tracing import call_traceparent
from trustgate_testkit.fixtures import wait_for


class FakeNats:
    def __init__(self) -> None:
        self.is_connected = True
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail_next = False

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ValueError("bad payload")
        self.published.append((subject, payload, headers))

    async def flush(self, timeout: float = 1) -> None:  # noqa: ASYNC109 - nats-py's signature
        return None


GATEWAY = UUID(int=7)


def proxy_publisher(capacity: int) -> RequestEventPublisher[Call]:
    """Built as the proxy's bootstrap builds it (no linger: the tests wait on counters)."""
    return RequestEventPublisher(event_payload, call_traceparent, capacity=capacity, linger=0)


def call(n: int, gateway: UUID | None = GATEWAY) -> Call:
    c = Call(f"{n:032x}", "POST", "/v1/chat/completions", 1.0, 1_700_000_000.0)
    c.gateway_id = gateway
    c.status = 200
    c.ended = 1.001
    return c


async def test_events_are_published_in_order_with_dedupe_and_trace_headers() -> None:
    nc = FakeNats()
    publisher = proxy_publisher(10)
    publisher.attach(nc)  # type: ignore[arg-type]
    publisher.start()
    try:
        for n in range(3):
            publisher.emit(call(n))
        await wait_for(lambda: publisher.published == 3, timeout=2)
    finally:
        await publisher.stop()
    subjects = {s for s, _, _ in nc.published}
    assert subjects == {f"trustgate.requests.{UUID(int=7)}"}
    events = [RequestEvent.model_validate_json(p) for _, p, _ in nc.published]
    assert [e.trace_id for e in events] == [f"{n:032x}" for n in range(3)]
    _, _, headers = nc.published[0]
    assert headers["Nats-Msg-Id"] == f"{0:032x}"
    assert headers["traceparent"].startswith(f"00-{0:032x}-")


async def test_overflow_is_dropped_and_counted_while_disconnected_then_drained() -> None:
    nc = FakeNats()
    nc.is_connected = False
    publisher = proxy_publisher(2)
    publisher.attach(nc)  # type: ignore[arg-type]
    publisher.start()
    try:
        for n in range(5):
            publisher.emit(call(n))  # returns at once, whatever the bus does
        assert (publisher.pending, publisher.dropped) == (2, 3)
        nc.is_connected = True
        await wait_for(lambda: publisher.published == 2, timeout=2)
    finally:
        await publisher.stop()
    assert [orjson.loads(p)["trace_id"] for _, p, _ in nc.published] == [
        f"{0:032x}",
        f"{1:032x}",
    ]


async def test_an_event_the_bus_refuses_is_counted_failed_and_skipped() -> None:
    nc: Any = FakeNats()
    nc.fail_next = True
    publisher = proxy_publisher(10)
    publisher.attach(nc)
    publisher.start()
    try:
        publisher.emit(call(1))
        publisher.emit(call(2))
        publisher.emit(call(3, gateway=None))  # no gateway: no subject, not queued
        await wait_for(lambda: publisher.published == 1, timeout=2)
    finally:
        await publisher.stop()
    assert (publisher.failed, publisher.pending) == (1, 0)
