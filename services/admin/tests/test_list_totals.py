"""Every list reports the number of matching items in ``total``, whatever the page size."""

from __future__ import annotations

import uuid

import httpx


async def _count_by_paging(api: httpx.AsyncClient, url: str) -> int:
    seen, page = 0, 1
    while True:
        body = (await api.get(url, params={"page": page, "size": 200})).json()
        seen += len(body["items"])
        if len(body["items"]) < 200:
            return seen
        page += 1


async def test_the_gateway_list_total_counts_every_gateway(api: httpx.AsyncClient) -> None:
    for _ in range(3):
        r = await api.post("/v1/gateways", json={"slug": f"tot-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
    body = (await api.get("/v1/gateways", params={"size": 1})).json()
    assert len(body["items"]) == 1
    assert body["total"] >= 3
    assert body["total"] == await _count_by_paging(api, "/v1/gateways")


async def test_every_child_list_total_counts_its_items(api: httpx.AsyncClient) -> None:
    gw = (await api.post("/v1/gateways", json={"slug": f"kids-{uuid.uuid4().hex[:8]}"})).json()
    base = f"/v1/gateways/{gw['id']}"
    creates = {
        "registries": lambda n: {
            "name": f"r{n}",
            "provider": "openai",
            "auth": {"type": "api_key", "api_key": "k"},
        },
        "consumers": lambda n: {"name": f"c{n}"},
        "auths": lambda n: {"name": f"a{n}", "type": "api_key"},
        "policies": lambda n: {
            "name": f"p{n}",
            "slug": "ratelimit",
            "settings": {"limit": 10, "window": "1m"},
        },
        "roles": lambda n: {"name": f"role{n}"},
    }
    for kind, body_of in creates.items():
        for n in range(3):
            r = await api.post(f"{base}/{kind}", json=body_of(n))
            assert r.status_code == 201, r.text
        listed = (await api.get(f"{base}/{kind}", params={"size": 2})).json()
        assert len(listed["items"]) == 2, kind
        assert listed["total"] == 3, kind
        searched = (await api.get(f"{base}/{kind}", params={"search": "1", "size": 1})).json()
        assert searched["total"] == 1, kind


async def test_policies_sorted_by_type_are_ordered_by_plugin(api: httpx.AsyncClient) -> None:
    """A policy's type is its plugin (slug); sorting by it once answered 500."""
    gw = (await api.post("/v1/gateways", json={"slug": f"sort-{uuid.uuid4().hex[:8]}"})).json()
    url = f"/v1/gateways/{gw['id']}/policies"
    for name, slug, settings in (
        ("b", "requestsize", {"allowed_payload_size": 1}),
        ("a", "ratelimit", {"limit": 10, "window": "1m"}),
    ):
        r = await api.post(url, json={"name": name, "slug": slug, "settings": settings})
        assert r.status_code == 201, r.text
    r = await api.get(url, params={"sort": "type", "order": "desc"})
    assert r.status_code == 200, r.text
    slugs = [p["slug"] for p in r.json()["items"]]
    assert len(slugs) == 2 and slugs == sorted(slugs, reverse=True)
