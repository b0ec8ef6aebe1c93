"""``/metrics`` in the Prometheus text format, counting the traffic sent; spans of proxied
calls at an OTLP collector when tracing is on (one trace with the request event's
``traceparent``), none and no OpenTelemetry when it is off."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any
from uuid import uuid4

import httpx
import pytest
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from trustgate_core.events import requests_subject
from trustgate_core.observability.tracing import parse_traceparent
from trustgate_core.pricing import PriceBook, cost_of
from trustgate_proxy.domain.call import Call
from trustgate_proxy.observability.metrics import ProxyMetrics
from trustgate_proxy.observability.recorder import CallRecorder
from trustgate_proxy.services.ports import MemorySink
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.otlp import serve_otlp_collector
from trustgate_testkit.proxy.server import RunningProxy, run_proxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

# the mock's usage block (trustgate_testkit.proxy.mock_upstream.USAGE)
INPUT, OUTPUT, CACHED = 11, 7, 3


def body(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}


async def post(
    client: httpx.AsyncClient,
    proxy: RunningProxy,
    tenant: Tenant,
    doc: dict[str, Any],
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
        json=doc,
        headers={
            "X-AG-Gateway-Slug": tenant.slug,
            "X-AG-API-Key": tenant.keys["app"] if key is None else key,
        },
    )


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(proxy: RunningProxy) -> tuple[Samples, str]:
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(f"{proxy.operations_url}/metrics")
    assert resp.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, resp.headers["content-type"]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_the_requests_statuses_tokens_and_latencies_of_the_traffic_sent(
    proxy: RunningProxy, tenant: Tenant, upstream: Any
) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    ok, streamed, denied, limited = 5, 2, 3, 4
    async with httpx.AsyncClient(timeout=10) as client:
        statuses = [
            *[
                (await post(client, proxy, tenant, body("gpt-4o-mini"))).status_code
                for _ in range(ok)
            ],
            *[
                (await post(client, proxy, tenant, body("gpt-4o-mini", True))).status_code
                for _ in range(streamed)
            ],
            *[
                (await post(client, proxy, tenant, body("gpt-4o-mini"), "ag_wrong")).status_code
                for _ in range(denied)
            ],
            *[
                (await post(client, proxy, tenant, body("gpt-4o-ratelimited"))).status_code
                for _ in range(limited)
            ],
        ]
    assert statuses == [200] * (ok + streamed) + [401] * denied + [429] * limited
    total = ok + streamed + denied + limited
    gw, consumer = str(tenant.gateway.id), str(tenant.consumers["app"].id)
    requests = "trustgate_proxy_requests_total"

    async def counted() -> Samples | None:
        samples, _ = await scrape(proxy)
        done = value(samples, "trustgate_proxy_request_events_published_total") >= total
        by_gw = sum(
            v
            for (n, labels), v in samples.items()
            if n == requests and ("gateway_id", gw) in labels
        )
        return samples if done and by_gw == total else None

    samples = await wait_for(counted, timeout=15, message="metrics never counted the traffic")
    assert samples is not None
    _, content_type = await scrape(proxy)
    assert content_type.startswith("text/plain")

    mini = {"gateway_id": gw, "consumer_id": consumer, "model": "gpt-4o-mini"}
    assert value(samples, requests, **mini, status="200") == ok + streamed
    assert (
        value(samples, requests, gateway_id=gw, consumer_id=consumer, model="", status="401")
        == denied
    )
    assert (
        value(
            samples,
            requests,
            gateway_id=gw,
            consumer_id=consumer,
            model="gpt-4o-ratelimited",
            status="429",
        )
        == limited
    )

    tokens = "trustgate_proxy_tokens_total"
    served = ok + streamed
    assert value(samples, tokens, **mini, type="input") == INPUT * served
    assert value(samples, tokens, **mini, type="output") == OUTPUT * served
    assert value(samples, tokens, **mini, type="cached_input") == CACHED * served

    # what the calls cost, priced from the models catalog; an unpriced model adds nothing
    price = PriceBook.default().price("gpt-4o-mini", "openai_compatible")
    assert price is not None
    usage = {"prompt_tokens": INPUT, "completion_tokens": OUTPUT, "cached_input_tokens": CACHED}
    each = cost_of(usage, price).total_usd
    cost = "trustgate_proxy_cost_usd_total"
    assert value(samples, cost, **mini) == pytest.approx(each * served)
    assert not any(n == cost and ("model", "gpt-4o-ratelimited") in k for n, k in samples)

    def count(histogram: str, model: str) -> float:
        return value(samples, f"{histogram}_count", gateway_id=gw, model=model)

    whole = "trustgate_proxy_request_duration_seconds"
    assert count(whole, "gpt-4o-mini") == served
    assert count(whole, "gpt-4o-ratelimited") == limited
    assert count(whole, "") == denied
    for histogram in (
        "trustgate_proxy_upstream_duration_seconds",
        "trustgate_proxy_overhead_duration_seconds",
    ):  # only calls that reached the upstream
        assert count(histogram, "gpt-4o-mini") == served
        assert count(histogram, "gpt-4o-ratelimited") == limited
        assert count(histogram, "") == 0
        inf = value(samples, f"{histogram}_bucket", gateway_id=gw, model="gpt-4o-mini", le="+Inf")
        assert inf == served
    assert value(samples, f"{whole}_sum", gateway_id=gw, model="gpt-4o-mini") > 0

    assert value(samples, "trustgate_proxy_request_events_dropped_total") == 0
    assert value(samples, "trustgate_proxy_request_events_failed_total") == 0
    assert value(samples, "trustgate_proxy_config_ready") == 1
    assert value(samples, "trustgate_proxy_config_events_applied_total") > 0


async def test_metrics_count_requests_with_telemetry_disabled(
    nats_url: str, tenant: Tenant, upstream: Any
) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    async with run_proxy(nats_url, TELEMETRY_ENABLED="false", tracing_env={}) as proxy:
        await wait_for(lambda: proxy.runtime.ready, timeout=10)
        await until_known(proxy, tenant)
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(3):
                assert (await post(client, proxy, tenant, body("m"))).status_code == 200
        gw = str(tenant.gateway.id)

        async def counted() -> Samples | None:
            samples, _ = await scrape(proxy)
            n = sum(
                v
                for (name, labels), v in samples.items()
                if name == "trustgate_proxy_requests_total" and ("gateway_id", gw) in labels
            )
            return samples if n == 3 else None

        samples = await wait_for(counted, timeout=10)
        assert samples is not None
    assert value(samples, "trustgate_proxy_request_events_published_total") == 0
    assert (
        value(
            samples,
            "trustgate_proxy_tokens_total",
            gateway_id=gw,
            consumer_id=str(tenant.consumers["app"].id),
            model="m",
            type="input",
        )
        == 3 * INPUT
    )


def finished_call(model: str, status: int = 200) -> Call:
    call = Call(uuid4().hex, "POST", "/v1/chat/completions", 10.0, time.time())
    call.gateway_id = uuid4()
    call.model = model
    call.status = status
    call.ended = 10.002
    return call


def test_model_labels_stay_bounded_when_clients_send_ever_new_models() -> None:
    metrics = ProxyMetrics(max_models=3, max_series=50)
    for i in range(100):
        metrics.observe(finished_call(f"model-{i}"))
    models = {labels[2] for labels in metrics.requests.values}
    assert models <= {"model-0", "model-1", "model-2", "other"}
    assert len(metrics.requests.values) <= 50 + 1  # the cap, plus the overflow label set
    assert sum(metrics.requests.values.values()) == 100  # folded, never lost
    assert metrics.duration.count() == 100
    body, _ = metrics.render()
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"trustgate_proxy_requests", "trustgate_proxy_request_duration_seconds"} <= families


# -- tracing --------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_proxied_request_is_one_server_span_with_the_response_trace_id_and_the_event_traceparent(
    nats_url: str, tenant: Tenant, upstream: Any, bus: Any, protocol: str
) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    headers: dict[str, str] = {}

    async def on_msg(msg: Msg) -> None:
        assert msg.headers is not None
        headers[msg.headers["Nats-Msg-Id"]] = msg.headers["traceparent"]

    sub = await bus.subscribe(requests_subject(tenant.gateway.id), cb=on_msg)
    async with serve_otlp_collector() as collector:
        endpoint = collector.http_endpoint if protocol != "grpc" else collector.grpc_endpoint
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        async with run_proxy(nats_url, tracing_env=env) as proxy:
            await wait_for(lambda: proxy.runtime.ready, timeout=10)
            await until_known(proxy, tenant)
            async with httpx.AsyncClient(timeout=10) as client:
                ok = await post(client, proxy, tenant, body("gpt-4o-mini"))
                denied = await post(client, proxy, tenant, body("gpt-4o-mini"), "ag_wrong")
            assert (ok.status_code, denied.status_code) == (200, 401)
            trace_ok, trace_denied = ok.headers["x-ag-trace-id"], denied.headers["x-ag-trace-id"]
            await wait_for(lambda: len(headers) == 2, timeout=10)
            await wait_for(
                lambda: (
                    {trace_ok, trace_denied} <= {s.trace_id for s in collector.spans}
                    and len([s for s in collector.spans if s.trace_id == trace_ok]) == 2
                ),
                timeout=20,
                message="the proxy's spans never reached the collector",
            )
    await sub.unsubscribe()

    spans = [s for s in collector.spans if s.trace_id == trace_ok]
    server = next(s for s in spans if not s.parent_span_id)
    upstream_span = next(s for s in spans if s.parent_span_id)
    assert server.span.name == "POST /v1/chat/completions"
    assert server.span.kind == 2  # SPAN_KIND_SERVER
    assert server.resource_attributes["service.name"] == "trustgate-proxy"
    attrs = server.attributes
    assert attrs["http.response.status_code"] == 200
    assert attrs["trustgate.gateway_id"] == str(tenant.gateway.id)
    assert attrs["trustgate.consumer_id"] == str(tenant.consumers["app"].id)
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.provider.name"] == tenant.registries["primary"].provider
    assert attrs["gen_ai.usage.input_tokens"] == INPUT
    assert server.span.end_time_unix_nano > server.span.start_time_unix_nano

    # the request event names the proxy span as parent: telemetry's span joins this trace
    parent = parse_traceparent(headers[trace_ok])
    assert parent is not None
    assert (parent.trace_id, parent.span_id) == (trace_ok, server.span_id)

    assert upstream_span.parent_span_id == server.span_id
    assert upstream_span.span.kind == 3  # SPAN_KIND_CLIENT
    assert upstream_span.span.name == "chat gpt-4o-mini"
    s, u = server.span, upstream_span.span
    assert s.start_time_unix_nano <= u.start_time_unix_nano <= u.end_time_unix_nano
    assert u.end_time_unix_nano <= s.end_time_unix_nano

    denied_spans = [s for s in collector.spans if s.trace_id == trace_denied]
    assert len(denied_spans) == 1  # no upstream reached
    assert denied_spans[0].attributes["http.response.status_code"] == 401
    assert denied_spans[0].span.status.code != 2  # a 4xx is the client's error, not ours


async def test_without_an_otlp_endpoint_the_proxy_makes_no_spans_and_serves(
    nats_url: str, tenant: Tenant, upstream: Any
) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    async with run_proxy(nats_url, tracing_env={}) as proxy:
        assert proxy.runtime.tracing is None and proxy.runtime.recorder.tracer is None
        await wait_for(lambda: proxy.runtime.ready, timeout=10)
        await until_known(proxy, tenant)
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await post(client, proxy, tenant, body("m"))).status_code == 200


def test_the_proxy_does_not_load_opentelemetry_when_tracing_is_off() -> None:
    script = (
        "import asyncio, sys\n"
        "from trustgate_core.settings import DEV_SECRET_KEY\n"
        "from trustgate_proxy.bootstrap import ProxyRuntime\n"
        "from trustgate_proxy.main import server_config\n"
        "from trustgate_proxy.settings import ProxySettings\n"
        "async def main():\n"
        "    s = ProxySettings(NATS_URL='nats://127.0.0.1:1', SERVER_SECRET_KEY=DEV_SECRET_KEY)\n"
        "    async with ProxyRuntime(s, tracing_env={}) as rt:\n"
        "        server_config(rt, s)\n"
        "asyncio.run(main())\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_scrape_records_the_calls_the_background_task_has_not_drained_yet() -> None:
    recorders: list[CallRecorder] = []

    def drain() -> None:
        recorders[0].drain()

    metrics = ProxyMetrics(before_collect=drain)
    recorder = CallRecorder(MemorySink(), metrics, interval=3600)  # as the runtime wires it
    recorders.append(recorder)
    for _ in range(3):
        recorder.emit(finished_call("direct", 204))
    assert recorder.pending == 3 and recorder.inner.calls  # type: ignore[attr-defined]
    text = metrics.render()[0].decode()
    assert recorder.pending == 0
    samples = [
        s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "trustgate_proxy_requests_total"
    ]
    assert {s.labels["status"] for s in samples} == {"204"}
    assert sum(s.value for s in samples) == 3


async def test_metrics_are_not_served_on_the_traffic_port_only_on_the_operations_port(
    nats_url: str,
) -> None:
    async with run_proxy(nats_url, tracing_env={}) as proxy:
        async with httpx.AsyncClient(timeout=5) as client:
            traffic = await client.get(f"{proxy.url}/metrics")
            assert traffic.status_code == 404
            assert traffic.json()["error"] == "not_found"
            assert "trustgate_proxy" not in traffic.text
            assert (await client.get(f"{proxy.url}/healthz")).status_code == 200  # for LBs
            operations = await client.get(f"{proxy.operations_url}/metrics")
            assert operations.status_code == 200
            assert "trustgate_proxy_requests_total" in operations.text
            assert (await client.get(f"{proxy.operations_url}/healthz")).status_code == 200
