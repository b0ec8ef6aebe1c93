"""Admin tokens are scoped by their tenant and their scope.

Issue 13 measured a token of tenant-1 listing every gateway, reading and changing
tenant-2's, minting an API key in it and creating gateways for tenant-2. Each of those is
tried here and must be refused: another tenant's gateway is a 404 as if absent, a gateway
for another tenant a 422, and a read-only token's write a 403 ``forbidden``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import NamedTuple

import httpx
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_testkit.admin import RunningAdmin


def _tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


def _client(admin: RunningAdmin, **claims: object) -> httpx.AsyncClient:
    token = mint_admin_token(admin.settings.server_secret_key, **claims)  # type: ignore[arg-type]
    return admin.client(token)


class Tenants(NamedTuple):
    a: httpx.AsyncClient  # tenant A, read and write
    b: httpx.AsyncClient  # tenant B, read and write
    a_read_only: httpx.AsyncClient
    b_name: str


@pytest.fixture
async def tenants(admin: RunningAdmin) -> AsyncIterator[Tenants]:
    a, b = _tenant(), _tenant()
    async with (
        _client(admin, tenant_id=a, subject="alice") as ca,
        _client(admin, tenant_id=b, subject="bob") as cb,
        _client(admin, tenant_id=a, subject="auditor", read_only=True) as ra,
    ):
        yield Tenants(ca, cb, ra, b)


async def _gateway(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/gateways", json={"slug": f"gw-{uuid.uuid4().hex[:10]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_tenant_lists_reads_and_changes_only_its_own_gateways(
    tenants: Tenants, api: httpx.AsyncClient
) -> None:
    ca, cb = tenants.a, tenants.b
    own, theirs = await _gateway(ca), await _gateway(cb)

    listed = (await ca.get("/v1/gateways", params={"size": 200})).json()
    assert [g["id"] for g in listed["items"]] == [own]
    assert listed["total"] == 1
    everything = (await api.get("/v1/gateways", params={"size": 200})).json()  # the operator
    assert {own, theirs} <= {g["id"] for g in everything["items"]}

    attacks = [
        ca.get(f"/v1/gateways/{theirs}"),
        ca.put(f"/v1/gateways/{theirs}", json={"status": "disabled"}),
        ca.delete(f"/v1/gateways/{theirs}"),
        ca.get(f"/v1/gateways/{theirs}/registries"),
        ca.post(f"/v1/gateways/{theirs}/auths", json={"name": "k", "type": "api_key"}),
    ]
    for attack in attacks:
        r = await attack
        assert r.status_code == 404, (r.request.method, r.request.url, r.text)
        assert r.json() == {"error": "not_found"}
        assert "api_key" not in r.text
    theirs_audit = await ca.get("/v1/audit", params={"gateway_id": theirs})
    assert theirs_audit.json()["total"] == 0  # B's history is not A's to read
    # and what B holds is untouched: still active, still without an auth
    assert (await cb.get(f"/v1/gateways/{theirs}")).json()["status"] == "active"
    assert (await cb.get(f"/v1/gateways/{theirs}/auths")).json()["total"] == 0

    # its own gateway it reads, changes and keys as before
    assert (await ca.get(f"/v1/gateways/{own}")).status_code == 200
    r = await ca.post(f"/v1/gateways/{own}/auths", json={"name": "k", "type": "api_key"})
    assert r.status_code == 201 and r.json()["api_key"]


async def test_a_tenant_creates_gateways_for_itself_only(tenants: Tenants) -> None:
    ca, cb, b_tenant = tenants.a, tenants.b, tenants.b_name
    slug = f"gw-{uuid.uuid4().hex[:10]}"
    r = await ca.post("/v1/gateways", json={"slug": slug, "tenant_id": b_tenant})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
    assert "tenant_id" in r.json()["message"]
    assert (await cb.get("/v1/gateways", params={"slug": slug})).json()["total"] == 0

    own = await _gateway(ca)
    r = await ca.put(f"/v1/gateways/{own}", json={"tenant_id": b_tenant})
    assert r.status_code == 422, r.text  # nor hands its gateway over
    assert (await cb.get(f"/v1/gateways/{own}")).status_code == 404


async def test_a_read_only_token_reads_and_every_write_is_403(tenants: Tenants) -> None:
    ca, ra = tenants.a, tenants.a_read_only
    own = await _gateway(ca)
    assert (await ra.get(f"/v1/gateways/{own}")).status_code == 200
    assert (await ra.get("/v1/gateways")).json()["total"] == 1
    assert (await ra.get(f"/v1/gateways/{own}/registries")).status_code == 200
    writes = [
        ra.post("/v1/gateways", json={}),
        ra.put(f"/v1/gateways/{own}", json={"status": "disabled"}),
        ra.delete(f"/v1/gateways/{own}"),
        ra.post(f"/v1/gateways/{own}/auths", json={"name": "k", "type": "api_key"}),
        ra.post(f"/v1/gateways/{own}/consumers", json={"name": "c"}),
    ]
    for write in writes:
        r = await write
        assert r.status_code == 403, (r.request.method, r.request.url, r.text)
        assert r.json()["error"] == "forbidden"
    assert (await ca.get(f"/v1/gateways/{own}")).json()["status"] == "active"
    assert (await ca.get(f"/v1/gateways/{own}/auths")).json()["total"] == 0


async def test_a_tenant_cannot_set_or_lift_its_own_plan(tenants: Tenants) -> None:
    """Entitlements are the platform's: a tenant's token setting them on a new gateway,
    raising them or clearing them on its own is 403 (it would lift its own limits)."""
    ca = tenants.a
    plan = {"entitlements": {"burst_per_min": 10_000, "quota_per_month": 10**9}}
    slug = f"gw-{uuid.uuid4().hex[:10]}"
    r = await ca.post("/v1/gateways", json={"slug": slug, **plan})
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    own = await _gateway(ca)
    for change in (plan, {"entitlements": None}):
        r = await ca.put(f"/v1/gateways/{own}", json=change)
        assert r.status_code == 403, r.text
    assert (await ca.get(f"/v1/gateways/{own}")).json()["entitlements"] is None
