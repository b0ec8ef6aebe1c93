"""Bad input gets the right 4xx with a JSON error body; secrets never reach the logs."""

from __future__ import annotations

import logging
import time
import uuid

import httpx
import jwt
import pytest

from trustgate_testkit.admin import SECRET


@pytest.fixture
async def gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"bad-{uuid.uuid4().hex[:8]}"})
    return str(r.json()["id"])


def _assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == code


async def test_malformed_json_is_422_validation_failed(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/gateways", content=b'{"slug": "x",', headers={"Content-Type": "application/json"}
    )
    _assert_error(r, 422, "validation_failed")
    assert "malformed JSON" in r.json()["message"]


async def test_unknown_field_is_rejected_naming_it(api: httpx.AsyncClient, gateway: str) -> None:
    r = await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": "a", "colour": "red"})
    _assert_error(r, 422, "validation_failed")
    assert "colour" in r.json()["message"]


async def test_wrong_types_are_422(api: httpx.AsyncClient, gateway: str) -> None:
    r = await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": 42})
    _assert_error(r, 422, "validation_failed")
    r = await api.post(
        f"/v1/gateways/{gateway}/consumers", json={"name": "w", "registries": [{"id": "x"}]}
    )
    _assert_error(r, 422, "validation_failed")
    r = await api.post("/v1/gateways", json=["not", "an", "object"])
    _assert_error(r, 422, "validation_failed")


async def test_duplicate_slug_and_names_are_409(api: httpx.AsyncClient, gateway: str) -> None:
    slug = (await api.get(f"/v1/gateways/{gateway}")).json()["slug"]
    _assert_error(await api.post("/v1/gateways", json={"slug": slug}), 409, "already_exists")
    assert (
        await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": "dup"})
    ).status_code == 201
    _assert_error(
        await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": "dup"}),
        409,
        "already_exists",
    )


async def test_unknown_ids_are_404_and_bad_uuids_400(api: httpx.AsyncClient, gateway: str) -> None:
    missing = uuid.uuid4()
    _assert_error(await api.get(f"/v1/gateways/{missing}"), 404, "not_found")
    _assert_error(await api.get(f"/v1/gateways/{gateway}/consumers/{missing}"), 404, "not_found")
    _assert_error(await api.delete(f"/v1/gateways/{gateway}/auths/{missing}"), 404, "not_found")
    _assert_error(await api.get("/v1/gateways/not-a-uuid"), 400, "invalid_uuid")
    _assert_error(await api.get("/v1/nothing-here"), 404, "not_found")


async def test_paging_rules(api: httpx.AsyncClient) -> None:
    _assert_error(await api.get("/v1/gateways?page=0"), 422, "invalid_pagination")
    _assert_error(await api.get("/v1/gateways?size=abc"), 422, "invalid_pagination")
    _assert_error(await api.get("/v1/gateways?order=desc"), 422, "invalid_sort")
    _assert_error(await api.get("/v1/gateways?sort=colour"), 422, "invalid_sort")
    body = (await api.get("/v1/gateways?size=500")).json()
    assert body["size"] == 200 and body["page"] == 1 and "total" in body


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authorization required"),
        ("Basic abc", "Invalid authorization format"),
        ("Bearer", "Empty token provided"),
        ("Bearer not.a.jwt", "Invalid token"),
    ],
)
async def test_missing_or_malformed_jwt_is_401(admin, header: str | None, message: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    async with httpx.AsyncClient(base_url=admin.url) as client:
        r = await client.get("/v1/gateways", headers=headers)
    _assert_error(r, 401, "unauthorized")
    assert r.json()["message"] == message


async def test_expired_or_wrongly_signed_jwt_is_401(admin) -> None:
    now = int(time.time())
    expired = jwt.encode({"sub": "admin", "exp": now - 10}, SECRET, algorithm="HS256")
    forged = jwt.encode(
        {"sub": "admin", "exp": now + 600},
        "another-secret-key-of-32-bytes-min!!",
        algorithm="HS256",
    )
    playground = jwt.encode({"purpose": "playground", "exp": now + 600}, SECRET, algorithm="HS256")
    none_alg = jwt.encode({"sub": "admin"}, None, algorithm="none")
    async with httpx.AsyncClient(base_url=admin.url) as client:
        for token in (expired, forged, playground, none_alg):
            r = await client.get("/v1/gateways", headers={"Authorization": f"Bearer {token}"})
            _assert_error(r, 401, "unauthorized")


async def test_registry_validation_names_the_field(api: httpx.AsyncClient, gateway: str) -> None:
    url = f"/v1/gateways/{gateway}/registries"
    r = await api.post(
        url, json={"name": "x", "provider": "nope", "auth": {"type": "api_key", "api_key": "k"}}
    )
    _assert_error(r, 422, "validation_failed")
    assert "provider" in r.json()["message"]
    r = await api.post(url, json={"name": "x", "provider": "openai"})
    _assert_error(r, 422, "validation_failed")
    assert "auth" in r.json()["message"]
    r = await api.post(
        url,
        json={
            "name": "x",
            "provider": "openai",
            "auth": {"type": "api_key", "api_key": {"api_key": "***abcd"}},
        },
    )
    _assert_error(r, 422, "validation_failed")
    r = await api.post(
        url,
        json={
            "name": "x",
            "provider": "openai_compatible",
            "auth": {"type": "api_key", "api_key": "k"},
        },
    )
    _assert_error(r, 422, "validation_failed")
    assert "base_url" in r.json()["message"]


async def test_masked_secret_on_update_keeps_the_stored_one(
    api: httpx.AsyncClient, gateway: str, admin
) -> None:
    url = f"/v1/gateways/{gateway}/registries"
    reg = (
        await api.post(
            url,
            json={
                "name": "keep",
                "provider": "openai",
                "auth": {"type": "api_key", "api_key": {"api_key": "sk-original-0001"}},
            },
        )
    ).json()
    r = await api.put(f"{url}/{reg['id']}", json={"auth": reg["auth"], "description": "changed"})
    assert r.status_code == 200 and r.json()["auth"]["api_key"]["api_key"] == "***0001"
    from uuid import UUID

    from trustgate_admin.adapters.db import tables as t

    async with admin.container.sessions() as s:
        row = await s.get(t.RegistryRow, UUID(reg["id"]))
        assert admin.container.box.open_fields(row.auth)["api_key"]["api_key"] == "sk-original-0001"


async def test_policy_settings_are_validated_per_plugin(
    api: httpx.AsyncClient, gateway: str
) -> None:
    url = f"/v1/gateways/{gateway}/policies"
    r = await api.post(
        url, json={"name": "rl", "slug": "ratelimit", "settings": {"limit": 0, "window": "1m"}}
    )
    _assert_error(r, 422, "validation_failed")
    assert "limit" in r.json()["message"]
    r = await api.post(
        url, json={"name": "rl", "slug": "ratelimit", "settings": {"limit": 10, "window": "1m"}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["slug"] == "ratelimit" and r.json()["stages"] == ["pre_request"]
    _assert_error(
        await api.post(url, json={"name": "z", "slug": "no_such_plugin"}), 422, "validation_failed"
    )


async def test_delete_rules_are_409(api: httpx.AsyncClient, gateway: str) -> None:
    con = (await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": "c"})).json()
    auth = (
        await api.post(f"/v1/gateways/{gateway}/auths", json={"name": "k", "type": "api_key"})
    ).json()
    await api.post(f"/v1/gateways/{gateway}/consumers/{con['id']}/auths/{auth['id']}")
    _assert_error(
        await api.delete(f"/v1/gateways/{gateway}/auths/{auth['id']}"), 409, "has_dependents"
    )
    _assert_error(await api.delete(f"/v1/gateways/{gateway}"), 409, "has_dependents")


async def test_no_secret_appears_in_any_log_line(
    api: httpx.AsyncClient, gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-never-log-this-secret-5555"
    r = await api.post(
        f"/v1/gateways/{gateway}/registries",
        json={
            "name": "logged",
            "provider": "openai",
            "auth": {"type": "api_key", "api_key": {"api_key": secret}},
        },
    )
    assert r.status_code == 201
    key = (
        await api.post(f"/v1/gateways/{gateway}/auths", json={"name": "k", "type": "api_key"})
    ).json()["api_key"]
    # an error path that echoes the body must not echo secrets either
    r = await api.post(
        f"/v1/gateways/{gateway}/registries",
        json={
            "name": "logged",
            "provider": "openai",
            "auth": {"type": "api_key", "api_key": {"api_key": secret}},
        },
    )
    assert r.status_code == 409 and secret not in r.text
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert secret not in text and key not in text


async def test_routing_settings_are_checked_and_what_no_plane_does_is_refused(
    api: httpx.AsyncClient, gateway: str
) -> None:
    """Pools, strategies, fallback chains and health checks are stored (the proxy acts on
    them); smart-routing (no scoring service) is refused, and so is a fallback chain that
    loops: a registry named twice, or one of the consumer's own pool."""
    registries = f"/v1/gateways/{gateway}/registries"
    base = {"provider": "openai", "auth": {"type": "api_key", "api_key": "k"}}
    a = (await api.post(registries, json={"name": "a", **base})).json()["id"]
    b = (await api.post(registries, json={"name": "b", **base})).json()["id"]
    consumers = f"/v1/gateways/{gateway}/consumers"
    refused = [
        ({"lb_config": {"algorithm": "smart-routing", "smart_routing": {"tiers": [{}]}}}, "smart"),
        ({"lb_config": {"enabled": True}}, "members"),
        (
            {"fallback": {"enabled": True, "triggers": ["http_5xx"], "chain": [b, b]}},
            "cannot loop",
        ),
        (
            {"fallback": {"enabled": True, "triggers": ["plugin_rejection"], "chain": [b]}},
            "not supported yet",
        ),
        (
            {
                "registries": [{"id": a}],
                "fallback": {"enabled": True, "triggers": ["http_5xx"], "chain": [a]},
            },
            "own fallback",
        ),
    ]
    for n, (extra, why) in enumerate(refused):
        r = await api.post(consumers, json={"name": f"refused-{n}", **extra})
        _assert_error(r, 422, "validation_failed")
        assert why in r.json()["message"], r.text
    ok = await api.post(
        consumers,
        json={
            "name": "resilient",
            "registries": [{"id": a, "weight": 3}],
            "lb_config": {"enabled": False, "algorithm": "weighted-round-robin"},
            "fallback": {
                "enabled": True,
                "triggers": ["http_5xx", "context_window_exceeded", "content_filter"],
                "budget": {"max_attempts": 4, "max_total_latency_ms": 20_000},
                "chain": [b],
            },
        },
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["fallback"]["chain"] == [b]
    semantic: list[tuple[dict[str, object], int]] = [
        ({}, 422),  # no embeddings registry named
        ({"registry_id": str(uuid.uuid4())}, 422),  # not one of the gateway's
        ({"registry_id": b, "api_key": "sk-ignored"}, 422),  # the registry's own key is used
        ({"registry_id": b, "model": "text-embedding-3-small", "timeout_ms": 1500}, 200),
        ({"provider": "openai"}, 200),
    ]
    for config, status in semantic:
        lb = {"algorithm": "semantic", "embedding_config": config}
        r = await api.put(f"{consumers}/{ok.json()['id']}", json={"lb_config": lb})
        assert r.status_code == status, (config, r.text)
    for algorithm in ("round-robin", "random", "least-connections", "ip-hash", "latency"):
        r = await api.put(
            f"{consumers}/{ok.json()['id']}", json={"lb_config": {"algorithm": algorithm}}
        )
        assert r.status_code == 200, r.text

    passive = await api.post(
        registries, json={"name": "hc-passive", "health_checks": {"passive": True}, **base}
    )
    assert passive.status_code == 201, passive.text
    checks = passive.json()["health_checks"]
    assert (checks["threshold"], checks["interval"]) == (3, 60)
    active = await api.post(
        registries,
        json={"name": "hc-active", "health_checks": {"path": "/v1/models", "interval": 15}, **base},
    )
    assert active.status_code == 201, active.text
    r = await api.put(f"{registries}/{a}", json={"health_checks": {"path": "no-slash"}})
    _assert_error(r, 422, "validation_failed")

    timed = {"first_byte_timeout": "2s", "idle_timeout": 5, "total_timeout": "2m"}
    r = await api.post(registries, json={"name": "timed", "provider_options": timed, **base})
    assert r.status_code == 201, r.text
    for wrong in ({"idle_timeout": "soon"}, {"connect_timeout": 0}, {"total_timeout": True}):
        r = await api.post(
            registries, json={"name": "badly-timed", "provider_options": wrong, **base}
        )
        _assert_error(r, 422, "validation_failed")
        assert f"provider_options.{next(iter(wrong))}" in r.json()["message"]


async def test_a_client_certificate_no_plane_presents_is_refused_not_stored(
    api: httpx.AsyncClient,
) -> None:
    """A gateway's ``client_tls`` is acted on by no plane yet: one with content (a private
    key among it) is refused with a 422 that says so, on create and on update, and the key
    is never echoed; an empty one is accepted."""
    tls = {"cert": "-----BEGIN CERTIFICATE-----", "key": "-----BEGIN PRIVATE KEY-----x"}
    r = await api.post("/v1/gateways", json={"client_tls": tls})
    _assert_error(r, 422, "validation_failed")
    assert "client_tls" in r.text and "not supported" in r.text and "PRIVATE" not in r.text
    ok = await api.post("/v1/gateways", json={"client_tls": {}})
    assert ok.status_code == 201, ok.text
    r = await api.put(f"/v1/gateways/{ok.json()['id']}", json={"client_tls": tls})
    _assert_error(r, 422, "validation_failed")
