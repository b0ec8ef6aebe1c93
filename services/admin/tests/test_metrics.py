"""The admin's ``/metrics``: on the operations port only, Prometheus text that parses, HTTP
requests counted by route template (never by id) and status, the outbox published and
drained."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from trustgate_testkit.admin import RunningAdmin
from trustgate_testkit.fixtures import wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(admin: RunningAdmin) -> Samples:
    async with httpx.AsyncClient(base_url=admin.operations_url, timeout=5) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def requests(samples: Samples, method: str, route: str, status: str) -> float:
    key = (("method", method), ("route", route), ("status", status))
    return samples.get(("trustgate_admin_http_requests_total", key), 0.0)


async def test_metrics_are_not_served_on_the_api_port_and_the_operations_port_serves_health(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    missing = await api.get("/metrics")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    async with httpx.AsyncClient(base_url=admin.operations_url, timeout=5) as client:
        assert (await client.get("/healthz")).json()["status"] == "healthy"
        assert (await client.get("/readyz")).json()["status"] == "ready"
        assert (await client.get("/v1/gateways")).status_code == 404  # not the API


async def test_admin_metrics_count_requests_by_route_template_and_the_outbox(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    before = await scrape(admin)
    slug = f"metrics-{uuid.uuid4().hex[:8]}"
    created = await api.post("/v1/gateways", json={"name": "Metrics", "slug": slug})
    assert created.status_code == 201, created.text
    gw = created.json()["id"]
    for _ in range(3):
        assert (await api.get(f"/v1/gateways/{gw}")).status_code == 200
    missing = await api.get(f"/v1/gateways/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert (await api.get("/no/such/route")).status_code == 404

    async def settled() -> Samples | None:
        samples = await scrape(admin)
        published = samples.get(("trustgate_admin_outbox_published_total", ()), 0.0)
        pending = samples.get(("trustgate_admin_outbox_pending", ()), -1.0)
        grew = published > before.get(("trustgate_admin_outbox_published_total", ()), 0.0)
        return samples if grew and pending == 0 else None

    after = await wait_for(settled, timeout=15, message="the outbox was never drained")
    assert after is not None

    def delta(method: str, route: str, status: str) -> float:
        return requests(after, method, route, status) - requests(before, method, route, status)

    assert delta("POST", "/v1/gateways", "201") == 1
    assert delta("GET", "/v1/gateways/{gateway_id}", "200") == 3
    assert delta("GET", "/v1/gateways/{gateway_id}", "404") == 1
    assert delta("GET", "unmatched", "404") == 1
    routes = {dict(labels).get("route") for name, labels in after if "route" in dict(labels)}
    assert not any(gw in str(r) for r in routes)  # ids never become labels
    count = (
        "trustgate_admin_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/v1/gateways/{gateway_id}")),
    )
    assert after[count] - before.get(count, 0.0) == 4
    assert after[("trustgate_admin_outbox_leader", ())] == 1
