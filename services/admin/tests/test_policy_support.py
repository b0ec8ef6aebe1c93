"""A policy is stored only when a plane (LLM or MCP) enforces its plugin: the others
(the external content guards, prompt transforms — later issues) are refused with a 422
that says so, and the policies catalog tells which are enforced, and where. A policy the
plane of a consumer it is attached to would ignore is refused too, naming the plane."""

from __future__ import annotations

import uuid

import httpx
import pytest

from trustgate_core.plugins import PLUGINS
from trustgate_core.policy.runners import LLM_RUNNERS, MCP_RUNNERS

NOT_ENFORCED = sorted(
    spec.id for spec in PLUGINS if spec.id not in LLM_RUNNERS and spec.id not in MCP_RUNNERS
)
PER_TOOL = {"rules": [{"tool": "search", "windows": [{"duration": "1m", "max": 5}]}]}


@pytest.fixture
async def gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"sup-{uuid.uuid4().hex[:8]}"})
    return str(r.json()["id"])


async def _consumer(api: httpx.AsyncClient, gateway: str, plane: str) -> str:
    r = await api.post(
        f"/v1/gateways/{gateway}/consumers", json={"name": f"{plane}-c", "type": plane}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _policy(api: httpx.AsyncClient, gateway: str, slug: str, settings: object) -> str:
    r = await api.post(
        f"/v1/gateways/{gateway}/policies",
        json={"name": f"{slug}-{uuid.uuid4().hex[:6]}", "slug": slug, "settings": settings},
    )
    assert r.status_code == 201, r.text
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
    assert {
        "rate_limiter",
        "request_size_limiter",
        "per_tool_rate_limiter",
        "tool_allowlist",
    } <= set(MCP_RUNNERS)


@pytest.mark.parametrize("plugin", ["trustguard", "prompt_compression"])
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


async def test_a_per_tool_limit_is_accepted_now_the_mcp_plane_enforces_it(
    api: httpx.AsyncClient, gateway: str
) -> None:
    policy = await _policy(api, gateway, "per_tool_rate_limiter", PER_TOOL)
    stored = (await api.get(f"/v1/gateways/{gateway}/policies/{policy}")).json()
    assert stored["slug"] == "per_tool_rate_limiter"
    assert stored["settings"]["rules"][0]["tool"] == "search"


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
        json={"slug": "prompt_compression", "settings": _valid("prompt_compression")},
    )
    assert r.status_code == 422 and "not supported yet" in r.json()["message"]


async def test_a_policy_attached_to_a_consumer_cannot_become_one_its_plane_ignores(
    api: httpx.AsyncClient, gateway: str
) -> None:
    llm = await _consumer(api, gateway, "LLM")
    policy = await _policy(api, gateway, "rate_limiter", {"limit": 5, "window": "1m"})
    attached = await api.post(f"/v1/gateways/{gateway}/consumers/{llm}/policies/{policy}")
    assert attached.status_code == 204, attached.text
    url = f"/v1/gateways/{gateway}/policies/{policy}"
    r = await api.put(url, json={"slug": "per_tool_rate_limiter", "settings": PER_TOOL})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (
        "policy_id: plugin 'per_tool_rate_limiter' is not enforced on LLM consumers "
        "(enforced on MCP consumers only)"
    )
    assert (await api.get(url)).json()["slug"] == "rate_limiter"  # unchanged


async def test_a_per_tool_limit_on_an_mcp_consumer_can_only_reject(
    api: httpx.AsyncClient, gateway: str
) -> None:
    mcp = await _consumer(api, gateway, "MCP")
    policy = await _policy(api, gateway, "per_tool_rate_limiter", PER_TOOL)
    attached = await api.post(f"/v1/gateways/{gateway}/consumers/{mcp}/policies/{policy}")
    assert attached.status_code == 204, attached.text
    rules = [{**PER_TOOL["rules"][0], "behavior": "inject_error_result"}]
    r = await api.put(
        f"/v1/gateways/{gateway}/policies/{policy}", json={"settings": {"rules": rules}}
    )
    assert r.status_code == 422, r.text
    assert "rules[0].behavior" in r.json()["message"]
    assert "MCP consumer" in r.json()["message"]


async def test_the_catalog_says_which_plugins_are_enforced_and_where(
    api: httpx.AsyncClient,
) -> None:
    catalog = (await api.get("/v1/policies-catalog")).json()
    items = {item["slug"]: item for group in catalog["groups"] for item in group["items"]}
    enforced = {slug: item["enforced"] for slug, item in items.items()}
    assert enforced["rate_limiter"] is True and enforced["semantic_cache"] is True
    assert enforced["pii"] is True and enforced["trustguard"] is False
    assert enforced["per_tool_rate_limiter"] is True
    assert sorted(slug for slug, on in enforced.items() if not on) == NOT_ENFORCED
    assert items["per_tool_rate_limiter"]["enforced_on"] == ["MCP"]
    assert items["tool_allowlist"]["enforced_on"] == ["LLM", "MCP"]
    assert items["token_rate_limiter"]["enforced_on"] == ["LLM"]


def _valid(plugin: str) -> dict[str, object]:
    valid: dict[str, dict[str, object]] = {
        "trustguard": {"collector_id": str(uuid.uuid4())},
        "prompt_compression": {},
    }
    return valid[plugin]


async def test_a_policy_its_consumers_plane_ignores_cannot_be_attached(
    api: httpx.AsyncClient, gateway: str
) -> None:
    llm, mcp = await _consumer(api, gateway, "LLM"), await _consumer(api, gateway, "MCP")
    per_tool = await _policy(api, gateway, "per_tool_rate_limiter", PER_TOOL)
    tokens = await _policy(api, gateway, "model_allowlist", {"allowed_models": ["gpt-4o*"]})

    refused = await api.post(f"/v1/gateways/{gateway}/consumers/{llm}/policies/{per_tool}")
    assert refused.status_code == 422
    assert "not enforced on LLM consumers" in refused.text
    refused = await api.post(f"/v1/gateways/{gateway}/consumers/{mcp}/policies/{tokens}")
    assert refused.status_code == 422
    assert "not enforced on MCP consumers" in refused.text

    attached = await api.post(f"/v1/gateways/{gateway}/consumers/{mcp}/policies/{per_tool}")
    assert attached.status_code == 204
    # nor can the consumer move to a plane that would ignore it
    moved = await api.put(f"/v1/gateways/{gateway}/consumers/{mcp}", json={"type": "LLM"})
    assert moved.status_code == 422
    assert "not enforced on LLM consumers" in moved.text
