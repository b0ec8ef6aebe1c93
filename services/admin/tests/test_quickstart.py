"""The seed's admin quick start, steps 1-5, with its exact paths and fields."""

from __future__ import annotations

import httpx

from trustgate_core.ids import API_KEY_PREFIX


async def test_seed_quickstart_creates_gateway_registry_consumer_key_and_attaches(
    api: httpx.AsyncClient,
) -> None:
    # 1. gateway
    r = await api.post("/v1/gateways", json={"name": "My Gateway", "slug": "demo-quickstart"})
    assert r.status_code == 201, r.text
    gw = r.json()
    assert gw["slug"] == "demo-quickstart" and gw["id"] and gw["status"] == "active"
    assert gw["hosts"]["proxy"] == "demo-quickstart.llm.neuraltrust.ai"
    gw_id = gw["id"]

    # 2. registry
    r = await api.post(
        f"/v1/gateways/{gw_id}/registries",
        json={
            "name": "openai-primary",
            "provider": "openai",
            "auth": {"type": "api_key", "api_key": {"api_key": "sk-test-quickstart-1234"}},
        },
    )
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["id"] and reg["type"] == "LLM" and reg["provider"] == "openai"
    assert reg["auth"] == {"type": "api_key", "api_key": {"api_key": "***1234"}}
    reg_id = reg["id"]

    # 3. consumer
    r = await api.post(
        f"/v1/gateways/{gw_id}/consumers",
        json={"name": "my-app", "registries": [{"id": reg_id}]},
    )
    assert r.status_code == 201, r.text
    con = r.json()
    assert len(con["slug"]) == 8 and con["slug"].isalnum()
    assert con["registry_ids"] == [reg_id]
    assert con["registry_weights"] == [{"registry_id": reg_id, "weight": 1}]
    con_id = con["id"]

    # 4. API key, in clear exactly once
    r = await api.post(
        f"/v1/gateways/{gw_id}/auths", json={"name": "my-app-key", "type": "api_key"}
    )
    assert r.status_code == 201, r.text
    auth = r.json()
    key = auth["api_key"]
    assert key.startswith(API_KEY_PREFIX) and len(key) == 3 + 43
    assert auth["key_prefix"] == key[:8] and auth["key_suffix"] == key[-4:]
    assert "key_hash" not in auth
    auth_id = auth["id"]
    again = (await api.get(f"/v1/gateways/{gw_id}/auths/{auth_id}")).json()
    assert "api_key" not in again
    listed = (await api.get(f"/v1/gateways/{gw_id}/auths")).json()
    assert all("api_key" not in item for item in listed["items"])

    # 5. attach the key to the consumer (idempotent)
    r = await api.post(f"/v1/gateways/{gw_id}/consumers/{con_id}/auths/{auth_id}")
    assert r.status_code == 204
    r = await api.post(f"/v1/gateways/{gw_id}/consumers/{con_id}/auths/{auth_id}")
    assert r.status_code == 204
    con = (await api.get(f"/v1/gateways/{gw_id}/consumers/{con_id}")).json()
    assert con["auth_ids"] == [auth_id]


async def test_gateway_without_slug_gets_a_generated_one(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/gateways", json={})
    assert r.status_code == 201
    slug = r.json()["slug"]
    assert slug.startswith("gw-") and len(slug) == 15


async def test_lists_show_each_items_links(api: httpx.AsyncClient) -> None:
    g = (await api.post("/v1/gateways", json={"slug": "lists-links"})).json()["id"]
    reg = (
        await api.post(
            f"/v1/gateways/{g}/registries",
            json={"name": "r", "provider": "openai", "auth": {"type": "api_key", "api_key": "k"}},
        )
    ).json()["id"]
    a = (
        await api.post(
            f"/v1/gateways/{g}/consumers",
            json={"name": "a", "registries": [{"id": reg, "weight": 3}]},
        )
    ).json()["id"]
    b = (await api.post(f"/v1/gateways/{g}/consumers", json={"name": "b"})).json()["id"]
    key = (await api.post(f"/v1/gateways/{g}/auths", json={"name": "k", "type": "api_key"})).json()
    pol = (
        await api.post(
            f"/v1/gateways/{g}/policies",
            json={"name": "p", "slug": "rate_limiter", "settings": {"limit": 5, "window": "1m"}},
        )
    ).json()["id"]
    for path in (f"auths/{key['id']}", f"policies/{pol}"):
        assert (await api.post(f"/v1/gateways/{g}/consumers/{b}/{path}")).status_code == 204

    consumers = {c["id"]: c for c in (await api.get(f"/v1/gateways/{g}/consumers")).json()["items"]}
    assert consumers[a]["registry_weights"] == [{"registry_id": reg, "weight": 3}]
    assert consumers[a]["auth_ids"] == [] and consumers[a]["policy_ids"] == []
    assert consumers[b]["auth_ids"] == [key["id"]] and consumers[b]["policy_ids"] == [pol]
    policies = (await api.get(f"/v1/gateways/{g}/policies")).json()["items"]
    assert [p["consumer_ids"] for p in policies] == [[b]]
