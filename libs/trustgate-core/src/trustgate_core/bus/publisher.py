"""Request events → ``trustgate.requests.<gateway_id>``: fire-and-forget, bounded.

``emit`` (on the hot path) appends to a bounded buffer and returns; an owned background
task encodes and publishes. When the buffer is full the event is dropped and counted.
While NATS is unreachable the task waits, the buffer holds what fits (the rest is dropped
and counted), and publishing resumes when the connection is back.

What is buffered is the plane's own record of a finished call (the proxy's ``Call``, the
MCP plane's tool call): anything with a ``gateway_id`` and a ``trace_id``. The plane says
how one becomes an event (``payload``: the event as a dict orjson encodes, with its
``kind``) and which ``traceparent`` it carries (``traceparent(item, sampled)``: the plane's
span of the call as parent); the sampled flag is ``sampled``'s answer (the tracer's
decision, set when tracing is on), asked here in the background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import orjson
from nats.aio.client import Client as NATS

from trustgate_core.events.subjects import requests_subject

log = logging.getLogger(__name__)

_RECONNECT_POLL = 0.05
_YIELD_EVERY = 256


class Publishable(Protocol):
    """A finished call: the gateway it belongs to (None: no subject, nothing published)
    and its trace id (the message's ``Nats-Msg-Id``)."""

    @property
    def gateway_id(self) -> UUID | None: ...

    @property
    def trace_id(self) -> str: ...


T = TypeVar("T", bound=Publishable)


class RequestEventPublisher(Generic[T]):
    def __init__(
        self,
        payload: Callable[[T], dict[str, Any]],
        traceparent: Callable[[T, bool], str],
        capacity: int = 10_000,
        linger: float = 0.005,
    ) -> None:
        self.payload = payload
        self.traceparent = traceparent
        self.capacity = capacity
        self.linger = linger
        self._buf: deque[T] = deque()
        self._wake = asyncio.Event()
        self._nc: NATS | None = None
        self._task: asyncio.Task[None] | None = None
        self._subjects: dict[object, str] = {}
        self.sampled: Callable[[T], bool] | None = None  # None: tracing off
        self.published = 0
        self.dropped = 0
        self.failed = 0

    # -- hot path -------------------------------------------------------------------------
    def emit(self, item: T) -> None:
        if item.gateway_id is None:  # no gateway, no subject: nothing to publish
            return
        if len(self._buf) >= self.capacity:
            self.dropped += 1
            return
        self._buf.append(item)
        if not self._wake.is_set():
            self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._buf)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def attach(self, nc: NATS) -> None:
        self._nc = nc

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="request-events")

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Publish what is buffered (within ``flush_timeout``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        deadline = asyncio.get_running_loop().time() + flush_timeout
        while self._buf and self.connected and asyncio.get_running_loop().time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._nc is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=1)

    # -- the drain task -------------------------------------------------------------------
    async def _run(self) -> None:
        buf = self._buf
        while True:
            await self._wake.wait()
            if self.linger:
                # let a few events gather: one socket write for many, and fewer wake-ups
                await asyncio.sleep(self.linger)
            self._wake.clear()
            sent = 0
            while buf:
                nc = self._nc
                if nc is None or not nc.is_connected:
                    await asyncio.sleep(_RECONNECT_POLL)
                    continue
                item = buf[0]
                try:
                    await self._publish(nc, item)
                except Exception as exc:
                    if nc.is_connected:  # not an outage: a bad event; drop it
                        buf.popleft()
                        self.failed += 1
                        log.warning("request event not published: %r", exc)
                    else:
                        await asyncio.sleep(_RECONNECT_POLL)
                    continue
                buf.popleft()
                self.published += 1
                sent += 1
                if sent % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)

    async def _publish(self, nc: NATS, item: T) -> None:
        subject = self._subjects.get(item.gateway_id)
        if subject is None:
            subject = requests_subject(str(item.gateway_id))
            if len(self._subjects) > 4096:
                self._subjects.clear()
            self._subjects[item.gateway_id] = subject
        payload = orjson.dumps(self.payload(item))
        headers = {
            "Nats-Msg-Id": item.trace_id,
            # the plane's span of this call as parent: telemetry's span joins its trace
            "traceparent": self.traceparent(item, self.sampled is None or self.sampled(item)),
        }
        await nc.publish(subject, payload, headers=headers)
