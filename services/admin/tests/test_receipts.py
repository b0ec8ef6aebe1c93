"""Receipt keys: the admin lists each gateway's public receipt keys (tenant-scoped),
rotates them through the gateway's config event (the old key stays listed, retired) and
publishes them as a JWKS anyone may fetch without a token, which writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from trustgate_admin.adapters.db.receipt_tables import ReceiptKeyRow
from trustgate_admin.api.security import mint_admin_token
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.governance.receipts import ReceiptKeys
from trustgate_core.receipts.keys import ReceiptKey
from trustgate_testkit.admin import (
    SECRET,
    RunningAdmin,
    admin_settings,
    read_stream,
    running_admin,
)
from trustgate_testkit.fixtures import NatsServer, wait_for


def jwks_path(gateway_id: str) -> str:
    return f"/.well-known/trustgate/receipts/{gateway_id}/jwks.json"


@pytest.fixture
async def anonymous(admin: RunningAdmin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin.url, timeout=10) as client:
        yield client


async def gateway(api: httpx.AsyncClient, receipts: bool = True) -> str:
    r = await api.post("/v1/gateways", json={"governance": {"receipts": receipts}})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def derived(gateway_id: str, version: int) -> ReceiptKey:
    """The key every plane derives (the proxies sign with it)."""
    return ReceiptKey.derive(SECRET, UUID(gateway_id), version)


async def test_the_public_jwks_lists_the_key_the_proxies_sign_with_without_a_token(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    gid = await gateway(api)
    r = await anonymous.get(jwks_path(gid))
    assert r.status_code == 200, r.text
    assert r.json() == {"keys": [derived(gid, 1).jwk()]}
    assert "max-age" in r.headers["cache-control"]


async def test_a_rotation_adds_a_new_kid_and_keeps_the_old_one_listed_and_retired(
    admin: RunningAdmin, api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    gid = await gateway(api)
    first, second = derived(gid, 1), derived(gid, 2)
    r = await api.post(f"/v1/gateways/{gid}/receipt-keys/rotate")
    assert r.status_code == 201, r.text
    rotated = r.json()
    assert (rotated["kid"], rotated["version"], rotated["retired_at"]) == (second.kid, 2, None)
    assert rotated["x"] == second.x

    listed = (await api.get(f"/v1/gateways/{gid}/receipt-keys")).json()
    assert listed["total"] == 2
    old, new = listed["items"]
    assert (old["kid"], old["version"]) == (first.kid, 1) and old["retired_at"] is not None
    assert (new["kid"], new["retired_at"]) == (second.kid, None)
    jwks = (await anonymous.get(jwks_path(gid))).json()
    assert [k["kid"] for k in jwks["keys"]] == [first.kid, second.kid]

    gw = (await api.get(f"/v1/gateways/{gid}")).json()
    assert gw["governance"]["receipt_key_version"] == 2

    async def published() -> Any:
        events = [e for e in await read_stream(admin.settings.nats_url, gid) if e.kind == "gateway"]
        last = events[-1].entity if events else None
        return last is not None and last.governance.receipt_key_version == 2

    await wait_for(published, timeout=10, message="the proxies never heard of version 2")

    # a later update of the switches keeps the rotated version
    r = await api.put(f"/v1/gateways/{gid}", json={"governance": {"audit_requests": True}})
    assert r.json()["governance"]["receipt_key_version"] == 2


async def recorded_keys(dsn: str, gateway_id: str) -> list[tuple[str, int, Any, Any]]:
    """The gateway's rows in ``receipt_keys``, read straight from Postgres."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT kid, version, created_at, retired_at FROM receipt_keys "
            "WHERE gateway_id = $1 ORDER BY version, created_at",
            UUID(gateway_id),
        )
    finally:
        await conn.close()
    return [(r["kid"], r["version"], r["created_at"], r["retired_at"]) for r in rows]


async def test_a_key_is_recorded_moments_after_receipts_are_turned_on(
    admin: RunningAdmin, api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """Recorded when the gateway's config event goes out (the one that makes the proxies
    sign), not a minute later, and not by reading the public JWKS."""
    gid = await gateway(api)

    async def recorded() -> bool:
        return bool(await recorded_keys(admin.settings.dsn, gid))

    await wait_for(recorded, timeout=10, message="the key was not recorded")
    ((kid, version, _, retired),) = await recorded_keys(admin.settings.dsn, gid)
    assert (kid, version, retired) == (derived(gid, 1).kid, 1, None)


async def test_the_public_jwks_writes_nothing(database_factory: Any, bus: NatsServer) -> None:
    """Anyone may GET the JWKS: it reads. A key not yet recorded (the recording part is
    stopped here) is still answered, derived, and stays unrecorded; recorded keys are
    answered as they are, their rows untouched."""
    dsn = str(await database_factory("tg_receipts_jwks"))
    async with running_admin(admin_settings(dsn, bus.url)) as own:
        await own.container.governance.receipt_keys.stop()  # nothing records but a rotation
        async with own.client() as api, httpx.AsyncClient(base_url=own.url) as anonymous:
            gid = await gateway(api)
            for _ in range(3):
                r = await anonymous.get(jwks_path(gid))
                assert r.status_code == 200 and r.json() == {"keys": [derived(gid, 1).jwk()]}
            assert await recorded_keys(dsn, gid) == []

            assert (await api.post(f"/v1/gateways/{gid}/receipt-keys/rotate")).status_code == 201
            before = await recorded_keys(dsn, gid)
            assert [(kid, v) for kid, v, _, _ in before] == [
                (derived(gid, 1).kid, 1),
                (derived(gid, 2).kid, 2),
            ]
            for _ in range(3):
                r = await anonymous.get(jwks_path(gid))
                assert [k["kid"] for k in r.json()["keys"]] == [kid for kid, _, _, _ in before]
            assert await recorded_keys(dsn, gid) == before


async def test_keys_of_a_gateway_whose_receipts_are_turned_off_stay_published(
    admin: RunningAdmin, api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    gid = await gateway(api)
    assert (await anonymous.get(jwks_path(gid))).status_code == 200

    async def recorded() -> bool:
        return bool(await recorded_keys(admin.settings.dsn, gid))

    await wait_for(recorded, timeout=10, message="the key was not recorded")
    await api.put(f"/v1/gateways/{gid}", json={"governance": {"receipts": False}})
    r = await anonymous.get(jwks_path(gid))
    assert r.json() == {"keys": [derived(gid, 1).jwk()]}


async def test_a_rotation_with_receipts_off_is_a_409(api: httpx.AsyncClient) -> None:
    gid = await gateway(api, receipts=False)
    r = await api.post(f"/v1/gateways/{gid}/receipt-keys/rotate")
    assert r.status_code == 409 and r.json()["error"] == "conflict", r.text


async def test_the_jwks_is_a_404_for_an_unknown_gateway_or_one_that_never_had_receipts(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    never = await gateway(api, receipts=False)
    assert (await anonymous.get(jwks_path(never))).status_code == 404
    assert (await anonymous.get(jwks_path(str(uuid.uuid4())))).status_code == 404
    r = await anonymous.get(jwks_path("not-a-uuid"))
    assert 400 <= r.status_code < 500 and r.status_code != 404
    assert (await api.get(f"/v1/gateways/{uuid.uuid4()}/receipt-keys")).status_code == 404


async def test_a_tenant_sees_and_rotates_only_its_own_gateways_keys(
    admin: RunningAdmin, anonymous: httpx.AsyncClient
) -> None:
    secret = admin.settings.server_secret_key
    a, b = f"tenant-{uuid.uuid4().hex[:8]}", f"tenant-{uuid.uuid4().hex[:8]}"
    async with (
        admin.client(mint_admin_token(secret, tenant_id=a, subject="alice")) as ca,
        admin.client(mint_admin_token(secret, tenant_id=b, subject="bob")) as cb,
        admin.client(mint_admin_token(secret, tenant_id=a, read_only=True)) as ra,
    ):
        own = await gateway(ca)
        assert (await ca.get(f"/v1/gateways/{own}/receipt-keys")).json()["total"] == 1
        assert (await ra.get(f"/v1/gateways/{own}/receipt-keys")).status_code == 200
        assert (await ra.post(f"/v1/gateways/{own}/receipt-keys/rotate")).status_code == 403
        assert (await cb.get(f"/v1/gateways/{own}/receipt-keys")).status_code == 404
        assert (await cb.post(f"/v1/gateways/{own}/receipt-keys/rotate")).status_code == 404
        assert (await anonymous.get(f"/v1/gateways/{own}/receipt-keys")).status_code == 401
        listed = (await ca.get(f"/v1/gateways/{own}/receipt-keys")).json()
        assert listed["total"] == 1  # bob's attempt rotated nothing


async def test_the_admin_records_the_keys_of_gateways_with_receipts_without_being_asked(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    gid = await gateway(api)
    c = admin.container
    part = ReceiptKeys(GovernanceDeps(c.settings, c.engine, c.sessions, c.box, c.nc), 0.05)

    async def recorded() -> ReceiptKeyRow | None:
        async with c.sessions() as session:
            return await session.get(ReceiptKeyRow, (UUID(gid), derived(gid, 1).kid))

    await part.start()
    try:
        row = await wait_for(recorded, timeout=5, message="the key was never recorded")
        assert row.version == 1 and row.retired_at is None
        later = await gateway(api)  # receipts turned on while the admin runs

        async def later_recorded() -> ReceiptKeyRow | None:
            async with c.sessions() as session:
                return await session.get(ReceiptKeyRow, (UUID(later), derived(later, 1).kid))

        await wait_for(later_recorded, timeout=5, message="a new gateway's key was never recorded")
    finally:
        await part.stop()
