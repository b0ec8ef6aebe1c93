"""Bad input never gets a 500: NUL characters, integers beyond 64 bits, JSON nested too
deep and pages past the end are refused with a 4xx naming what was wrong, and the client's
keep-alive connection survives the refusal."""

from __future__ import annotations

import asyncio
import http.client
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from trustgate_admin.api.security import mint_admin_token


@pytest.fixture
async def gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"lim-{uuid.uuid4().hex[:8]}"})
    return str(r.json()["id"])


def _refused(r: httpx.Response, status: int, code: str, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    for word in words:
        assert word in body["message"], body


def _nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = {"a": doc}
    return doc


async def test_a_nul_character_in_a_text_field_is_422_naming_the_field(
    api: httpx.AsyncClient, gateway: str
) -> None:
    r = await api.post("/v1/gateways", json={"name": "evil\u0000name"})
    _refused(r, 422, "validation_failed", "name", "NUL")
    r = await api.post(f"/v1/gateways/{gateway}/consumers", json={"name": "c\u0000"})
    _refused(r, 422, "validation_failed", "name", "NUL")


async def test_a_nul_character_anywhere_in_free_form_json_is_422(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/gateways", json={"metadata": {"team": ["ok", "bad\u0000"]}})
    _refused(r, 422, "validation_failed", "metadata.team.1", "NUL")
    r = await api.post("/v1/gateways", json={"client_tls": {"k\u0000ey": 1}})
    _refused(r, 422, "validation_failed", "client_tls", "NUL")


async def test_an_integer_beyond_64_bits_in_free_form_json_is_422(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/gateways", json={"entitlements": {"tokens": 2**64}})
    _refused(r, 422, "validation_failed", "entitlements.tokens", "64-bit")
    r = await api.post("/v1/gateways", json={"metadata": {"n": -(2**63) - 1}})
    _refused(r, 422, "validation_failed", "metadata.n")


async def test_a_float_beyond_64_bits_is_422_not_a_later_500(api: httpx.AsyncClient) -> None:
    """JSONB stores 1e20 as the exact integer 10**20: accepted, it made every later
    change of the gateway fail (the bus encoder refuses integers beyond 64 bits)."""
    r = await api.post("/v1/gateways", json={"metadata": {"big": 1e20}})
    _refused(r, 422, "validation_failed", "metadata.big", "64-bit")
    ok = await api.post("/v1/gateways", json={"metadata": {"big": 9.2e18, "small": 1e-300}})
    assert ok.status_code == 201, ok.text
    assert (await api.put(f"/v1/gateways/{ok.json()['id']}", json={})).status_code == 200


async def test_a_priority_beyond_the_column_range_is_422(
    api: httpx.AsyncClient, gateway: str
) -> None:
    r = await api.post(
        f"/v1/gateways/{gateway}/policies",
        json={
            "name": "big",
            "slug": "ratelimit",
            "priority": 2**40,
            "settings": {"limit": 10, "window": "1m"},
        },
    )
    _refused(r, 422, "validation_failed", "priority")


async def test_json_nested_too_deep_is_refused_with_a_clear_message(
    api: httpx.AsyncClient,
) -> None:
    for depth in (300, 100_000):
        text = '{"metadata":' + '{"a":' * depth + "1" + "}" * depth + "}"
        r = await api.post(
            "/v1/gateways", content=text, headers={"Content-Type": "application/json"}
        )
        _refused(r, 422, "validation_failed", "nested deeper than")
    r = await api.post("/v1/gateways", json={"metadata": _nested(20)})
    assert r.status_code == 201, r.text


async def test_a_page_past_any_real_list_is_422_invalid_pagination(
    api: httpx.AsyncClient, gateway: str
) -> None:
    r = await api.get("/v1/gateways", params={"page": "99999999999999999999"})
    _refused(r, 422, "invalid_pagination", "page")
    r = await api.get(f"/v1/gateways/{gateway}/consumers", params={"page": 10**12, "size": 200})
    _refused(r, 422, "invalid_pagination", "page")


async def test_a_nul_character_in_the_query_is_422_naming_the_parameter(
    api: httpx.AsyncClient, gateway: str
) -> None:
    r = await api.get("/v1/gateways", params={"search": "\u0000"})
    _refused(r, 422, "validation_failed", "query.search", "NUL")
    r = await api.get(f"/v1/gateways/{gateway}/registries", params={"provider": "a\u0000"})
    _refused(r, 422, "validation_failed", "query.provider", "NUL")


async def test_a_refused_request_keeps_the_keep_alive_connection(admin) -> None:  # type: ignore[no-untyped-def]
    """A 4xx is an answer, not a crash: the same connection serves the next request (a
    blocking http.client connection, so it runs in a thread beside the served admin)."""
    await asyncio.to_thread(_bad_then_good_on_one_connection, admin)


def _bad_then_good_on_one_connection(admin) -> None:  # type: ignore[no-untyped-def]
    url = urlsplit(admin.url)
    headers = {
        "Authorization": f"Bearer {mint_admin_token(admin.settings.server_secret_key)}",
        "Content-Type": "application/json",
    }
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", "/v1/gateways", body=b'{"name": "a\\u0000"}', headers=headers)
        bad = conn.getresponse()
        assert bad.status == 422, bad.read()
        assert bad.getheader("connection", "").lower() != "close"
        bad.read()
        sock = conn.sock
        conn.request("GET", "/v1/gateways?size=1", headers=headers)
        good = conn.getresponse()
        assert good.status == 200
        good.read()
        assert conn.sock is sock, "the connection was closed after the 4xx"
    finally:
        conn.close()
