"""Every admin change is in the audit log (GET /v1/audit) and on the bus (TRUSTGATE_AUDIT):
who (the token's subject), what (kind, id, operation, revision), when, the tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_core.events.audit import decode_audit_event
from trustgate_core.events.subjects import audit_subject
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

REGISTRY = {
    "name": "primary",
    "provider": "openai",
    "auth": {"type": "api_key", "api_key": {"api_key": "sk-audit-test-0000"}},
}


async def test_creates_updates_and_deletes_are_listed_and_published(
    admin: RunningAdmin, bus: NatsServer
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    secret = admin.settings.server_secret_key
    alice = admin.client(mint_admin_token(secret, subject="alice", tenant_id=tenant))
    other = admin.client(mint_admin_token(secret, subject="eve", tenant_id=f"{tenant}-other"))
    reader = admin.client(mint_admin_token(secret, subject="r", tenant_id=tenant, read_only=True))
    started = datetime.now(UTC)
    async with alice, other, reader:
        gw = (await alice.post("/v1/gateways", json={})).json()["id"]
        r = await alice.put(f"/v1/gateways/{gw}", json={"status": "disabled"})
        assert r.status_code == 200
        reg = (await alice.post(f"/v1/gateways/{gw}/registries", json=REGISTRY)).json()["id"]
        assert (await alice.delete(f"/v1/gateways/{gw}/registries/{reg}")).status_code == 204
        assert (await reader.delete(f"/v1/gateways/{gw}")).status_code == 403  # not a change
        assert (await alice.delete(f"/v1/gateways/{gw}")).status_code == 204

        page = (await alice.get("/v1/audit", params={"gateway_id": gw})).json()
        assert page["total"] == 5 and page["page"] == 1
        seen = [(e["kind"], e["entity_id"], e["operation"]) for e in page["items"]]
        assert seen == [  # newest first
            ("gateway", gw, "delete"),
            ("registry", reg, "delete"),
            ("registry", reg, "create"),
            ("gateway", gw, "update"),
            ("gateway", gw, "create"),
        ]
        for entry in page["items"]:
            assert entry["actor"] == "alice" and entry["tenant_id"] == tenant
            when = datetime.fromisoformat(entry["occurred_at"])
            assert started - timedelta(seconds=1) <= when <= datetime.now(UTC)
        revisions = [e["revision"] for e in page["items"]]
        assert revisions == sorted(revisions, reverse=True) and len(set(revisions)) == 5

        oldest = (
            await alice.get(
                "/v1/audit",
                params={"sort": "occurred_at", "size": 2, "order": "asc", "gateway_id": gw},
            )
        ).json()
        assert [e["operation"] for e in oldest["items"]] == ["create", "update"]
        assert oldest["total"] == 5
        # another tenant sees none of it, even by listing everything it may
        theirs = (await other.get("/v1/audit", params={"size": 200})).json()
        assert all(e["tenant_id"] == f"{tenant}-other" for e in theirs["items"])
        assert gw not in {e["gateway_id"] for e in theirs["items"]}

    nc = await nats.connect(bus.url)
    try:
        got: list[Any] = []
        sub = await nc.jetstream().subscribe(audit_subject(gw), ordered_consumer=True)

        async def all_five() -> bool:
            while len(got) < 5:
                got.append(decode_audit_event((await sub.next_msg(timeout=1)).data))
            return True

        await wait_for(all_five, timeout=10, message="the audit events never reached the bus")
        published = [(e.kind.value, str(e.entity_id), e.operation, e.actor) for e in got]
        assert published == [(k, i, op, "alice") for k, i, op in reversed(seen)]
        assert [e.revision for e in got] == sorted(revisions)
    finally:
        await nc.close()


@pytest.mark.slow
async def test_audit_events_of_changes_made_while_nats_is_down_arrive_after_it(
    database_factory, nats_server: NatsServer
) -> None:
    dsn = await database_factory("tg_audit_outage")
    async with running_admin(admin_settings(dsn, nats_server.url)) as admin, admin.client() as api:
        nats_server.stop()
        gw = (await api.post("/v1/gateways", json={})).json()["id"]
        assert (await api.put(f"/v1/gateways/{gw}", json={"status": "disabled"})).status_code == 200
        assert (await api.delete(f"/v1/gateways/{gw}")).status_code == 204
        assert (await api.get("/v1/audit", params={"gateway_id": gw})).json()["total"] == 3
        nats_server.start()

        nc = await nats.connect(nats_server.url)
        try:
            got: list[Any] = []

            async def all_three() -> bool:
                got.clear()  # each try reads the stream from its start
                sub = await nc.jetstream().subscribe(audit_subject(gw), ordered_consumer=True)
                try:
                    while len(got) < 3:
                        got.append(decode_audit_event((await sub.next_msg(timeout=1)).data))
                finally:
                    await sub.unsubscribe()
                return True

            await wait_for(all_three, timeout=30, message="audit events lost in the outage")
            assert [e.operation for e in got] == ["create", "update", "delete"]
        finally:
            await nc.close()


async def test_every_kind_of_entity_is_recorded_with_its_operation(
    admin: RunningAdmin, api: Any
) -> None:
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    base = f"/v1/gateways/{gw}"
    reg = (await api.post(f"{base}/registries", json=REGISTRY)).json()["id"]
    con = (await api.post(f"{base}/consumers", json={"name": "c"})).json()["id"]
    auth = (await api.post(f"{base}/auths", json={"name": "k", "type": "api_key"})).json()["id"]
    pol = (
        await api.post(
            f"{base}/policies",
            json={"name": "p", "slug": "rate_limiter", "settings": {"limit": 5, "window": "1m"}},
        )
    ).json()["id"]
    role = (await api.post(f"{base}/roles", json={"name": "r"})).json()["id"]
    assert (await api.post(f"{base}/consumers/{con}/auths/{auth}")).status_code == 204

    entries = (
        await api.get("/v1/audit", params={"gateway_id": gw, "order": "asc", "sort": "occurred_at"})
    ).json()["items"]
    assert [(e["kind"], e["entity_id"], e["operation"]) for e in entries] == [
        ("gateway", gw, "create"),
        ("registry", reg, "create"),
        ("consumer", con, "create"),
        ("auth", auth, "create"),
        ("policy", pol, "create"),
        ("role", role, "create"),
        ("consumer", con, "update"),  # the auth attached
    ]
    assert {e["actor"] for e in entries} == {"admin"}
