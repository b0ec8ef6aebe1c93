"""A gateway's ``governance`` switches (receipts, per-request audit entries) are stored as
given, merged on update so a rotation's key version survives a PUT, reach the config
event the planes follow, and anything else in them is refused with a 422. A consumer's
``metadata`` labels (the chargeback CSV's columns) are stored, replaced and checked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trustgate_testkit.admin import RunningAdmin, read_stream
from trustgate_testkit.fixtures import wait_for

DEFAULTS = {"receipts": False, "receipt_key_version": 1, "audit_requests": False}


async def test_the_switches_are_off_by_default_and_stored_as_given(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/gateways", json={})
    assert r.status_code == 201, r.text
    assert r.json()["governance"] == DEFAULTS
    r = await api.post("/v1/gateways", json={"governance": {"receipts": True}})
    assert r.json()["governance"] == {**DEFAULTS, "receipts": True}


async def test_an_update_changes_only_the_switches_it_names(api: httpx.AsyncClient) -> None:
    gid = (await api.post("/v1/gateways", json={"governance": {"receipts": True}})).json()["id"]
    r = await api.put(f"/v1/gateways/{gid}", json={"governance": {"audit_requests": True}})
    assert r.status_code == 200, r.text
    expected = {**DEFAULTS, "receipts": True, "audit_requests": True}
    assert (await api.get(f"/v1/gateways/{gid}")).json()["governance"] == expected
    r = await api.put(f"/v1/gateways/{gid}", json={"name": "renamed"})
    assert r.json()["governance"] == expected


async def test_the_planes_get_the_switches_in_the_gateway_event(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    gid = (await api.post("/v1/gateways", json={"governance": {"receipts": True}})).json()["id"]

    async def published() -> list[Any]:
        return [e for e in await read_stream(admin.settings.nats_url, gid) if e.kind == "gateway"]

    events = await wait_for(published, timeout=10, message="no gateway event")
    assert events[-1].entity.governance.receipts is True


@pytest.mark.parametrize(
    ("governance", "says"),
    [
        ({"receipt_key_version": 7}, "receipt_key_version"),  # raised by a rotation only
        ({"receipts": "yes"}, "receipts"),
        ({"sign_everything": True}, "sign_everything"),
    ],
)
async def test_anything_else_is_refused_saying_what(
    api: httpx.AsyncClient, governance: dict[str, Any], says: str
) -> None:
    r = await api.post("/v1/gateways", json={"governance": governance})
    assert r.status_code == 422, r.text
    assert says in r.json()["message"]


async def test_a_consumers_metadata_labels_are_stored_changed_and_checked(
    api: httpx.AsyncClient,
) -> None:
    gid = (await api.post("/v1/gateways", json={})).json()["id"]
    labels = {"department": "R&D", "cost_center": "CC-100", "headcount": 12}
    r = await api.post(f"/v1/gateways/{gid}/consumers", json={"name": "a", "metadata": labels})
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == labels
    cid = r.json()["id"]
    r = await api.put(f"/v1/gateways/{gid}/consumers/{cid}", json={"metadata": {"team": "x"}})
    assert r.status_code == 200, r.text
    assert (await api.get(f"/v1/gateways/{gid}/consumers/{cid}")).json()["metadata"] == {
        "team": "x"
    }
    for bad in ({"nested": {"a": 1}}, {"": "x"}, {f"k{i}": i for i in range(51)}):
        r = await api.post(f"/v1/gateways/{gid}/consumers", json={"name": "b", "metadata": bad})
        assert r.status_code == 422, r.text
        assert "metadata" in r.json()["message"]
