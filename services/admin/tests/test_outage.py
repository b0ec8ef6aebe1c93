"""With NATS stopped, mutations still succeed; when it returns, every event is delivered."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from trustgate_testkit.admin import admin_settings, live_events, replica, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

pytestmark = pytest.mark.slow


async def test_mutations_during_a_nats_outage_are_delivered_in_order_after_it(
    database_factory, nats_server: NatsServer
) -> None:
    dsn = await database_factory("tg_outage")
    async with (
        running_admin(admin_settings(dsn, nats_server.url)) as admin,
        admin.client() as api,
        live_events(nats_server.url) as seen,
    ):
        gw = (await api.post("/v1/gateways", json={"slug": "outage"})).json()
        g = gw["id"]
        await wait_for(lambda: seen, timeout=10)

        nats_server.stop()
        consumers: list[dict[str, Any]] = []
        for i in range(5):
            r = await api.post(f"/v1/gateways/{g}/consumers", json={"name": f"c{i}"})
            assert r.status_code == 201, r.text
            consumers.append(r.json())
        for c in consumers[:3]:
            r = await api.put(f"/v1/gateways/{g}/consumers/{c['id']}", json={"active": False})
            assert r.status_code == 200
        r = await api.delete(f"/v1/gateways/{g}/consumers/{consumers[4]['id']}")
        assert r.status_code == 204
        auth = (
            await api.post(f"/v1/gateways/{g}/auths", json={"name": "k", "type": "api_key"})
        ).json()
        expected_events = 1 + 5 + 3 + 1 + 1

        nats_server.start()

        await wait_for(
            lambda: len(seen) >= expected_events, timeout=30, message="pending events not delivered"
        )
        await wait_for(lambda: admin.container.relay.published >= expected_events, timeout=10)
        events = list(seen)
        assert len(events) == expected_events, "an event was lost or duplicated"
        per_entity: dict[str, list[int]] = defaultdict(list)
        for e in events:
            per_entity[str(e.entity_id)].append(e.revision)
        for revisions in per_entity.values():
            assert revisions == sorted(revisions), "events of one entity arrived out of order"
            assert len(set(revisions)) == len(revisions)

        async with replica(nats_server.url) as rep:
            mine = {str(c.id): c for c in rep.state.consumers.values() if str(c.gateway_id) == g}
            assert set(mine) == {c["id"] for c in consumers[:4]}
            assert [mine[c["id"]].active for c in consumers[:4]] == [False, False, False, True]
            assert (
                str(
                    rep.state.auths[
                        next(iter(k for k in rep.state.auths if str(k) == auth["id"]))
                    ].id
                )
                == auth["id"]
            )
