"""The composition root: builds the telemetry service's parts and owns their lifecycle.

The HTTP app answers at once (``/healthz``; ``/readyz`` says not ready). The replica runner
connects to NATS (retrying), makes sure the config and requests streams exist and follows
the config replica (to know each gateway's exporters); once it has caught up, a background
task connects the sink (Kafka, retrying; or a file when configured so), then runs the
durable work consumer. With ``TELEMETRY_ENABLED=false`` nothing is consumed and the service
reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

from nats.aio.client import Client as NATS

from trustgate_core.backoff import retry
from trustgate_core.bus import WorkConsumer
from trustgate_core.crypto import SecretBox
from trustgate_core.events.subjects import CONFIG_STREAM, REQUESTS_SUBJECTS, requests_stream
from trustgate_core.observability.metrics import render
from trustgate_core.observability.tracing import Tracing, setup_tracing
from trustgate_core.replica import ConfigReplica, ReplicaState
from trustgate_core.service import HealthApp, Lifecycle, ReplicaRunner
from trustgate_core.tasks import cancel_and_wait
from trustgate_core.telemetry.settings import OtlpDefaults, ResolvedOtlp
from trustgate_telemetry import __version__
from trustgate_telemetry.adapters.file import FileSink
from trustgate_telemetry.adapters.kafka import KafkaSink
from trustgate_telemetry.adapters.otlp import OtlpExporters
from trustgate_telemetry.domain.plan import GatewayPlans
from trustgate_telemetry.handlers.requests import RequestExporter
from trustgate_telemetry.metrics import TelemetryMetrics
from trustgate_telemetry.ports import ExportSink
from trustgate_telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

SERVICE_NAME = "trustgate-telemetry"


def build_sink(settings: TelemetrySettings) -> ExportSink:
    if settings.sink_file:
        return FileSink(settings.sink_file)
    return KafkaSink(
        settings.bootstrap_servers,
        settings.kafka_topic,
        timeout=settings.kafka_timeout,
        client_options=settings.kafka_client_options(),
    )


class TelemetryRuntime(Lifecycle):
    """``async with TelemetryRuntime(settings) as rt`` then serve ``rt.app``."""

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        env: Mapping[str, str] | None = None,
        sink: ExportSink | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.settings = settings
        self.metrics = TelemetryMetrics()
        self.state = ReplicaState()
        self.defaults = OtlpDefaults.from_env(env)
        self.plans = GatewayPlans(
            self.state.gateways,  # type: ignore[arg-type]
            self.defaults,
            SecretBox(settings.secrets_material),
        )
        self.sink = sink or build_sink(settings)
        self.otlp = OtlpExporters(
            capacity=settings.otlp_queue_size,
            batch_size=settings.otlp_batch_size,
            on_result=self._otlp_result,
            on_drop=self._otlp_drop,
        )
        self.tracing: Tracing | None = setup_tracing(SERVICE_NAME, env)
        self.exporter = RequestExporter(
            self.sink,
            self.otlp,
            self.plans,
            self.metrics,
            tracing=self.tracing,
            retry_delay=settings.retry_delay,
        )
        self.stream = requests_stream(
            settings.requests_max_age_seconds, settings.requests_max_bytes
        )
        self.runner = ReplicaRunner(
            settings.nats_url,
            stream_replicas=settings.stream_replicas,
            name=SERVICE_NAME,
            state=self.state,
            streams=[CONFIG_STREAM, self.stream],
        )
        self.consumer: WorkConsumer | None = None
        self.app = HealthApp(
            SERVICE_NAME,
            __version__,
            is_ready=lambda: self.ready,
            dependencies=self.dependencies,
            metrics=self.render,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def nc(self) -> NATS | None:
        return self.runner.nc

    @property
    def replica(self) -> ConfigReplica | None:
        return self.runner.replica

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        if not self.settings.enabled:
            return True
        return self.consumer is not None and self.consumer.consuming and self.sink.ready

    async def start(self) -> None:
        if not self.settings.enabled:
            log.info("telemetry: TELEMETRY_ENABLED=false, nothing is exported")
            return
        await self.runner.start()
        self._task = asyncio.create_task(self._run(), name="telemetry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if self.consumer is not None:
                self.consumer.stop()  # finish the batch in hand, then leave
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), self.settings.kafka_timeout + 1.0)
            await cancel_and_wait(task)
        await self.sink.stop()
        await asyncio.to_thread(self.otlp.close, 2.0)
        await self.runner.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    async def _run(self) -> None:
        """After the replica caught up: the sink (retrying), then the work consumer."""
        s = self.settings
        await self.runner.wait_ready()
        await retry(self.sink.start, what=f"telemetry: {self.sink.name} sink start", log=log)
        nc = self.runner.nc
        assert nc is not None
        self.consumer = WorkConsumer(
            nc.jetstream(),
            self.stream.name,
            REQUESTS_SUBJECTS,
            self.exporter.handle_batch,
            durable=s.durable,
            batch_size=s.batch_size,
            fetch_wait=s.fetch_wait,
            ack_wait=s.ack_wait,
            retry_delay=s.retry_delay,
            on_lag=self.metrics.lag.set,
        )
        await self.consumer.run()

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
        consuming = self.consumer is not None and self.consumer.consuming
        return {
            **self.runner.dependencies(),
            self.sink.name: "ok" if self.sink.ready else "unavailable",
            "consumer": "ok" if consuming else "unavailable",
        }
