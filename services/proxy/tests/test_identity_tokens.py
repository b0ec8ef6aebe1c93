"""OIDC/OAuth2 consumers on the proxy, against a local IdP, through the official openai SDK
(``api_key=<jwt>`` is sent as ``Authorization: Bearer``): a valid token is served and its
subject recorded; every forged, stale or misdirected token is refused; the JWKS is fetched
again once on a key rotation; opaque tokens go through introspection; and an IdP that goes
down refuses new tokens quickly while cached ones keep working."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from trustgate_core.ids import uuid7
from trustgate_core.models import Auth, Consumer
from trustgate_testkit.idp import LocalIdp, SigningKey
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp()
    yield server
    server.stop()


async def token_consumer(
    tenant: Tenant, idp: LocalIdp, name: str, kind: str = "oidc", **config: Any
) -> Consumer:
    """A consumer whose one auth is an ``kind`` auth trusting ``idp`` (audience
    ``trustgate`` unless ``config`` says otherwise)."""
    now = datetime.now(UTC)
    settings = {"issuer": idp.issuer, "audiences": ["trustgate"], "jwks_url": idp.jwks_url}
    auth = Auth(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name=f"{name}-{kind}",
        type=kind,  # type: ignore[arg-type]
        config={kind: {**settings, **config}},
    )
    tenant.auths[auth.name] = auth
    await tenant.put_auth(auth.name)
    if "primary" not in tenant.registries:
        raise AssertionError("add the primary registry first")
    await tenant.add_consumer(name, ["primary"], with_key=False)
    return await tenant.put_consumer(name, auth_ids=[auth.id])


def sdk(proxy: Any, tenant: Tenant, consumer: Consumer, token: str) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(consumer),
            api_key=token,
            max_retries=0,
            timeout=10,
            default_headers={"X-AG-Gateway-Slug": tenant.slug},
        )
    )


async def status_of(proxy: Any, tenant: Tenant, consumer: Consumer, token: str) -> int:
    try:
        await sdk(proxy, tenant, consumer, token).chat.completions.create(**CHAT)
    except openai.APIStatusError as refused:
        return refused.status_code
    return 200


@pytest.fixture
async def app(tenant: Tenant, upstream: Any, idp: LocalIdp) -> Consumer:
    await tenant.add_registry("primary", upstream.url)
    return await token_consumer(tenant, idp, "app", subject_claim="email")


async def test_a_valid_token_is_served_and_its_subject_recorded(
    proxy: Any, tenant: Tenant, app: Consumer, idp: LocalIdp, events: Any
) -> None:
    async with events(None, tenant.gateway.id) as log:
        raw = await sdk(
            proxy, tenant, app, idp.mint(email="ana@example.com")
        ).chat.completions.with_raw_response.create(**CHAT)
        assert raw.parse().choices[0].message.content == "Hello from mock"
        (event,) = log.by_trace(raw.headers["x-ag-trace-id"])
    assert event.subject == "ana@example.com"
    assert event.auth_id == tenant.auths["app-oidc"].id
    assert event.status == 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing}.{_b64(sign(signing.encode())) if sign else ''}"


async def test_forged_stale_and_misdirected_tokens_are_refused(
    proxy: Any, tenant: Tenant, app: Consumer, idp: LocalIdp, upstream: Any
) -> None:
    stranger = SigningKey()
    now = int(time.time())
    public_pem = idp.key.public_pem()
    attacks: dict[str, str] = {
        "alg none": _forge({"alg": "none", "kid": idp.key.kid}, idp.claims()),
        "HS256 keyed with the RSA public key": _forge(
            {"alg": "HS256", "kid": idp.key.kid},
            idp.claims(),
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "expired": idp.mint(exp=now - 600),
        "nbf in the future": idp.mint(nbf=now + 600),
        "wrong iss": idp.mint(iss="https://idp.evil.example"),
        "wrong aud": idp.mint(aud="another-app"),
        "unknown kid": idp.mint(key=stranger),
        "a key not in the JWKS under a known kid": idp.mint(
            key=stranger, headers={"kid": idp.key.kid}
        ),
        "signature of another token": idp.mint().rsplit(".", 1)[0]
        + "."
        + idp.mint(sub="other").rsplit(".", 1)[1],
        "not a JWT": "not-a-jwt-and-no-introspection",
    }
    before = len(upstream.requests)
    statuses = {name: await status_of(proxy, tenant, app, token) for name, token in attacks.items()}
    assert statuses == dict.fromkeys(attacks, 401)
    assert len(upstream.requests) == before  # nothing reached the provider


async def test_a_missing_scope_is_403(
    proxy: Any, tenant: Tenant, upstream: Any, idp: LocalIdp
) -> None:
    await tenant.add_registry("primary", upstream.url)
    scoped = await token_consumer(tenant, idp, "scoped", required_scopes=["llm:invoke"])
    assert await status_of(proxy, tenant, scoped, idp.mint(scope="profile")) == 403
    assert await status_of(proxy, tenant, scoped, idp.mint(scope="profile llm:invoke")) == 200


async def test_a_token_of_another_consumer_or_gateway_is_refused(
    proxy: Any, tenant: Tenant, upstream: Any, idp: LocalIdp
) -> None:
    await tenant.add_registry("primary", upstream.url)
    x = await token_consumer(tenant, idp, "x", audiences=["app-x"])
    y = await token_consumer(tenant, idp, "y", audiences=["app-y"])
    token_x = idp.mint(aud="app-x")
    assert await status_of(proxy, tenant, x, token_x) == 200  # now cached as x's
    assert await status_of(proxy, tenant, y, token_x) == 401  # under y's slug
    other = await proxy.new_tenant()
    await other.add_registry("primary", upstream.url)
    b = await token_consumer(other, idp, "b", audiences=["gateway-b"])
    assert await status_of(proxy, other, b, token_x) == 401  # gateway A's token at B
    # and a consumer of B that has no token auth at all
    await other.add_consumer("keys-only", ["primary"])
    assert await status_of(proxy, other, other.consumers["keys-only"], token_x) == 401


async def test_a_key_rotation_fetches_the_jwks_once(
    proxy: Any, tenant: Tenant, app: Consumer, idp: LocalIdp
) -> None:
    assert await status_of(proxy, tenant, app, idp.mint()) == 200
    assert idp.hits["/jwks"] == 1
    idp.rotate()
    for n in range(3):
        assert await status_of(proxy, tenant, app, idp.mint(sub=f"after-{n}")) == 200
    assert idp.hits["/jwks"] == 2
    stranger = SigningKey()
    for n in range(10):  # a flood of unknown kids
        assert await status_of(proxy, tenant, app, idp.mint(key=stranger, sub=f"x{n}")) == 401
    assert idp.hits["/jwks"] == 2


async def test_discovery_from_the_issuer(
    proxy: Any, tenant: Tenant, upstream: Any, idp: LocalIdp
) -> None:
    await tenant.add_registry("primary", upstream.url)
    found = await token_consumer(tenant, idp, "found", kind="oauth2", jwks_url=None)
    assert await status_of(proxy, tenant, found, idp.mint()) == 200
    assert idp.hits["/.well-known/openid-configuration"] == 1


async def test_opaque_tokens_are_introspected_and_cached(
    proxy: Any, tenant: Tenant, upstream: Any, idp: LocalIdp, events: Any
) -> None:
    await tenant.add_registry("primary", upstream.url)
    svc = await token_consumer(
        tenant,
        idp,
        "svc",
        kind="oauth2",
        jwks_url=None,
        introspection_url=idp.introspection_url,
        client_id=idp.client[0],
        client_secret=tenant.box.seal(idp.client[1]),  # stored sealed, as the admin does
    )
    active = idp.issue_opaque(sub="batch-job")
    async with events(None, tenant.gateway.id) as log:
        for _ in range(3):
            assert await status_of(proxy, tenant, svc, active) == 200
        assert [e.subject for e in log.events] == ["batch-job"] * 3
    assert idp.hits["/introspect"] == 1
    assert await status_of(proxy, tenant, svc, idp.issue_opaque(active=False)) == 401
    assert await status_of(proxy, tenant, svc, idp.issue_opaque(aud="someone-else")) == 401


async def test_an_idp_down_refuses_new_tokens_fast_and_cached_ones_work(
    proxy: Any, tenant: Tenant, app: Consumer, idp: LocalIdp
) -> None:
    cached = idp.mint()
    assert await status_of(proxy, tenant, app, cached) == 200
    idp.rotate(keep_old=False)  # new tokens need a JWKS fetch
    with idp.down():
        assert await status_of(proxy, tenant, app, cached) == 200
        started = time.monotonic()
        assert await status_of(proxy, tenant, app, idp.mint()) == 401
        assert time.monotonic() - started < 2.0
    # back up: within the refresh interval the new key is still unknown, then fetched
    proxy.runtime.view.tokens.refresh_interval = 0.0
    assert await status_of(proxy, tenant, app, idp.mint()) == 200
