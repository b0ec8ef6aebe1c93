"""The composition root: builds the telemetry service's parts and owns their lifecycle.

The HTTP app answers at once (``/healthz``; ``/readyz`` says not ready). A background task
connects to NATS (retrying), makes sure the requests stream exists, follows the config
replica (to know each gateway's exporters), connects the sink (Kafka, retrying; or a file
when configured so), then runs the durable consumer. With ``TELEMETRY_ENABLED=false``
nothing is consumed and the service reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from types import TracebackType

from nats.aio.client import Client as NATS

from trustgate_core.bus import ensure_streams, keep_connecting
from trustgate_core.events.subjects import requests_stream
from trustgate_core.observability.metrics import render
from trustgate_core.observability.tracing import Tracing, setup_tracing
from trustgate_core.replica import ConfigReplica, ReplicaState
from trustgate_core.telemetry.settings import OtlpDefaults, ResolvedOtlp
from trustgate_telemetry.adapters.kafka import EventSink, FileSink, KafkaSink
from trustgate_telemetry.adapters.otlp import OtlpExporters
from trustgate_telemetry.api.http import HealthApp
from trustgate_telemetry.domain.plan import GatewayPlans
from trustgate_telemetry.handlers.requests import ConsumerLoop, RequestExporter
from trustgate_telemetry.metrics import TelemetryMetrics
from trustgate_telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

_RETRY_MIN, _RETRY_MAX = 0.2, 5.0


def build_sink(settings: TelemetrySettings) -> EventSink:
    if settings.sink_file:
        return FileSink(settings.sink_file)
    return KafkaSink(
        settings.bootstrap_servers, settings.kafka_topic, timeout=settings.kafka_timeout
    )


class TelemetryRuntime:
    """``async with TelemetryRuntime(settings) as rt`` then serve ``rt.app``."""

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        env: Mapping[str, str] | None = None,
        sink: EventSink | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.settings = settings
        self.metrics = TelemetryMetrics()
        self.state = ReplicaState()
        self.defaults = OtlpDefaults.from_env(env)
        self.plans = GatewayPlans(self.state.gateways, self.defaults)  # type: ignore[arg-type]
        self.sink = sink or build_sink(settings)
        self.otlp = OtlpExporters(
            capacity=settings.otlp_queue_size,
            batch_size=settings.otlp_batch_size,
            on_result=self._otlp_result,
            on_drop=self._otlp_drop,
        )
        self.tracing: Tracing | None = setup_tracing("trustgate-telemetry", env)
        self.exporter = RequestExporter(
            self.sink,
            self.otlp,
            self.plans,
            self.metrics,
            tracing=self.tracing,
            retry_delay=settings.retry_delay,
        )
        self.nc: NATS | None = None
        self.replica: ConfigReplica | None = None
        self.loop: ConsumerLoop | None = None
        self.app = HealthApp(
            is_ready=lambda: self.ready, dependencies=self.dependencies, metrics=self.render
        )
        self._task: asyncio.Task[None] | None = None
        self._consuming = False

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        if not self.settings.enabled:
            return True
        return self._consuming and self.sink.ready

    async def start(self) -> None:
        if not self.settings.enabled:
            log.info("telemetry: TELEMETRY_ENABLED=false, nothing is exported")
            return
        self._task = asyncio.create_task(self._run(), name="telemetry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if self.loop is not None:
                self.loop.stop()  # finish the batch in hand, then leave
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), self.settings.kafka_timeout + 1.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._consuming = False
        await self.sink.stop()
        await asyncio.to_thread(self.otlp.close, 2.0)
        if self.replica is not None:
            await self.replica.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    async def __aenter__(self) -> TelemetryRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        s = self.settings
        self.nc = NATS()
        await keep_connecting(
            self.nc, s.nats_url, name="trustgate-telemetry", on_reconnect=self._on_reconnect
        )
        stream = requests_stream(s.requests_max_age_seconds, s.requests_max_bytes)
        await self._retry("config replica", self._start_replica, stream)
        await self._retry(f"{self.sink.name} sink", self.sink.start)
        self.loop = ConsumerLoop(
            self.nc.jetstream(),
            stream.name,
            self.exporter,
            durable=s.durable,
            batch_size=s.batch_size,
            fetch_wait=s.fetch_wait,
            ack_wait=s.ack_wait,
        )
        while True:
            try:
                self._consuming = True
                await self.loop.run()
                return
            except Exception as exc:
                self._consuming = False
                log.warning("telemetry: consumer stopped (%r); restarting", exc)
                await asyncio.sleep(s.retry_delay)

    async def _start_replica(self, stream: object) -> None:
        assert self.nc is not None
        from trustgate_core.events.subjects import CONFIG_STREAM

        await ensure_streams(self.nc.jetstream(), [CONFIG_STREAM, stream])  # type: ignore[list-item]
        replica = ConfigReplica(self.nc, state=self.state)
        try:
            await replica.start()
            await replica.wait_ready()
        except BaseException:
            await replica.stop()
            raise
        self.replica = replica

    async def _retry(self, what: str, step: object, *args: object) -> None:
        delay = _RETRY_MIN
        while True:
            try:
                await step(*args)  # type: ignore[operator]
                return
            except Exception as exc:
                log.warning("telemetry: %s not started (%r); retrying", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _on_reconnect(self) -> None:
        if self.replica is not None:
            self.replica.resync()

    # -- observability --------------------------------------------------------------------
    def _otlp_result(self, settings: ResolvedOtlp, count: int, ok: bool) -> None:
        del settings
        (self.metrics.exported if ok else self.metrics.failures).labels("otlp").inc(count)

    def _otlp_drop(self, settings: ResolvedOtlp, count: int) -> None:
        del settings
        self.metrics.otlp_dropped.inc(count)

    def render(self) -> tuple[bytes, str]:
        self.metrics.otlp_pending.set(self.otlp.pending)
        return render(self.metrics.registry)

    def dependencies(self) -> dict[str, str]:
        if not self.settings.enabled:
            return {"telemetry": "disabled"}
        return {
            "nats": "ok" if self.nc is not None and self.nc.is_connected else "unavailable",
            "config": "ok" if self.replica is not None and self.replica.ready else "unavailable",
            self.sink.name: "ok" if self.sink.ready else "unavailable",
            "consumer": "ok" if self._consuming else "unavailable",
        }
