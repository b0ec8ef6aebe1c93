"""An unauthenticated caller learns nothing about which gateways and consumers exist:
an unknown gateway, an unknown consumer, a missing key, a made-up key and a revoked key
all get the same status, body and headers, in the route's error shape. Which one it was
is kept for the operator (the server's log), never for the client."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from trustgate_testkit.proxy.local import LocalProxy, local_fixtures
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

MADE_UP = "ag_" + "q" * 43
ROUTES = {
    "/v1/chat/completions": (
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        {"error": "unauthenticated", "message": "unauthenticated"},
    ),
    "/v1/messages": (
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        {
            "type": "error",
            "error": {"type": "authentication_error", "message": "unauthenticated"},
        },
    ),
}
# the response headers that differ between any two answers
_VARYING = {"x-ag-trace-id", "date"}


async def _tenant_with_revoked_key(tenant: Tenant, upstream: MockUpstream) -> Tenant:
    await tenant.add_registry("up", upstream.url)
    await tenant.add_consumer("app", ["up"])
    await tenant.add_consumer("gone", ["up"])
    await tenant.delete_auth("gone")
    return tenant


def _cases(tenant: Tenant) -> dict[str, tuple[str, dict[str, str]]]:
    """(consumer slug, headers) of every way of not being authenticated."""
    app, gone = tenant.consumers["app"].slug, tenant.consumers["gone"].slug
    return {
        "unknown gateway": (app, {"X-AG-Gateway-Slug": "no-such-gateway", "X-AG-API-Key": MADE_UP}),
        "no gateway for the host": (app, {"X-AG-API-Key": MADE_UP}),
        "unknown consumer": (
            "no-such-consumer",
            {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": MADE_UP},
        ),
        "made-up key": (app, {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": MADE_UP}),
        "no key": (app, {"X-AG-Gateway-Slug": tenant.slug}),
        "revoked key": (
            gone,
            {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["gone"]},
        ),
        "unknown consumer, real key": (
            "no-such-consumer",
            {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
        ),
    }


@pytest.mark.parametrize("route", ROUTES)
async def test_every_unauthenticated_outcome_answers_byte_for_byte_the_same(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, route: str
) -> None:
    await _tenant_with_revoked_key(tenant, upstream)
    body, expected = ROUTES[route]
    answers: dict[str, tuple[int, bytes, list[tuple[str, str]]]] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for case, (slug, headers) in _cases(tenant).items():
            resp = await http.post(f"{proxy.url}/{slug}{route}", json=body, headers=headers)
            kept = sorted((k, v) for k, v in resp.headers.items() if k not in _VARYING)
            answers[case] = (resp.status_code, resp.content, kept)
    first = answers["made-up key"]
    assert first[0] == 401
    assert httpx.Response(200, content=first[1]).json() == expected
    different = {case: answer for case, answer in answers.items() if answer != first}
    assert not different, f"answers that tell the cases apart: {different}"


async def test_the_reason_is_logged_for_the_operator_without_the_key(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, caplog: Any
) -> None:
    await _tenant_with_revoked_key(tenant, upstream)
    caplog.set_level(logging.INFO, logger="trustgate_proxy")
    body, _ = ROUTES["/v1/chat/completions"]
    async with httpx.AsyncClient(timeout=5) as http:
        for slug, headers in _cases(tenant).values():
            await http.post(f"{proxy.url}/{slug}/v1/chat/completions", json=body, headers=headers)
    logged = caplog.text
    for reason in ("unknown_gateway", "unknown_consumer", "missing_key", "bad_key"):
        assert reason in logged
    assert MADE_UP not in logged and tenant.keys["app"] not in logged


async def test_a_disabled_gateway_is_only_named_to_an_authenticated_caller(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    await _tenant_with_revoked_key(tenant, upstream)
    await tenant.put_gateway(status="disabled")
    url = f"{proxy.url}/{tenant.consumers['app'].slug}/v1/chat/completions"
    body, _ = ROUTES["/v1/chat/completions"]
    async with httpx.AsyncClient(timeout=5) as http:
        stranger = await http.post(
            url, json=body, headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": MADE_UP}
        )
        owner = await http.post(
            url,
            json=body,
            headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
        )
    assert stranger.status_code == 401
    assert owner.status_code == 403
