"""What an MCP consumer takes: the LLM-only routing settings (``lb_config``, ``fallback``,
``model_policies``, a registry ``weight``) are refused with 422 naming the field, on
create, update and attach, since the MCP plane never reads them; an ``oidc`` auth attaches
(the MCP plane accepts its tokens: ``services/mcp/tests/integration/test_oidc_consumer.py``)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

URL = "https://tools.example.com/mcp"


async def _setup(api: httpx.AsyncClient) -> tuple[str, str]:
    r = await api.post("/v1/gateways", json={"slug": f"mcpf-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    gw = str(r.json()["id"])
    r = await api.post(
        f"/v1/gateways/{gw}/registries",
        json={"name": "tools", "type": "MCP", "mcp_target": {"url": URL}},
    )
    assert r.status_code == 201, r.text
    return gw, str(r.json()["id"])


def _ignored(reg: str) -> list[tuple[dict[str, Any], str]]:
    return [
        ({"lb_config": {"enabled": True, "members": [{"registry_id": reg}]}}, "lb_config"),
        (
            {"fallback": {"enabled": True, "triggers": ["timeout"], "chain": [reg]}},
            "fallback",
        ),
        ({"model_policies": [{"registry_id": reg, "allowed": ["m"]}]}, "model_policies"),
        ({"registries": [{"id": reg, "weight": 5}]}, "registries[].weight"),
    ]


@pytest.mark.parametrize("case", range(4))
async def test_llm_routing_fields_are_refused_on_an_mcp_consumer(
    api: httpx.AsyncClient, case: int
) -> None:
    gw, reg = await _setup(api)
    body, field = _ignored(reg)[case]
    created = await api.post(
        f"/v1/gateways/{gw}/consumers",
        json={"name": "agent", "type": "MCP", "registries": [{"id": reg}], **body},
    )
    assert created.status_code == 422, created.text
    assert created.json()["message"].startswith(f"{field}: not supported on MCP consumers")

    ok = await api.post(
        f"/v1/gateways/{gw}/consumers",
        json={"name": "agent", "type": "MCP", "registries": [{"id": reg}]},
    )
    assert ok.status_code == 201, ok.text
    consumer = ok.json()["id"]
    updated = await api.put(f"/v1/gateways/{gw}/consumers/{consumer}", json=body)
    assert updated.status_code == 422, updated.text
    assert field in updated.json()["message"]


async def test_default_routing_values_and_weight_1_are_accepted(api: httpx.AsyncClient) -> None:
    gw, reg = await _setup(api)
    created = await api.post(
        f"/v1/gateways/{gw}/consumers",
        json={
            "name": "agent",
            "type": "MCP",
            "registries": [{"id": reg, "weight": 1}],
            "lb_config": {"enabled": False},
            "fallback": {"enabled": False},
            "model_policies": [],
        },
    )
    assert created.status_code == 201, created.text


async def test_attaching_a_registry_with_a_weight_is_refused(api: httpx.AsyncClient) -> None:
    gw, reg = await _setup(api)
    created = await api.post(f"/v1/gateways/{gw}/consumers", json={"name": "a", "type": "MCP"})
    assert created.status_code == 201, created.text
    path = f"/v1/gateways/{gw}/consumers/{created.json()['id']}/registries/{reg}"
    refused = await api.post(path, json={"weight": 3})
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"].startswith("weight:")
    assert (await api.post(path)).status_code == 204


async def test_an_oidc_auth_attaches_to_an_mcp_consumer(api: httpx.AsyncClient) -> None:
    gw, reg = await _setup(api)
    auth = await api.post(
        f"/v1/gateways/{gw}/auths",
        json={
            "name": "corp-sso",
            "type": "oidc",
            "config": {
                "oidc": {
                    "issuer": "https://idp.example.com",
                    "audiences": ["trustgate"],
                    "jwks_url": "https://idp.example.com/jwks",
                }
            },
        },
    )
    assert auth.status_code == 201, auth.text
    created = await api.post(
        f"/v1/gateways/{gw}/consumers",
        json={"name": "agent", "type": "MCP", "registries": [{"id": reg}]},
    )
    consumer = created.json()["id"]
    path = f"/v1/gateways/{gw}/consumers/{consumer}/auths/{auth.json()['id']}"
    assert (await api.post(path)).status_code == 204
    got = await api.get(f"/v1/gateways/{gw}/consumers/{consumer}")
    assert auth.json()["id"] in [str(a) for a in got.json()["auth_ids"]]
