"""trustgate_core.observability: tracing configured from OTEL_* env (off without an
endpoint), W3C traceparent, consumer spans parented across services, spans recorded after
the fact; Prometheus aggregates that render, parse and stay bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from trustgate_core.observability.metrics import (
    Aggregates,
    CappedCounter,
    CappedHistogram,
    render,
)
from trustgate_core.observability.tracing import (
    ChildSpan,
    Tracing,
    consumer_span,
    format_traceparent,
    parse_traceparent,
    setup_tracing,
    span_traceparent,
    trace_config_from_env,
)
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.otlp import serve_otlp_collector

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


# -- traceparent ----------------------------------------------------------------------------
def test_a_formatted_traceparent_parses_back() -> None:
    header = format_traceparent(TRACE, SPAN)
    assert header == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(header) == (TRACE, SPAN, True)
    assert parse_traceparent(format_traceparent(TRACE, SPAN, sampled=False)) == (
        TRACE,
        SPAN,
        False,
    )
    assert parse_traceparent(header.encode()) == (TRACE, SPAN, True)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_invalid_traceparents_are_ignored(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_a_future_version_traceparent_with_more_fields_is_understood() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-what-comes-next") == (TRACE, SPAN, True)


# -- configuration --------------------------------------------------------------------------
def test_tracing_is_off_without_an_endpoint() -> None:
    assert trace_config_from_env("svc", {}) is None
    assert setup_tracing("svc", {"OTEL_EXPORTER_OTLP_HEADERS": "a=b"}) is None


def test_a_base_endpoint_gets_the_traces_path_and_a_signal_endpoint_is_used_as_is() -> None:
    base = trace_config_from_env("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318/"})
    assert base is not None
    assert (base.endpoint, base.protocol) == ("http://col:4318/v1/traces", "http/protobuf")
    signal = trace_config_from_env(
        "svc",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://col.example/custom",
        },
    )
    assert signal is not None and signal.endpoint == "https://col.example/custom"


def test_port_4317_means_grpc_unless_a_protocol_is_given() -> None:
    grpc = trace_config_from_env("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4317"})
    assert grpc is not None and (grpc.protocol, grpc.endpoint) == ("grpc", "http://col:4317")
    http = trace_config_from_env(
        "svc",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4317",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        },
    )
    assert http is not None and http.protocol == "http/protobuf"


def test_headers_insecure_timeout_compression_and_service_name_come_from_env() -> None:
    config = trace_config_from_env(
        "svc",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "col:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_HEADERS": "Api-Key=s%3Dcret, x-tenant = t1,broken",
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_SERVICE_NAME": "renamed",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
        },
    )
    assert config is not None
    assert config.headers == {"api-key": "s=cret", "x-tenant": "t1"}
    assert config.insecure is True
    assert config.timeout == 2.5
    assert config.compression == "gzip"
    assert config.service_name == "renamed"
    assert config.schedule_delay_ms == 250


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
    ],
)
def test_invalid_settings_are_refused_naming_the_variable(name: str, value: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", name: value}
    if name == "OTEL_TRACES_SAMPLER_ARG":
        env["OTEL_TRACES_SAMPLER"] = "traceidratio"
    with pytest.raises(ValueError, match=name):
        trace_config_from_env("svc", env)


# -- spans ----------------------------------------------------------------------------------
@pytest.fixture
def memory() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(
        "svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://unused:4318"}, exporter=exporter
    )
    assert tracing is not None
    try:
        yield tracing, exporter
    finally:
        tracing.shutdown()


def test_a_consumer_span_is_the_child_of_the_span_its_traceparent_names(
    memory: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = memory
    with consumer_span(tracing, "consume", f"00-{TRACE}-{SPAN}-01", {"k": "v"}) as span:
        assert span is not None
        passed_on = span_traceparent(span)
        with tracing.tracer.start_as_current_span("kafka send"):
            pass
    tracing.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    consume, send = spans["consume"], spans["kafka send"]
    assert consume.kind is SpanKind.CONSUMER
    assert f"{consume.context.trace_id:032x}" == TRACE
    assert consume.parent is not None and f"{consume.parent.span_id:016x}" == SPAN
    assert consume.attributes is not None and consume.attributes["k"] == "v"
    assert send.parent is not None and send.parent.span_id == consume.context.span_id
    assert passed_on == format_traceparent(TRACE, f"{consume.context.span_id:016x}")


def test_a_consumer_span_without_a_valid_traceparent_starts_a_trace(
    memory: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = memory
    with consumer_span(tracing, "consume", "not-a-traceparent"):
        pass
    tracing.force_flush()
    [span] = exporter.get_finished_spans()
    assert span.parent is None


def test_an_exception_in_a_consumer_span_marks_it_failed_and_propagates(
    memory: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = memory
    with pytest.raises(RuntimeError), consumer_span(tracing, "consume", None):
        raise RuntimeError("kafka down")
    tracing.force_flush()
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_consumer_span_is_a_no_op_when_tracing_is_off() -> None:
    with consumer_span(None, "consume", f"00-{TRACE}-{SPAN}-01", {}) as span:
        assert span is None
    assert span_traceparent(None) is None


def test_a_recorded_span_keeps_its_ids_and_times_and_parents_its_children(
    memory: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = memory
    now = time.time_ns()
    sampled = tracing.record_span(
        "POST /v1/chat/completions",
        trace_id=TRACE,
        span_id=SPAN,
        start_ns=now - 5_000_000,
        end_ns=now,
        attributes={"http.response.status_code": 502},
        error="upstream_timeout",
        children=[ChildSpan("chat m", now - 4_000_000, now - 1_000_000, error="timeout")],
    )
    assert sampled
    with tracing.tracer.start_as_current_span("unrelated"):
        pass  # ids are preset for one span only
    tracing.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    server, child = spans["POST /v1/chat/completions"], spans["chat m"]
    assert (f"{server.context.trace_id:032x}", f"{server.context.span_id:016x}") == (TRACE, SPAN)
    assert (server.start_time, server.end_time) == (now - 5_000_000, now)
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert server.status.status_code is StatusCode.ERROR
    assert child.parent is not None and child.parent.span_id == server.context.span_id
    assert child.kind is SpanKind.CLIENT and child.context.trace_id == server.context.trace_id
    assert child.status.status_code is StatusCode.ERROR
    assert f"{spans['unrelated'].context.trace_id:032x}" != TRACE


def test_a_ratio_sampler_from_env_is_told_before_recording_and_record_span_agrees() -> None:
    exporter = InMemorySpanExporter()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://unused:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    }
    tracing = setup_tracing("svc", env, exporter=exporter)
    assert tracing is not None
    try:
        decisions: dict[str, bool] = {}
        now = time.time_ns()
        for i in range(64):
            trace_id = f"{(i + 1) * 0x9E3779B97F4A7C15 % (1 << 128):032x}"
            told = tracing.is_sampled(trace_id, "POST /v1/chat/completions")
            recorded = tracing.record_span(
                "POST /v1/chat/completions",
                trace_id=trace_id,
                span_id=SPAN,
                start_ns=now - 1000,
                end_ns=now,
            )
            assert told == recorded
            decisions[trace_id] = told
        tracing.force_flush()
        exported = {f"{s.context.trace_id:032x}" for s in exporter.get_finished_spans()}
    finally:
        tracing.shutdown()
    assert exported == {t for t, sampled in decisions.items() if sampled}
    assert 0 < len(exported) < len(decisions)  # some sampled, some dropped
    # a sampled parent wins over the ratio (parentbased), an unsampled one too
    assert tracing.is_sampled(TRACE, "x", "consumer", parent=f"00-{TRACE}-{SPAN}-01")
    assert not tracing.is_sampled(TRACE, "x", "consumer", parent=f"00-{TRACE}-{SPAN}-00")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_spans_reach_an_otlp_collector_over_each_protocol_as_one_trace(
    protocol: str,
) -> None:
    async with serve_otlp_collector() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        tracing = setup_tracing(
            "trustgate-test",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-team=gateway",
                "OTEL_BSP_SCHEDULE_DELAY": "50",
            },
        )
        assert tracing is not None
        try:
            now = time.time_ns()
            tracing.record_span(
                "proxy", trace_id=TRACE, span_id=SPAN, start_ns=now - 1000, end_ns=now
            )
            with consumer_span(tracing, "telemetry", format_traceparent(TRACE, SPAN)):
                pass
            await wait_for(lambda: len(collector.spans) == 2, timeout=15)
        finally:
            tracing.shutdown()
    by_name = {s.span.name: s for s in collector.spans}
    assert {s.trace_id for s in collector.spans} == {TRACE}
    assert by_name["proxy"].span_id == SPAN
    assert by_name["telemetry"].parent_span_id == SPAN
    assert by_name["telemetry"].resource_attributes["service.name"] == "trustgate-test"
    assert {s.transport for s in collector.spans} == {"grpc" if protocol == "grpc" else "http"}
    assert by_name["proxy"].headers.get("x-team") == "gateway"


# -- metrics --------------------------------------------------------------------------------
def test_aggregates_render_in_the_prometheus_text_format_and_parse() -> None:
    registry = CollectorRegistry(auto_describe=False)
    drained: list[int] = []
    aggregates = Aggregates(before_collect=lambda: drained.append(1))
    counter = aggregates.add(CappedCounter("t_requests_total", "Requests.", ("route", "status")))
    histogram = aggregates.add(CappedHistogram("t_seconds", "Latency.", ("route",), (0.1, 1.0)))
    aggregates.counter("t_dropped_total", "Dropped.", lambda: 4)
    aggregates.gauge("t_pending", "Pending.", lambda: 2)
    registry.register(aggregates)
    counter.inc(("/a", "200"))
    counter.inc(("/a", "200"), 2)
    for v in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(("/a",), v)

    body, content_type = render(registry)
    assert content_type.startswith("text/plain")
    assert drained  # the scrape ran the hook first
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }
    assert samples[("t_requests_total", (("route", "/a"), ("status", "200")))] == 3
    buckets = {
        le: samples[("t_seconds_bucket", (("le", le), ("route", "/a")))]
        for le in ("0.1", "1.0", "+Inf")
    }
    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}  # cumulative, bounds inclusive
    assert samples[("t_seconds_count", (("route", "/a"),))] == 4
    assert samples[("t_seconds_sum", (("route", "/a"),))] == pytest.approx(3.65)
    assert samples[("t_dropped_total", ())] == 4
    assert samples[("t_pending", ())] == 2


def test_new_label_sets_beyond_the_cap_fold_into_other() -> None:
    counter = CappedCounter("c_total", "C.", ("model",), max_series=2)
    histogram = CappedHistogram("h_seconds", "H.", ("model",), (1.0,), max_series=2)
    for model in ("a", "b", "c", "d", "a"):
        counter.inc((model,))
        histogram.observe((model,), 0.5)
    assert counter.values == {("a",): 2, ("b",): 1, ("other",): 2}
    assert histogram.count(("other",)) == 2 and histogram.count() == 5
    with pytest.raises(ValueError):
        counter.inc(("a", "extra"))
