"""OTLP export: one pipeline (SDK log exporter + bounded queue + its own thread) per
distinct resolved settings.

``submit`` never blocks: it puts the record on the pipeline's bounded queue, or drops it and
counts the drop when the queue is full. The pipeline's thread takes batches off the queue and
calls the SDK exporter (gRPC or HTTP/protobuf), which does its own retries within
``timeout``. A slow, hung or dead collector therefore only fills that pipeline's queue: the
Kafka path and the bus consumer never wait for it. (The SDK's BatchLogRecordProcessor also
bounds its queue, but does not expose how many records it dropped; this does, exactly.)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from trustgate_core.telemetry.settings import ResolvedOtlp

log = logging.getLogger(__name__)

OnResult = Callable[[ResolvedOtlp, int, bool], None]  # settings, records, exported?
OnDrop = Callable[[ResolvedOtlp, int], None]

_STOP = object()


def build_log_exporter(settings: ResolvedOtlp) -> Any:
    """The SDK exporter for these settings (imported here: nothing at import time)."""
    headers = dict(settings.headers)
    tls = settings.tls
    if settings.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc_logs

        credentials = None
        if tls is not None:
            if tls.skip_verify:
                log.warning("otlp: tls.skip_verify is not supported over grpc; verifying")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca_file),
                private_key=_read(tls.key_file),
                certificate_chain=_read(tls.cert_file),
            )
        endpoint = settings.endpoint.split("://", 1)[-1].rstrip("/")
        return grpc_logs.OTLPLogExporter(
            endpoint=endpoint,
            insecure=settings.insecure if credentials is None else False,
            credentials=credentials,
            headers=headers,
            timeout=settings.timeout,
            compression=(
                grpc.Compression.Gzip
                if settings.compression == "gzip"
                else grpc.Compression.NoCompression
            ),
        )
    import requests
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpComp
    from opentelemetry.exporter.otlp.proto.http import _log_exporter as http_logs

    endpoint = settings.endpoint
    if "://" not in endpoint:
        endpoint = ("http://" if settings.insecure else "https://") + endpoint
    if not endpoint.rstrip("/").endswith("/v1/logs"):
        endpoint = endpoint.rstrip("/") + "/v1/logs"
    session = requests.Session()
    if tls is not None and tls.skip_verify:
        session.verify = False
    return http_logs.OTLPLogExporter(
        endpoint=endpoint,
        headers=headers,
        timeout=settings.timeout,
        compression=HttpComp.Gzip if settings.compression == "gzip" else HttpComp.NoCompression,
        certificate_file=(tls.ca_file if tls and tls.ca_file else None),
        client_key_file=(tls.key_file if tls else None),
        client_certificate_file=(tls.cert_file if tls else None),
        session=session,
    )


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


class OtlpPipeline:
    def __init__(
        self,
        settings: ResolvedOtlp,
        exporter: Any,
        *,
        capacity: int,
        batch_size: int,
        on_result: OnResult,
        on_drop: OnDrop,
    ) -> None:
        self.settings = settings
        self._exporter = exporter
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._batch_size = batch_size
        self._on_result = on_result
        self._on_drop = on_drop
        self._thread = threading.Thread(
            target=self._run, name=f"otlp-{settings.endpoint}", daemon=True
        )
        self._thread.start()

    def submit(self, record: Any) -> bool:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._on_drop(self.settings, 1)
            return False
        return True

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float) -> None:
        """Flush what is queued within ``timeout`` seconds, then stop (a hung collector
        leaves the daemon thread behind; the records it held are counted as dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(_STOP, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = self._queue.qsize()
        if left:
            self._on_drop(self.settings, left)
        try:
            self._exporter.shutdown(timeout_millis=100)
        except Exception:
            log.debug("otlp: exporter shutdown failed", exc_info=True)

    def _run(self) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                ok = self._exporter.export(batch) == LogRecordExportResult.SUCCESS
            except Exception as exc:
                log.warning("otlp: export to %s failed: %r", self.settings.endpoint, exc)
                ok = False
            self._on_result(self.settings, len(batch), ok)
            if stop:
                return


class OtlpExporters:
    """The pipelines of every distinct settings in use, built on first use."""

    def __init__(
        self,
        *,
        capacity: int,
        batch_size: int,
        on_result: OnResult,
        on_drop: OnDrop,
        exporter_factory: Callable[[ResolvedOtlp], Any] = build_log_exporter,
    ) -> None:
        self._pipelines: dict[ResolvedOtlp, OtlpPipeline] = {}
        self._capacity = capacity
        self._batch_size = batch_size
        self._on_result = on_result
        self._on_drop = on_drop
        self._factory = exporter_factory
        self._resource: Any = None

    def record(self, attributes: dict[str, Any], severity: str, timestamp_ns: int) -> Any:
        """A ReadableLogRecord the SDK exporters accept."""
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        if self._resource is None:
            self._resource = Resource.create({"service.name": "trustgate-telemetry"})
        number = {
            "INFO": SeverityNumber.INFO,
            "WARN": SeverityNumber.WARN,
            "ERROR": SeverityNumber.ERROR,
        }[severity]
        return ReadableLogRecord(
            log_record=LogRecord(
                timestamp=timestamp_ns,
                observed_timestamp=time.time_ns(),
                severity_text=severity,
                severity_number=number,
                attributes=attributes,
                event_name=str(attributes.get("event.name", "")) or None,
            ),
            resource=self._resource,
            instrumentation_scope=InstrumentationScope("trustgate.telemetry"),
        )

    def submit(self, settings: ResolvedOtlp, record: Any) -> bool:
        pipeline = self._pipelines.get(settings)
        if pipeline is None:
            try:
                exporter = self._factory(settings)
            except Exception as exc:
                log.warning("otlp: cannot build an exporter for %s: %r", settings.endpoint, exc)
                self._on_result(settings, 1, False)
                return False
            pipeline = OtlpPipeline(
                settings,
                exporter,
                capacity=self._capacity,
                batch_size=self._batch_size,
                on_result=self._on_result,
                on_drop=self._on_drop,
            )
            self._pipelines[settings] = pipeline
        return pipeline.submit(record)

    @property
    def pending(self) -> int:
        return sum(p.pending for p in self._pipelines.values())

    def close(self, timeout: float = 2.0) -> None:
        pipelines, self._pipelines = list(self._pipelines.values()), {}
        for pipeline in pipelines:
            pipeline.close(timeout)
