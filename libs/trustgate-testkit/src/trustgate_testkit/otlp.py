"""An OpenTelemetry Collector stand-in for tests: OTLP over gRPC and over HTTP (protobuf).

::

    async with serve_otlp_collector() as collector:
        exporter = OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True)
        ...
        await wait_for(lambda: len(collector.logs) == 3)
        collector.hang = True     # every Export from now on hangs until released

It implements the collector's ``LogsService/Export`` and ``TraceService/Export`` (gRPC,
any compression grpc negotiates) and ``POST /v1/logs`` / ``POST /v1/traces`` (protobuf
bodies, ``Content-Encoding: gzip`` understood). What arrives is decoded into `ReceivedLog`
and `ReceivedSpan` (the proto record plus its resource and scope, the transport and the
request headers).

*Hang mode* (``hang=True`` or ``collector.hang = True``): Export calls that arrive block,
unanswered, until hang is turned off or the collector closes; what they carried is
recorded only when they are released. It plays a collector that is slow or stuck, so a
test can check that an exporter's queue fills and drops instead of slowing anyone down.

Imported only by tests; its dependencies (grpcio, opentelemetry-proto, uvicorn) are
imported when a collector starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from trustgate_core.embedded import LOCALHOST, free_port

Headers = dict[str, str]


def any_value(value: Any) -> Any:
    """A plain Python value from an OTLP ``AnyValue`` proto."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    """A dict from a repeated ``KeyValue`` field (attributes of a record, span or resource)."""
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass(frozen=True)
class ReceivedLog:
    """One OTLP log record as the collector received it."""

    record: Any  # opentelemetry.proto.logs.v1.logs_pb2.LogRecord
    resource: Any  # opentelemetry.proto.resource.v1.resource_pb2.Resource
    scope: Any  # opentelemetry.proto.common.v1.common_pb2.InstrumentationScope
    transport: str  # "grpc" or "http"
    headers: Headers = field(default_factory=dict)

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.record.attributes)

    @property
    def resource_attributes(self) -> dict[str, Any]:
        return attributes(self.resource.attributes)

    @property
    def event_name(self) -> str:
        """The record's ``event_name`` field, else its ``event.name`` attribute."""
        name = str(self.record.event_name or "")
        return name or str(self.attributes.get("event.name", ""))


@dataclass(frozen=True)
class ReceivedSpan:
    """One OTLP span as the collector received it."""

    span: Any  # opentelemetry.proto.trace.v1.trace_pb2.Span
    resource: Any
    scope: Any
    transport: str
    headers: Headers = field(default_factory=dict)

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)

    @property
    def resource_attributes(self) -> dict[str, Any]:
        return attributes(self.resource.attributes)

    @property
    def trace_id(self) -> str:
        return bytes(self.span.trace_id).hex()

    @property
    def span_id(self) -> str:
        return bytes(self.span.span_id).hex()

    @property
    def parent_span_id(self) -> str:
        return bytes(self.span.parent_span_id).hex()


class OtlpCollector:
    """What `serve_otlp_collector` yields: endpoints, what arrived, and the hang switch."""

    def __init__(self, grpc_port: int, http_port: int, host: str = LOCALHOST) -> None:
        self.grpc_endpoint = f"{host}:{grpc_port}"
        self.http_endpoint = f"http://{host}:{http_port}"
        self.logs: list[ReceivedLog] = []
        self.spans: list[ReceivedSpan] = []
        self.requests = 0  # Export calls answered (both transports, both signals)
        self.hung = 0  # Export calls currently held by hang mode
        self._released = asyncio.Event()
        self._released.set()

    @property
    def http_logs_url(self) -> str:
        return f"{self.http_endpoint}/v1/logs"

    @property
    def http_traces_url(self) -> str:
        return f"{self.http_endpoint}/v1/traces"

    @property
    def hang(self) -> bool:
        return not self._released.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._released.clear()
        else:
            self._released.set()

    def set_hang(self, value: bool) -> None:
        self.hang = value

    def clear(self) -> None:
        self.logs.clear()
        self.spans.clear()

    # --- recording (shared by both transports) ---------------------------------------------

    async def _hold(self) -> None:
        if self._released.is_set():
            return
        self.hung += 1
        try:
            await self._released.wait()
        finally:
            self.hung -= 1

    async def _export_logs(self, body: bytes, transport: str, headers: Headers) -> bytes:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
        await self._hold()
        self.logs += [
            ReceivedLog(
                record=item, resource=res, scope=scope, transport=transport, headers=headers
            )
            for res, scope, item in _unpack(request.resource_logs, "scope_logs", "log_records")
        ]
        self.requests += 1
        return bytes(logs_service_pb2.ExportLogsServiceResponse().SerializeToString())

    async def _export_spans(self, body: bytes, transport: str, headers: Headers) -> bytes:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        await self._hold()
        self.spans += [
            ReceivedSpan(span=item, resource=res, scope=scope, transport=transport, headers=headers)
            for res, scope, item in _unpack(request.resource_spans, "scope_spans", "spans")
        ]
        self.requests += 1
        return bytes(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

    # --- gRPC -------------------------------------------------------------------------------

    def _grpc_handlers(self) -> Any:
        import grpc

        def unary(
            export: Callable[[bytes, str, Headers], Awaitable[bytes]],
        ) -> Any:
            async def handle(body: bytes, context: Any) -> bytes:
                headers = {str(k): str(v) for k, v in (context.invocation_metadata() or ())}
                return await export(body, "grpc", headers)

            # Raw bytes in and out: the handlers decode the proto themselves.
            return grpc.unary_unary_rpc_method_handler(handle)

        return [
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.logs.v1.LogsService",
                {"Export": unary(self._export_logs)},
            ),
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                {"Export": unary(self._export_spans)},
            ),
        ]

    # --- HTTP (a bare ASGI app under uvicorn) -----------------------------------------------

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        routes = {"/v1/logs": self._export_logs, "/v1/traces": self._export_spans}
        export = routes.get(path)
        if scope["method"] != "POST" or export is None:
            await _respond(send, 404, b"not found", "text/plain")
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        encoding = headers.get("content-encoding", "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            answer = await export(body, "http", headers)
        except Exception as exc:
            await _respond(send, 400, str(exc).encode(), "text/plain")
            return
        await _respond(send, 200, answer, "application/x-protobuf")


def _unpack(resources: Any, scopes: str, items: str) -> Iterator[tuple[Any, Any, Any]]:
    """(resource, scope, item) for every log record or span of an export request."""
    for resource in resources:
        for scope in getattr(resource, scopes):
            for item in getattr(scope, items):
                yield resource.resource, scope.scope, item


async def _respond(send: Any, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serve_otlp_collector(
    hang: bool = False, *, host: str = LOCALHOST
) -> AsyncIterator[OtlpCollector]:
    """Run a collector on free ports (gRPC and HTTP) for the duration of the block."""
    import grpc
    import uvicorn

    from trustgate_core.serving import serve_until_cancelled

    grpc_port = free_port(host)
    collector = OtlpCollector(grpc_port, 0, host)
    grpc_server = grpc.aio.server(handlers=collector._grpc_handlers())
    grpc_server.add_insecure_port(f"{host}:{grpc_port}")
    await grpc_server.start()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)  # connections queue until uvicorn accepts them: ready on return
    http_port = sock.getsockname()[1]
    collector.http_endpoint = f"http://{host}:{http_port}"
    config = uvicorn.Config(
        collector._asgi,
        log_level="warning",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    http_task = asyncio.create_task(serve_until_cancelled(config, sockets=[sock]))
    collector.hang = hang
    try:
        yield collector
    finally:
        collector.hang = False  # let held calls finish so both servers can stop
        http_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await http_task
        await grpc_server.stop(grace=1)
        sock.close()
