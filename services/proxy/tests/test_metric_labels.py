"""Model names are chosen by clients, and they become Prometheus label values: the
proxy keeps them printable (no NUL, no line breaks, no control characters), bounded in
length, and bounded in number per gateway, so one tenant sending ever-new names can neither
corrupt the metrics page nor crowd out another tenant's models."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from trustgate_proxy.observability.metrics import MAX_LABEL_CHARS, MAX_MODELS_PER_GATEWAY
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

HOSTILE = [
    "gpt\x00-4o",
    'm\n} 1\ntrustgate_proxy_requests_total{gateway_id="forged"',
    "m\x1b[31mred\x7f",
    "m-" + "x" * 5000,
]


async def _chat(proxy: LocalProxy, tenant: Tenant, model: str) -> None:
    headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]}
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(
            f"{proxy.url}/{tenant.consumers['app'].slug}/v1/chat/completions",
            json=body,
            headers=headers,
        )
    assert resp.status_code == 200, resp.text


def _models_by_gateway(page: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(page):
        if family.name == "trustgate_proxy_requests":
            for sample in family.samples:
                out.setdefault(sample.labels["gateway_id"], set()).add(sample.labels["model"])
    return out


async def test_hostile_model_names_become_printable_bounded_labels(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await tenant.add_registry("up", upstream.url)
    await tenant.add_consumer("app", ["up"])
    for model in HOSTILE:
        await _chat(proxy, tenant, model)
    body, _ = proxy.runtime.observed.render()
    page = body.decode()
    assert "\x00" not in page and "\x1b" not in page and "\x7f" not in page
    assert "forged" not in _models_by_gateway(page)  # no sample was injected
    models = _models_by_gateway(page)[str(tenant.gateway.id)]
    assert "gpt-4o" in models and "m[31mred" in models
    assert all(m.isprintable() and len(m) <= MAX_LABEL_CHARS for m in models)
    assert "m-" + "x" * (MAX_LABEL_CHARS - 2) in models


async def test_one_gateways_ever_new_model_names_fold_into_other_and_spare_the_rest(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await tenant.add_registry("up", upstream.url)
    await tenant.add_consumer("app", ["up"])
    for i in range(MAX_MODELS_PER_GATEWAY + 10):
        await _chat(proxy, tenant, f"random-{i}")
    neighbour = await proxy.new_tenant()
    await neighbour.add_registry("up", upstream.url)
    await neighbour.add_consumer("app", ["up"])
    await _chat(proxy, neighbour, "gpt-4o-mini")
    body, _ = proxy.runtime.observed.render()
    models = _models_by_gateway(body.decode())
    noisy = models[str(tenant.gateway.id)]
    assert len(noisy) == MAX_MODELS_PER_GATEWAY + 1 and "other" in noisy
    assert models[str(neighbour.gateway.id)] == {"gpt-4o-mini"}
