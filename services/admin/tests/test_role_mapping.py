"""A role's ``oidc_mapping`` is checked when stored: a mapping the proxy could never match
(an unknown operator, no rules, no values) is a 422, not a role that silently matches no
token."""

from __future__ import annotations

import uuid

import httpx
import pytest


@pytest.fixture
async def roles(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"roles-{uuid.uuid4().hex[:8]}"})
    return f"/v1/gateways/{r.json()['id']}/roles"


async def test_a_claim_mapping_is_stored_as_given(api: httpx.AsyncClient, roles: str) -> None:
    mapping = {
        "match": "all",
        "claims": [
            {"path": "realm_access.roles", "op": "contains_any", "values": ["llm-users"]},
            {"path": "email_verified", "values": [True]},
        ],
    }
    r = await api.post(roles, json={"name": "analysts", "oidc_mapping": mapping})
    assert r.status_code == 201, r.text
    assert r.json()["oidc_mapping"]["claims"][0]["op"] == "contains_any"


@pytest.mark.parametrize(
    "mapping",
    [
        {"claims": []},
        {"claims": [{"path": "groups", "op": "regex", "values": ["a"]}]},
        {"claims": [{"path": "groups", "values": []}]},
        {"match": "most", "claims": [{"path": "groups", "values": ["a"]}]},
        {"claims": [{"values": ["a"]}]},
        {"rules": [{"path": "groups", "values": ["a"]}]},
    ],
)
async def test_a_mapping_that_could_never_match_is_refused(
    api: httpx.AsyncClient, roles: str, mapping: dict[str, object]
) -> None:
    r = await api.post(roles, json={"name": "r", "oidc_mapping": mapping})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
