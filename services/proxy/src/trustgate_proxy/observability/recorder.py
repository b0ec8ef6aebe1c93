"""`CallRecorder`: the event sink the request path sees; metrics and spans in the back.

``emit`` (on the hot path) appends the finished call to a bounded buffer and passes it to
the wrapped sink (the request-event publisher, or a null sink when telemetry is off).
Nothing else happens there: an owned background task drains the buffer every
``interval`` seconds into `ProxyMetrics` (and `CallTracer` when tracing is on), and a
scrape drains it first, so ``/metrics`` is always current. When the buffer is full a
call is not recorded and is counted (``trustgate_proxy_calls_unrecorded_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from trustgate_proxy.domain.call import Call
from trustgate_proxy.observability.metrics import ProxyMetrics
from trustgate_proxy.observability.tracing import CallTracer
from trustgate_proxy.services.ports import CallSink

log = logging.getLogger(__name__)

_SLICE = 128


class CallRecorder:
    def __init__(
        self,
        inner: CallSink,
        metrics: ProxyMetrics,
        tracer: CallTracer | None = None,
        *,
        capacity: int = 100_000,
        interval: float = 0.1,
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.tracer = tracer
        self.capacity = capacity
        self.interval = interval
        self.unrecorded = 0
        self._buf: deque[Call] = deque()
        self._task: asyncio.Task[None] | None = None
        self._inner_emit = inner.emit

    # -- hot path -------------------------------------------------------------------------
    def emit(self, call: Call) -> None:
        buf = self._buf
        if len(buf) < self.capacity:
            buf.append(call)
        else:
            self.unrecorded += 1
        self._inner_emit(call)

    # -- background -----------------------------------------------------------------------
    def drain(self, limit: int | None = None) -> int:
        """Record what is buffered, or at most ``limit`` calls (synchronous). Returns how
        many were recorded."""
        buf = self._buf
        observe = self.metrics.observe
        tracer = self.tracer
        n = 0
        while buf and (limit is None or n < limit):
            call = buf.popleft()
            n += 1
            try:
                observe(call)
                if tracer is not None:
                    tracer.record(call)
            except Exception:  # a bad call must not stop the recording of the others
                log.exception("proxy: could not record a call's metrics or span")
        return n

    @property
    def pending(self) -> int:
        return len(self._buf)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-recorder")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.drain()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            # in slices, so a burst never holds the event loop for long
            for _ in range(self.capacity // _SLICE + 1):
                if self.drain(_SLICE) < _SLICE:
                    break
                await asyncio.sleep(0)
