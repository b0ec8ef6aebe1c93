"""The OTLP collector fixture receives what the OpenTelemetry SDK's own exporters send."""

from __future__ import annotations

import asyncio

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from trustgate_testkit import wait_for
from trustgate_testkit.otlp import serve_otlp_collector


def _emit_log(exporter: object, body: str) -> LoggerProvider:
    provider = LoggerProvider(resource=Resource.create({"service.name": "collector-test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # type: ignore[arg-type]
    provider.get_logger("test").emit(
        LogRecord(
            body=body,
            severity_number=SeverityNumber.INFO,
            attributes={"event.name": "gateway.request", "http.response.status_code": 200},
        )
    )
    return provider


def _emit_span(exporter: object, name: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "collector-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    with provider.get_tracer("test").start_as_current_span(name, attributes={"k": "v"}):
        pass
    return provider


async def test_collector_receives_logs_and_spans_over_grpc_and_gzipped_http() -> None:
    async with serve_otlp_collector() as collector:
        grpc_logs = GrpcLogs(endpoint=collector.grpc_endpoint, insecure=True, timeout=5)
        http_logs = HttpLogs(
            endpoint=collector.http_logs_url,
            timeout=5,
            compression=Compression.Gzip,
            headers={"authorization": "Bearer t"},
        )
        providers: list[LoggerProvider | TracerProvider] = []
        providers.append(await asyncio.to_thread(_emit_log, grpc_logs, "over grpc"))
        providers.append(await asyncio.to_thread(_emit_log, http_logs, "over http"))
        providers.append(
            await asyncio.to_thread(
                _emit_span, GrpcSpans(endpoint=collector.grpc_endpoint, insecure=True), "g"
            )
        )
        providers.append(
            await asyncio.to_thread(_emit_span, HttpSpans(endpoint=collector.http_traces_url), "h")
        )
        await wait_for(lambda: len(collector.logs) == 2 and len(collector.spans) == 2)
        for provider in providers:
            await asyncio.to_thread(provider.shutdown)

    by_transport = {log.transport: log for log in collector.logs}
    assert by_transport["grpc"].record.body.string_value == "over grpc"
    assert by_transport["http"].record.body.string_value == "over http"
    assert by_transport["http"].headers["authorization"] == "Bearer t"
    assert by_transport["grpc"].attributes["http.response.status_code"] == 200
    assert by_transport["grpc"].event_name == "gateway.request"
    assert by_transport["grpc"].resource_attributes["service.name"] == "collector-test"
    assert {span.span.name for span in collector.spans} == {"g", "h"}
    assert all(len(span.trace_id) == 32 for span in collector.spans)


async def test_a_hung_collector_holds_exports_until_released() -> None:
    async with serve_otlp_collector(hang=True) as collector:
        exporter = GrpcLogs(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
        emitting = asyncio.create_task(asyncio.to_thread(_emit_log, exporter, "held"))
        await wait_for(lambda: collector.hung == 1, timeout=10)
        assert collector.logs == []
        collector.hang = False
        provider = await emitting
        await wait_for(lambda: len(collector.logs) == 1, timeout=10)
        await asyncio.to_thread(provider.shutdown)
