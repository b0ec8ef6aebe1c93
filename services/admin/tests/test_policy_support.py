"""A policy is stored only when a plane enforces its plugin: the others (semantic cache,
content guards, prompt transforms, per-tool limits — later issues) are refused with a 422
that says so, and the policies catalog tells which are enforced."""

from __future__ import annotations

import uuid

import httpx
import pytest

from trustgate_core.plugins import PLUGINS
from trustgate_core.policy.runners import LLM_RUNNERS

NOT_ENFORCED = sorted(spec.id for spec in PLUGINS if spec.id not in LLM_RUNNERS)


@pytest.fixture
async def gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"sup-{uuid.uuid4().hex[:8]}"})
    return str(r.json()["id"])


def test_the_limit_and_content_plugins_are_enforced() -> None:
    assert {
        "rate_limiter",
        "token_rate_limiter",
        "request_size_limiter",
        "cors",
        "model_allowlist",
        "tool_allowlist",
        "regex_replace",
    } <= set(LLM_RUNNERS)


@pytest.mark.parametrize("plugin", ["semantic_cache", "trustguard", "prompt_compression"])
async def test_a_policy_no_plane_enforces_is_refused_not_stored(
    api: httpx.AsyncClient, gateway: str, plugin: str
) -> None:
    assert plugin in NOT_ENFORCED
    url = f"/v1/gateways/{gateway}/policies"
    r = await api.post(url, json={"name": "p", "slug": plugin, "settings": _valid(plugin)})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
    assert "not supported yet" in r.json()["message"]
    listed = (await api.get(url)).json()
    assert listed["items"] == []


async def test_a_stored_policy_cannot_be_switched_to_a_plugin_no_plane_enforces(
    api: httpx.AsyncClient, gateway: str
) -> None:
    url = f"/v1/gateways/{gateway}/policies"
    created = await api.post(
        url, json={"name": "rl", "slug": "rate_limiter", "settings": {"limit": 5, "window": "1m"}}
    )
    assert created.status_code == 201, created.text
    r = await api.put(
        f"{url}/{created.json()['id']}",
        json={"slug": "semantic_cache", "settings": _valid("semantic_cache")},
    )
    assert r.status_code == 422 and "not supported yet" in r.json()["message"]


async def test_the_catalog_says_which_plugins_are_enforced(api: httpx.AsyncClient) -> None:
    catalog = (await api.get("/v1/policies-catalog")).json()
    enforced = {
        item["slug"]: item["enforced"] for group in catalog["groups"] for item in group["items"]
    }
    assert enforced["rate_limiter"] is True and enforced["semantic_cache"] is False
    assert sorted(slug for slug, on in enforced.items() if not on) == NOT_ENFORCED


def _valid(plugin: str) -> dict[str, object]:
    return {
        "semantic_cache": {},
        "trustguard": {"collector_id": str(uuid.uuid4())},
        "prompt_compression": {},
    }[plugin]
