"""Proxy and telemetry together, tracing on: a request handled by the proxy and exported by
telemetry is one trace at the OTLP collector (the context carried in the request event's
``traceparent`` NATS header). Telemetry writes to its file sink here: the trace does not
depend on the sink, and Kafka delivery is tested in services/telemetry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from nats.aio.msg import Msg

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import REQUESTS_SUBJECTS, requests_stream
from trustgate_core.observability.tracing import parse_traceparent
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.otlp import ReceivedSpan, serve_otlp_collector
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.server import run_proxy, until_known
from trustgate_testkit.proxy.tenant import new_tenant
from trustgate_testkit.telemetry import run_telemetry

SERVER, CONSUMER = 2, 5  # OTLP SpanKind values


async def test_a_proxied_request_exported_by_telemetry_is_one_trace(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    sink = tmp_path / "events.jsonl"
    nc = await connect(nats_server.url, name="one-trace-test")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    tenant = await new_tenant(nc)
    async with serve_otlp_collector() as collector, serve_mock("mock") as upstream:
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        async with (
            run_proxy(nats_server.url, tracing_env=env) as proxy,
            run_telemetry(
                nats_server.url, otel_env=env, TELEMETRY_SINK_FILE=str(sink)
            ) as telemetry,
        ):
            async with asyncio.timeout(20):
                await proxy.runtime.wait_ready()
            await until_known(proxy, tenant)
            await wait_for(lambda: telemetry.runtime.ready, timeout=20)
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.post(
                    f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
                    headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
                )
            assert resp.status_code == 200
            trace_id = resp.headers["x-ag-trace-id"]

            def spans_of(service: str) -> list[ReceivedSpan]:
                return [
                    s
                    for s in collector.spans
                    if s.trace_id == trace_id and s.resource_attributes["service.name"] == service
                ]

            await wait_for(
                lambda: spans_of("trustgate-proxy") and spans_of("trustgate-telemetry"),
                timeout=30,
                message="the proxy's and telemetry's spans of the request never both arrived",
            )
            await wait_for(lambda: sink.exists() and trace_id in sink.read_text(), timeout=30)
    await nc.close()

    proxy_span = next(s for s in spans_of("trustgate-proxy") if s.span.kind == SERVER)
    consumer_span = next(s for s in spans_of("trustgate-telemetry") if s.span.kind == CONSUMER)
    assert proxy_span.parent_span_id == ""  # the trace starts at the proxy
    assert consumer_span.parent_span_id == proxy_span.span_id  # telemetry continues it
    assert consumer_span.attributes["trustgate.trace_id"] == trace_id


async def test_the_request_events_traceparent_flag_follows_the_proxys_sampling_decision(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url, name="sampled-flag-test")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    flags: dict[str, bool] = {}

    async def seen(msg: Msg) -> None:
        parent = parse_traceparent((msg.headers or {}).get("traceparent"))
        assert parent is not None
        flags[parent.trace_id] = parent.sampled

    await nc.subscribe(REQUESTS_SUBJECTS, cb=seen)
    tenant = await new_tenant(nc)
    n = 16
    async with serve_otlp_collector() as collector, serve_mock("mock") as upstream:
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.5",
        }
        async with run_proxy(nats_server.url, tracing_env=env) as proxy:
            async with asyncio.timeout(20):
                await proxy.runtime.wait_ready()
            await until_known(proxy, tenant)
            trace_ids = []
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(n):
                    resp = await client.post(
                        f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
                        headers={
                            "X-AG-Gateway-Slug": tenant.slug,
                            "X-AG-API-Key": tenant.keys["app"],
                        },
                    )
                    assert resp.status_code == 200
                    trace_ids.append(resp.headers["x-ag-trace-id"])
            await wait_for(lambda: set(trace_ids) <= set(flags), timeout=20)
            sampled = {t for t in trace_ids if flags[t]}

            def traced() -> set[str]:
                return {s.trace_id for s in collector.spans if s.span.kind == SERVER}

            await wait_for(lambda: sampled <= traced(), timeout=30, message="sampled spans")
            await asyncio.to_thread(proxy.runtime.tracing.force_flush)  # type: ignore[union-attr]
    await nc.close()
    assert traced() & set(trace_ids) == sampled  # an unsampled flag: no proxy span exported
    assert 0 < len(sampled) < n  # the ratio kept some and dropped some (p ~ 3e-5 to fail)
