"""OpenTelemetry tracing from the standard ``OTEL_*`` environment, off (and free) by default.

::

    tracing = setup_tracing("trustgate-telemetry")     # None: no OTLP endpoint configured
    ...
    with consumer_span(tracing, "trustgate.requests process", traceparent, {"k": "v"}):
        ...                                            # a child of the proxy's span
    ...
    tracing.shutdown()                                 # flush, stop the export thread

Configuration (the OpenTelemetry exporter specification's variables; the signal-specific
``OTEL_EXPORTER_OTLP_TRACES_*`` win over ``OTEL_EXPORTER_OTLP_*``):

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (a base URL; ``/v1/traces`` is appended for HTTP). Neither set: tracing is off.
- ``_PROTOCOL``: ``http/protobuf`` (the specification's default) or ``grpc``; unset with an
  endpoint on port 4317, gRPC (the collector's gRPC port).
- ``_HEADERS`` (``k=v,k2=v2``, values URL-encoded), ``_INSECURE`` (gRPC, ``true``/``false``),
  ``_TIMEOUT`` (integer milliseconds), ``_COMPRESSION`` (``gzip`` or ``none``).
- ``OTEL_SERVICE_NAME`` overrides the service name given to `setup_tracing`.
- ``OTEL_TRACES_SAMPLER`` (``parentbased_always_on`` by default, ``always_on``,
  ``always_off``, ``traceidratio``, ``parentbased_traceidratio``, ``parentbased_always_off``)
  and ``OTEL_TRACES_SAMPLER_ARG`` (the ratio, 0..1), read from the same ``env``.
  `Tracing.is_sampled` tells a span's sampling decision before it is recorded (a trace-id
  ratio is decided by the trace id alone), e.g. to set a ``traceparent``'s flag.
- ``OTEL_BSP_SCHEDULE_DELAY`` (ms, default 5000) and ``OTEL_BSP_MAX_QUEUE_SIZE`` (default
  2048): how often the batch processor exports, and how many spans it holds.

Spans are exported by a ``BatchSpanProcessor`` (its own thread, bounded queue; a slow
collector drops spans, it never blocks a caller). Each `Tracing` has its own
``TracerProvider``, nothing is installed globally, so several services in one process
(``trustgate run``) keep their own service names.

W3C trace context: `format_traceparent` / `parse_traceparent` (version ``00``).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import unquote, urlparse

from trustgate_core.telemetry.settings import Compression, OtlpProtocol

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]
Attributes = Mapping[str, str | bool | int | float | Sequence[str]]

GRPC_PORT = 4317
_SCOPE = "trustgate"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


# -- W3C traceparent ---------------------------------------------------------------------
class TraceParent(NamedTuple):
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex (the parent span)
    sampled: bool


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    """``00-{trace_id}-{span_id}-{01|00}``."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The trace context of a ``traceparent`` header; None when absent or invalid (all-zero
    ids, version ``ff``, a version ``00`` header with extra fields)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))


# -- configuration -----------------------------------------------------------------------
@dataclass(frozen=True)
class TraceExportConfig:
    """Where and how spans go, as read from the environment."""

    endpoint: str  # the exporter's endpoint: a full URL for HTTP, host:port or URL for gRPC
    protocol: OtlpProtocol = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict)
    insecure: bool | None = None  # gRPC only; None: from the endpoint's scheme
    timeout: float | None = None  # seconds
    compression: Compression | None = None
    service_name: str = "trustgate"
    schedule_delay_ms: int | None = None  # the batch processor's export interval
    max_queue_size: int | None = None  # spans held before new ones are dropped
    sampler: str = "parentbased_always_on"  # OTEL_TRACES_SAMPLER
    sampler_ratio: float = 1.0  # OTEL_TRACES_SAMPLER_ARG, for the ratio samplers


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _headers(raw: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = _first(env, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: an integer expected, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0")
    return value


def trace_config_from_env(
    service_name: str, env: Mapping[str, str] | None = None
) -> TraceExportConfig | None:
    """The trace export settings in ``env`` (default ``os.environ``); None when no OTLP
    endpoint is set. Raises ``ValueError`` for an unknown protocol."""
    env = os.environ if env is None else env
    t, g = "OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_"
    signal_endpoint = _first(env, t + "ENDPOINT")
    base_endpoint = _first(env, g + "ENDPOINT")
    if signal_endpoint is None and base_endpoint is None:
        return None
    raw = signal_endpoint or base_endpoint or ""
    protocol_raw = _first(env, t + "PROTOCOL", g + "PROTOCOL")
    if protocol_raw is None:
        port = urlparse(raw if "://" in raw else f"//{raw}").port
        protocol: OtlpProtocol = "grpc" if port == GRPC_PORT else "http/protobuf"
    elif protocol_raw in ("grpc", "http/protobuf"):
        protocol = protocol_raw  # type: ignore[assignment]
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol_raw!r}")
    if protocol == "http/protobuf":
        if "://" not in raw:
            raw = f"http://{raw}"
        if signal_endpoint is None:  # a base URL: the signal's path is appended
            raw = raw.rstrip("/") + "/v1/traces"
    insecure_raw = _first(env, t + "INSECURE", g + "INSECURE")
    timeout_raw = _first(env, t + "TIMEOUT", g + "TIMEOUT")
    timeout: float | None = None
    if timeout_raw is not None:
        try:
            timeout = int(timeout_raw) / 1000.0
        except ValueError:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_TIMEOUT: integer milliseconds expected, got {timeout_raw!r}"
            ) from None
        if timeout <= 0:
            raise ValueError("OTEL_EXPORTER_OTLP_TIMEOUT must be > 0")
    compression_raw = (_first(env, t + "COMPRESSION", g + "COMPRESSION") or "").lower()
    compression: Compression | None = (
        "gzip" if compression_raw == "gzip" else "none" if compression_raw == "none" else None
    )
    sampler = (_first(env, "OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if sampler not in _SAMPLERS:
        raise ValueError(f"OTEL_TRACES_SAMPLER: unknown sampler {sampler!r}")
    ratio_raw = _first(env, "OTEL_TRACES_SAMPLER_ARG")
    ratio = 1.0
    if ratio_raw is not None and "traceidratio" in sampler:
        try:
            ratio = float(ratio_raw)
        except ValueError:
            raise ValueError(
                f"OTEL_TRACES_SAMPLER_ARG: a ratio between 0 and 1 expected, got {ratio_raw!r}"
            ) from None
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("OTEL_TRACES_SAMPLER_ARG must be between 0 and 1")
    return TraceExportConfig(
        sampler=sampler,
        sampler_ratio=ratio,
        schedule_delay_ms=_positive_int(env, "OTEL_BSP_SCHEDULE_DELAY"),
        max_queue_size=_positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE"),
        endpoint=raw,
        protocol=protocol,
        headers=_headers(_first(env, t + "HEADERS", g + "HEADERS")),
        insecure=None if insecure_raw is None else insecure_raw.lower() == "true",
        timeout=timeout,
        compression=compression,
        service_name=_first(env, "OTEL_SERVICE_NAME") or service_name,
    )


_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _sampler(config: TraceExportConfig) -> Any:
    from opentelemetry.sdk.trace import sampling

    root = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(config.sampler_ratio),
    }[config.sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if config.sampler.startswith("parentbased_") else root


# -- the tracer --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildSpan:
    """A finished child of a span given to `Tracing.record_span` (ids are minted)."""

    name: str
    start_ns: int
    end_ns: int
    kind: SpanKindName = "client"
    attributes: Attributes | None = None
    error: str | None = None


class Tracing:
    """One service's tracer provider, exporter and batch processor."""

    def __init__(self, config: TraceExportConfig, *, exporter: Any | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.config = config
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=_sampler(config),
        )
        self.exporter = exporter if exporter is not None else _exporter(config)
        self._processor = BatchSpanProcessor(
            self.exporter,
            schedule_delay_millis=config.schedule_delay_ms,
            max_queue_size=config.max_queue_size,
        )
        self.provider.add_span_processor(self._processor)
        self.tracer: Tracer = self.provider.get_tracer(_SCOPE)
        self._scope = InstrumentationScope(_SCOPE)
        self._unset = trace.Status(trace.StatusCode.UNSET)
        self._sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self._trace = trace
        self._kinds = {
            "internal": trace.SpanKind.INTERNAL,
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
            "producer": trace.SpanKind.PRODUCER,
            "consumer": trace.SpanKind.CONSUMER,
        }
        self._closed = False

    # -- spans --------------------------------------------------------------------------
    def _context(self, traceparent: str | bytes | None) -> Any:
        from opentelemetry.context import Context

        parent = parse_traceparent(traceparent)
        if parent is None:
            return Context()  # a root span, whatever is current
        t = self._trace
        remote = t.NonRecordingSpan(
            t.SpanContext(
                trace_id=int(parent.trace_id, 16),
                span_id=int(parent.span_id, 16),
                is_remote=True,
                trace_flags=t.TraceFlags(t.TraceFlags.SAMPLED if parent.sampled else 0),
            )
        )
        return t.set_span_in_context(remote, Context())

    @contextlib.contextmanager
    def consumer_span(
        self, name: str, traceparent: str | bytes | None, attributes: Attributes | None = None
    ) -> Iterator[Span]:
        """A ``CONSUMER`` span around handling one message, the child of the span named by
        ``traceparent`` (a root span when it is missing or invalid); current inside the
        block, so spans started there are its children. An exception escaping the block
        marks the span as an error (and propagates)."""
        with self.tracer.start_as_current_span(
            name,
            context=self._context(traceparent),
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            yield span

    def is_sampled(
        self,
        trace_id: str,
        name: str,
        kind: SpanKindName = "server",
        parent: str | bytes | None = None,
    ) -> bool:
        """Whether a span of ``trace_id`` (the child of ``parent``, a ``traceparent``) would
        be sampled: the decision `record_span` takes for it. Deterministic for the standard
        samplers (a ratio looks only at the trace id), so it can be asked before the span is
        recorded, e.g. to set the sampled flag of a ``traceparent`` sent on."""
        from opentelemetry.sdk.trace.sampling import Decision

        remote = parse_traceparent(parent)
        tid = int(remote.trace_id if remote is not None else trace_id, 16)
        sampling = self.provider.sampler.should_sample(
            self._context(parent), tid, name, self._kinds[kind]
        )
        return sampling.decision is Decision.RECORD_AND_SAMPLE

    def record_span(
        self,
        name: str,
        *,
        trace_id: str,
        span_id: str,
        start_ns: int,
        end_ns: int,
        kind: SpanKindName = "server",
        attributes: Attributes | None = None,
        error: str | None = None,
        parent: str | bytes | None = None,
        children: Sequence[ChildSpan] = (),
    ) -> bool:
        """Record a span that already happened, with the given ids and times (epoch ns),
        and its children. For work whose spans are written after the fact, off its hot
        path. ``error``: the status description of a failed span. Returns whether the span
        was sampled."""
        # Spans built as finished ``ReadableSpan``s and handed to the batch processor: a
        # tenth of what starting and ending them through the tracer costs.
        from opentelemetry.sdk.trace import ReadableSpan

        if not self.is_sampled(trace_id, name, kind, parent):
            return False
        t = self._trace
        remote = parse_traceparent(parent)
        if remote is not None:
            trace_id = remote.trace_id  # a child joins its parent's trace
        tid = int(trace_id, 16)
        span_kind = self._kinds[kind]
        parent_ctx = None
        if remote is not None:
            parent_ctx = t.SpanContext(
                tid, int(remote.span_id, 16), is_remote=True, trace_flags=self._sampled
            )
        ctx = t.SpanContext(tid, int(span_id, 16), is_remote=False, trace_flags=self._sampled)
        resource, scope = self.provider.resource, self._scope
        on_end = self._processor.on_end
        on_end(
            ReadableSpan(
                name,
                ctx,
                parent_ctx,
                resource,
                dict(attributes) if attributes else {},
                kind=span_kind,
                status=self._unset if error is None else t.Status(t.StatusCode.ERROR, error),
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=scope,
            )
        )
        for child in children:
            child_ctx = t.SpanContext(
                tid, random.getrandbits(64) or 1, is_remote=False, trace_flags=self._sampled
            )
            on_end(
                ReadableSpan(
                    child.name,
                    child_ctx,
                    ctx,
                    resource,
                    dict(child.attributes) if child.attributes else {},
                    kind=self._kinds[child.kind],
                    status=(
                        self._unset
                        if child.error is None
                        else t.Status(t.StatusCode.ERROR, child.error)
                    ),
                    start_time=child.start_ns,
                    end_time=child.end_ns,
                    instrumentation_scope=scope,
                )
            )
        return True

    # -- lifecycle ----------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        """Export what is queued now (blocking: call it from a thread in async code)."""
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the export thread (blocking; idempotent)."""
        if not self._closed:
            self._closed = True
            self.provider.shutdown()


def _exporter(config: TraceExportConfig) -> Any:
    if config.protocol == "grpc":
        from grpc import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=config.endpoint,
            insecure=config.insecure,
            headers=config.headers or None,
            timeout=config.timeout,
            compression=_compression(config, GrpcCompression),
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=config.endpoint,
        headers=config.headers or None,
        timeout=config.timeout,
        compression=_compression(config, HttpCompression),
    )


def _compression(config: TraceExportConfig, kinds: Any) -> Any:
    """The exporter's own compression value (gRPC's and HTTP's enums name them alike)."""
    if config.compression is None:
        return None
    return kinds.Gzip if config.compression == "gzip" else kinds.NoCompression


def setup_tracing(
    service_name: str, env: Mapping[str, str] | None = None, *, exporter: Any | None = None
) -> Tracing | None:
    """Tracing as configured by ``env`` (default ``os.environ``), or None when no OTLP
    endpoint is set (then OpenTelemetry is not even imported). ``exporter`` replaces the
    OTLP exporter (tests)."""
    config = trace_config_from_env(service_name, env)
    if config is None:
        return None
    return Tracing(config, exporter=exporter)


def consumer_span(
    tracing: Tracing | None,
    name: str,
    traceparent: str | bytes | None,
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """`Tracing.consumer_span`, or a no-op context (yielding None) when tracing is off."""
    if tracing is None:
        return contextlib.nullcontext()
    return tracing.consumer_span(name, traceparent, attributes)


def span_traceparent(span: Span | None) -> str | None:
    """The ``traceparent`` that makes a receiver's span a child of ``span`` (None for no
    span or an invalid one), e.g. to pass the trace on in a Kafka header."""
    if span is None:
        return None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return format_traceparent(
        f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", bool(ctx.trace_flags.sampled)
    )
