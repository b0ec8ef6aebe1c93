"""One request event per call on ``trustgate.requests.<gateway_id>``, published without
blocking; buffered within bounds (the rest dropped and counted) while NATS is down."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM, decode_request_event, requests_subject
from trustgate_core.events.subjects import requests_stream
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.sdk_clients import (
    abandon_plain_call,
    assert_one_client_disconnected,
    route_to_url,
    until_client_left,
)
from trustgate_testkit.proxy.server import run_proxy, until_known
from trustgate_testkit.proxy.tenant import new_tenant


def body(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}


async def post(
    proxy: Any, tenant: Any, doc: dict[str, Any], key: str | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(
            f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
            json=doc,
            headers={
                "X-AG-Gateway-Slug": tenant.slug,
                "X-AG-API-Key": tenant.keys["app"] if key is None else key,
            },
        )


async def test_every_request_yields_exactly_one_event_with_usage_and_timings(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        plain = await post(proxy, tenant, body("gpt-4o-mini"))
        streamed = await post(proxy, tenant, body("gpt-4o-mini", stream=True))
        denied = await post(proxy, tenant, body("gpt-4o-mini"), key="ag_wrong")
        limited = await post(proxy, tenant, body("gpt-4o-ratelimited"))
        responses = [plain, streamed, denied, limited]
        await wait_for(lambda: len(log.events) >= 4, timeout=5)
        barrier = await post(proxy, tenant, body("gpt-4o-mini"))
        await wait_for(lambda: len(log.events) >= 5, timeout=5)

    traces = [r.headers["x-ag-trace-id"] for r in [*responses, barrier]]
    assert sorted(e.trace_id for e in log.events) == sorted(traces)  # one each, no more
    by_trace = {e.trace_id: e for e in log.events}
    consumer, registry = tenant.consumers["app"], tenant.registries["primary"]

    ok = by_trace[traces[0]]
    assert ok.status == 200 and ok.error_kind is None and not ok.stream
    assert (ok.gateway_id, ok.consumer_id, ok.registry_id) == (
        tenant.gateway.id,
        consumer.id,
        registry.id,
    )
    assert ok.auth_id == tenant.auths["app"].id and ok.tenant_id == "tenant-test"
    assert (ok.provider, ok.model, ok.path) == (
        "openai_compatible",
        "gpt-4o-mini",
        "/v1/chat/completions",
    )
    assert ok.usage is not None
    assert (ok.usage.prompt_tokens, ok.usage.completion_tokens, ok.usage.total_tokens) == (
        11,
        7,
        18,
    )
    assert ok.usage.cached_input_tokens == 3
    t = ok.timings
    assert t.upstream_ms is not None and t.upstream_ttfb_ms is not None
    assert 0 < t.upstream_ttfb_ms <= t.upstream_ms <= t.total_ms
    assert abs(t.gateway_ms - (t.total_ms - t.upstream_ms)) < 0.01
    assert ok.sizes.request_bytes > 0 and ok.sizes.response_bytes == len(plain.content)
    assert ok.started_at <= ok.ended_at

    st = by_trace[traces[1]]
    assert st.stream and st.status == 200 and st.error_kind is None
    assert st.usage is not None and st.usage.total_tokens == 18  # from the usage chunk
    assert st.sizes.response_bytes == len(streamed.content)

    no = by_trace[traces[2]]
    assert (no.status, no.error_kind, no.consumer_id) == (401, "unauthenticated", consumer.id)
    assert no.auth_id is None and no.registry_id is None

    rl = by_trace[traces[3]]
    assert (rl.status, rl.error_kind) == (429, "upstream_status")

    for raw in [plain, streamed, denied]:
        assert "sk-" not in raw.headers.get("x-ag-trace-id", "")
    assert tenant.keys["app"] not in str([e.model_dump() for e in log.events])


async def test_upstream_cut_mid_stream_sends_the_error_event_and_records_the_failure(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        resp = await post(proxy, tenant, body("gpt-4o-cut", stream=True))
        await wait_for(lambda: log.events, timeout=5)
    assert resp.status_code == 200
    lines = resp.text.split("\n")
    assert lines[-3:] == [
        'data: {"error":{"message":"upstream stream terminated unexpectedly","type":"upstream_error"}}',
        "",
        "",
    ]
    assert "[DONE]" not in resp.text
    (event,) = log.events
    assert event.stream and event.error_kind == "stream_interrupted" and event.status == 200


async def test_client_disconnect_cancels_the_upstream_stream(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
                json=body("gpt-4o-hang", stream=True),
                headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
            )
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"data: {")
            resp.close()  # the client goes away mid-stream
        await until_client_left(upstream.client_gone, log, within=5)
    assert_one_client_disconnected(log)


async def test_nats_outage_keeps_serving_buffers_within_bounds_then_resumes_events_and_config(
    nats_server: Any, upstream: Any
) -> None:
    nc = await connect(nats_server.url, name="outage-test")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    tenant = await new_tenant(nc)
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    capacity = 3
    async with run_proxy(nats_server.url, METRICS_QUEUE_SIZE=capacity) as proxy:
        await wait_for(lambda: proxy.runtime.ready, timeout=5)
        await until_known(proxy, tenant)
        publisher = proxy.runtime.publisher
        assert (await post(proxy, tenant, body("m"))).status_code == 200
        await wait_for(lambda: publisher.published == 1, timeout=5)

        nats_server.stop()
        await wait_for(lambda: not publisher.connected, timeout=5)
        statuses = [(await post(proxy, tenant, body("m"))).status_code for _ in range(5)]
        assert statuses == [200] * 5  # served from the replica
        assert publisher.pending == capacity and publisher.dropped == 2

        async with httpx.AsyncClient() as client:
            ready = (await client.get(f"{proxy.url}/readyz")).json()
            metrics = (await client.get(f"{proxy.operations_url}/metrics")).text
        assert ready["dependencies"]["nats"] == "unavailable"
        assert "trustgate_proxy_request_events_dropped_total 2.0" in metrics

        nats_server.start()
        await wait_for(lambda: publisher.published == 1 + capacity, timeout=10)
        assert publisher.pending == 0

        # and the replica follows config changes made after the outage
        await wait_for(lambda: nc.is_connected, timeout=10)
        await tenant.add_consumer("after", ["primary"])
        await until_known(proxy, tenant, within=3)

    await wait_for(lambda: nc.is_connected, timeout=10)
    js = nc.jetstream()
    sub = await js.subscribe(requests_subject(tenant.gateway.id), ordered_consumer=True)
    stored = []
    try:
        while len(stored) < 1 + capacity:
            msg = await sub.next_msg(timeout=5)
            stored.append(decode_request_event(msg.data))
    finally:
        await sub.unsubscribe()
        await nc.close()
    assert all(e.status == 200 for e in stored)


async def test_refused_requests_on_a_known_gateway_are_recorded(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        async with httpx.AsyncClient(timeout=5) as client:
            unknown = await client.post(
                f"{proxy.url}/NoSuchOne/v1/chat/completions",
                json=body("m"),
                headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
            )
        await tenant.put_gateway(status="disabled")
        await until_known(proxy, tenant)
        disabled = await post(proxy, tenant, body("m"))
        await wait_for(lambda: len(log.events) >= 2, timeout=5)
    assert (unknown.status_code, disabled.status_code) == (401, 403)
    kinds = {e.trace_id: (e.status, e.error_kind) for e in log.events}
    assert kinds == {
        unknown.headers["x-ag-trace-id"]: (401, "unauthenticated"),
        disabled.headers["x-ag-trace-id"]: (403, "forbidden"),
    }


async def test_client_disconnect_cancels_a_slow_plain_completion(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        async with aiohttp.ClientSession() as session:
            await abandon_plain_call(
                session,
                f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
                json=body("gpt-4o-hang"),
                headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
                started=lambda: upstream.requests,
                within=5,
            )
        await until_client_left(upstream.client_gone, log, within=5)
    assert_one_client_disconnected(log, stream=False)
