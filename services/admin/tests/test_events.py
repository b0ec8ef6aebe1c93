"""Every mutation announces itself on the config stream; a late replica rebuilds the same state."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from trustgate_testkit.admin import live_events, read_stream, replica
from trustgate_testkit.fixtures import NatsServer, wait_for

PROVIDER_KEY = "sk-live-provider-secret-9876"


async def _setup(api: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    gw = (await api.post("/v1/gateways", json={"slug": slug})).json()
    g = gw["id"]
    reg = (
        await api.post(
            f"/v1/gateways/{g}/registries",
            json={
                "name": "primary",
                "provider": "openai",
                "auth": {"type": "api_key", "api_key": {"api_key": PROVIDER_KEY}},
            },
        )
    ).json()
    con = (
        await api.post(
            f"/v1/gateways/{g}/consumers", json={"name": "app", "registries": [{"id": reg["id"]}]}
        )
    ).json()
    auth = (await api.post(f"/v1/gateways/{g}/auths", json={"name": "k", "type": "api_key"})).json()
    r = await api.post(f"/v1/gateways/{g}/consumers/{con['id']}/auths/{auth['id']}")
    assert r.status_code == 204
    return {"gw": gw, "reg": reg, "con": con, "auth": auth}


async def test_each_mutation_emits_exactly_its_config_event(
    admin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    async with live_events(bus.url) as seen:
        s = await _setup(api, "events-exact")
        g = s["gw"]["id"]
        con_id = s["con"]["id"]
        r = await api.put(f"/v1/gateways/{g}/consumers/{con_id}", json={"active": False})
        assert r.status_code == 200
        r = await api.delete(f"/v1/gateways/{g}/consumers/{con_id}/auths/{s['auth']['id']}")
        assert r.status_code == 204
        assert (await api.delete(f"/v1/gateways/{g}/auths/{s['auth']['id']}")).status_code == 204
        expected = [
            ("gateway", "upsert", g),
            ("registry", "upsert", s["reg"]["id"]),
            ("consumer", "upsert", con_id),
            ("auth", "upsert", s["auth"]["id"]),
            ("consumer", "upsert", con_id),  # the attach
            ("consumer", "upsert", con_id),  # the update
            ("consumer", "upsert", con_id),  # the detach
            ("auth", "delete", s["auth"]["id"]),
        ]

        def mine() -> list[Any]:
            return [e for e in seen if str(e.gateway_id) == g]

        await wait_for(lambda: len(mine()) >= len(expected), timeout=10)
        await wait_for(lambda: _outbox_drained(admin), timeout=10)
        found = mine()
    assert [(e.kind.value, e.op, str(e.entity_id)) for e in found] == expected
    revisions = [e.revision for e in found]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    attach, update, detach, tombstone = found[4:]
    assert [str(a) for a in attach.entity.auth_ids] == [s["auth"]["id"]]
    assert update.entity.active is False
    assert detach.entity.auth_ids == []
    assert tombstone.entity is None
    assert all(e.schema_version == 1 for e in found)
    # the stream keeps the latest state per entity
    latest = await read_stream(bus.url, g)
    assert {(e.kind.value, str(e.entity_id)): e.op for e in latest} == {
        ("gateway", g): "upsert",
        ("registry", s["reg"]["id"]): "upsert",
        ("consumer", con_id): "upsert",
        ("auth", s["auth"]["id"]): "delete",
    }


async def test_events_carry_no_secret_in_clear(api: httpx.AsyncClient, bus: NatsServer) -> None:
    s = await _setup(api, "events-secrets")
    g = s["gw"]["id"]
    key = s["auth"]["api_key"]
    found = await wait_for(lambda: _at_least(bus.url, g, 4), timeout=10)
    payloads = [e.model_dump_json() for e in found]
    assert not any(PROVIDER_KEY in p for p in payloads)
    assert not any(key in p for p in payloads)
    auth_event = next(e for e in found if e.kind.value == "auth")
    assert auth_event.entity.key_hash == hashlib.sha256(key.encode()).hexdigest()
    reg_event = next(e for e in found if e.kind.value == "registry")
    sealed = reg_event.entity.auth["api_key"]["api_key"]
    assert sealed.startswith("tgs1:")


async def test_late_replica_rebuilds_the_database_state_including_deletes(
    admin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    s = await _setup(api, "events-replica")
    g = s["gw"]["id"]
    # a second consumer that is then deleted, and an update
    extra = (await api.post(f"/v1/gateways/{g}/consumers", json={"name": "gone"})).json()
    assert (await api.delete(f"/v1/gateways/{g}/consumers/{extra['id']}")).status_code == 204
    r = await api.put(f"/v1/gateways/{g}/consumers/{s['con']['id']}", json={"active": False})
    assert r.status_code == 200

    await wait_for(lambda: admin.container.relay.published and _outbox_drained(admin), timeout=10)
    async with replica(bus.url) as rep:
        state = rep.state
        gw = state.gateway_by_slug("events-replica")
        assert gw is not None and str(gw.id) == g
        consumers = {str(c.id): c for c in state.consumers.values() if str(c.gateway_id) == g}
        db_consumers = (await api.get(f"/v1/gateways/{g}/consumers")).json()["items"]
        assert set(consumers) == {c["id"] for c in db_consumers}
        assert extra["id"] not in consumers
        con = consumers[s["con"]["id"]]
        assert con.active is False and con.slug == s["con"]["slug"]
        assert state.consumer_by_slug(gw.id, con.slug) is con
        key_hash = hashlib.sha256(s["auth"]["api_key"].encode()).hexdigest()
        auth = state.auth_by_key_hash(key_hash)
        assert auth is not None and str(auth.id) == s["auth"]["id"]
        assert [str(x) for x in con.auth_ids] == [s["auth"]["id"]]


async def _at_least(url: str, gateway_id: str, n: int) -> list[Any]:
    found = await read_stream(url, gateway_id)
    return found if len(found) >= n else []


async def _outbox_drained(admin) -> bool:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    async with admin.container.engine.connect() as conn:
        pending = (
            await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        ).scalar_one()
    return pending == 0


async def test_republish_re_emits_the_current_state_of_every_entity(
    admin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    from trustgate_admin.services.republish import republish

    s = await _setup(api, "events-republish")
    g = s["gw"]["id"]
    await wait_for(lambda: _outbox_drained(admin), timeout=10)
    async with live_events(bus.url) as seen:
        count = await republish(admin.container.uow())
        assert count >= 4

        def mine() -> set[tuple[str, str]]:
            return {(e.kind.value, str(e.entity_id)) for e in seen if str(e.gateway_id) == g}

        await wait_for(lambda: len(mine()) >= 4, timeout=10)
    assert mine() == {
        ("gateway", g),
        ("registry", s["reg"]["id"]),
        ("consumer", s["con"]["id"]),
        ("auth", s["auth"]["id"]),
    }
