"""A gateway's plan (``entitlements``) holds only what the proxy enforces: a tier label, a
burst per minute and a monthly quota. An instance count no plane can enforce, unknown
keys and bad values are refused with a 422 that says why, on create and on update."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def test_a_plan_with_burst_quota_and_tier_is_stored_as_given(api: httpx.AsyncClient) -> None:
    plan = {"tier": "standard", "burst_per_min": 60, "quota_per_month": 100_000}
    r = await api.post("/v1/gateways", json={"entitlements": plan})
    assert r.status_code == 201, r.text
    assert r.json()["entitlements"] == plan
    gid = r.json()["id"]
    r = await api.put(f"/v1/gateways/{gid}", json={"entitlements": {"quota_per_month": 5}})
    assert r.status_code == 200, r.text
    assert (await api.get(f"/v1/gateways/{gid}")).json()["entitlements"] == {"quota_per_month": 5}


@pytest.mark.parametrize(
    ("plan", "says"),
    [
        ({"max_instances": 3}, "max_instances is not supported"),
        ({"burst_per_min": 10, "max_instances": 1}, "max_instances is not supported"),
        ({"burst_per_minute": 10}, "unknown key(s) burst_per_minute"),
        ({"tier": "gold"}, "tier must be one of free, standard, enterprise"),
        ({"burst_per_min": 0}, "burst_per_min must be an integer > 0"),
        ({"quota_per_month": 1.5}, "quota_per_month must be an integer > 0"),
        ({"quota_per_month": "100"}, "quota_per_month must be an integer > 0"),
        ({"burst_per_min": True}, "burst_per_min must be an integer > 0"),
    ],
)
async def test_a_plan_the_proxy_cannot_enforce_is_refused_saying_why(
    api: httpx.AsyncClient, plan: dict[str, Any], says: str
) -> None:
    r = await api.post("/v1/gateways", json={"entitlements": plan})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
    assert "entitlements" in r.json()["message"] and says in r.json()["message"]
    ok = await api.post("/v1/gateways", json={})
    r = await api.put(f"/v1/gateways/{ok.json()['id']}", json={"entitlements": plan})
    assert r.status_code == 422, r.text
    assert says in r.json()["message"]
