"""The admin's token rules and its machine-to-machine tokens.

Console tokens (HS256, SERVER_SECRET_KEY) and M2M tokens (RS256/ES256 against
ADMIN_JWKS_URL) must carry ``sub`` and ``exp`` and live at most 24 h; a token without a
tenant is a platform token only with ``platform_admin: true``. Every forgery tried here
must be a 401 ``unauthorized``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from trustgate_testkit.admin import SECRET, RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.idp import JWKS_PATH, LocalIdp, SigningKey

AUDIENCE = "trustgate-admin"
HOUR = 3600


def _console(**claims: Any) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_keyed_with(key: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token whose HMAC key is ``key`` (pyjwt refuses to make one from a PEM)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def _accepted(admin: RunningAdmin, token: str) -> bool:
    return await _status(admin, token) == 200


async def _status(admin: RunningAdmin, token: str) -> int:
    async with httpx.AsyncClient(base_url=admin.url, timeout=10) as client:
        r = await client.get("/v1/gateways", headers={"Authorization": f"Bearer {token}"})
    if r.status_code == 401:
        assert r.json()["error"] == "unauthorized"
    return r.status_code


@pytest.fixture(scope="module")
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def m2m_admin(admin_db: str, bus: NatsServer, idp: LocalIdp) -> AsyncIterator[RunningAdmin]:
    settings = admin_settings(
        admin_db,
        bus.url,
        ADMIN_JWKS_URL=idp.jwks_url,
        ADMIN_M2M_ISSUER=idp.issuer,
        ADMIN_JWKS_MIN_REFRESH="1s",
    )
    async with running_admin(settings) as running:
        yield running


def _m2m(idp: LocalIdp, key: SigningKey | None = None, **claims: Any) -> str:
    claims = {"aud": AUDIENCE, "sub": "deployer", "platform_admin": True, **claims}
    return idp.mint(key=key, **claims)


async def test_console_tokens_without_exp_sub_or_a_bounded_lifetime_are_refused(admin) -> None:
    now = int(time.time())
    refused = {
        "no exp": _console(sub="admin", iat=now, platform_admin=True),
        "48h lifetime": _console(sub="admin", iat=now, exp=now + 48 * HOUR, platform_admin=True),
        "48h left, no iat": _console(sub="admin", exp=now + 48 * HOUR, platform_admin=True),
        "no sub": _console(iat=now, exp=now + HOUR, platform_admin=True),
        "empty sub": _console(sub="", iat=now, exp=now + HOUR, platform_admin=True),
        "empty claims": _console(),
        "no tenant, no platform claim": _console(sub="admin", iat=now, exp=now + HOUR),
        "unknown scope": _console(
            sub="admin", exp=now + HOUR, platform_admin=True, scope="gateways:write"
        ),
        "alg none": jwt.encode({"sub": "admin", "exp": now + HOUR}, None, algorithm="none"),
    }
    statuses = {name: await _status(admin, token) for name, token in refused.items()}
    assert statuses == dict.fromkeys(refused, 401)
    accepted = _console(sub="admin", iat=now, exp=now + 24 * HOUR, platform_admin=True)
    assert await _status(admin, accepted) == 200


async def test_m2m_tokens_from_the_jwks_are_accepted_and_forgeries_refused(
    m2m_admin: RunningAdmin, idp: LocalIdp
) -> None:
    assert await _status(m2m_admin, _m2m(idp)) == 200
    es256 = SigningKey("ES256")
    idp.keys.append(es256)
    try:
        await wait_for(
            lambda: _accepted(m2m_admin, _m2m(idp, es256)),
            timeout=10,
            message="an ES256 key added to the JWKS is never used",
        )
    finally:
        idp.keys.remove(es256)

    outsider = SigningKey("RS256", kid=idp.key.kid)  # the published kid, another key
    now = int(time.time())
    forgeries = {
        "signed by a key not in the JWKS": _m2m(idp, outsider),
        "HS256 keyed with the RSA public key": _hs256_keyed_with(
            idp.key.public_pem(),
            {
                "aud": AUDIENCE,
                "iss": idp.issuer,
                "sub": "x",
                "exp": now + 600,
                "iat": now,
                "platform_admin": True,
            },
            idp.key.kid,
        ),
        "wrong issuer": _m2m(idp, iss="https://evil.example"),
        "wrong audience": _m2m(idp, aud="trustgate"),
        "expired": _m2m(idp, ttl=-120),
        "no exp": _m2m(idp, exp=None),
        "48h lifetime": _m2m(idp, ttl=48 * HOUR),
        "no sub": _m2m(idp, sub=None),
        "unknown kid": _m2m(idp, outsider, headers={"kid": "no-such-kid"}),
        "no tenant, no platform claim": _m2m(idp, platform_admin=None),
    }
    statuses = {name: await _status(m2m_admin, token) for name, token in forgeries.items()}
    assert statuses == dict.fromkeys(forgeries, 401)


async def test_an_m2m_token_of_a_tenant_is_scoped_like_a_console_one(
    m2m_admin: RunningAdmin, idp: LocalIdp
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    token = _m2m(idp, tenant_id=tenant, platform_admin=None, scope="admin:read admin:write")
    async with m2m_admin.client(token) as client:
        r = await client.post("/v1/gateways", json={})
        assert r.status_code == 201
        listed = (await client.get("/v1/gateways")).json()
        assert [g["id"] for g in listed["items"]] == [r.json()["id"]]
    reader = _m2m(idp, tenant_id=tenant, platform_admin=None, scope="admin:read")
    async with m2m_admin.client(reader) as client:
        assert (await client.get("/v1/gateways")).json()["total"] == 1
        r = await client.post("/v1/gateways", json={})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


async def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_a_second(
    m2m_admin: RunningAdmin, idp: LocalIdp
) -> None:
    assert await _status(m2m_admin, _m2m(idp)) == 200  # the keys are loaded
    before = idp.hits[JWKS_PATH]
    started = time.monotonic()
    for _ in range(50):
        forged = _m2m(idp, headers={"kid": uuid.uuid4().hex})
        assert await _status(m2m_admin, forged) == 401
    seconds = time.monotonic() - started
    assert idp.hits[JWKS_PATH] - before <= 1 + int(seconds)


async def test_a_rotated_key_is_picked_up_on_its_first_unknown_kid(
    m2m_admin: RunningAdmin, idp: LocalIdp
) -> None:
    old = idp.key
    assert await _status(m2m_admin, _m2m(idp)) == 200
    new = idp.rotate(keep_old=False)
    try:
        await wait_for(
            lambda: _accepted(m2m_admin, _m2m(idp, new)),
            timeout=10,
            message="the rotated key is never fetched",
        )
    finally:
        idp.keys = [old, new]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


async def test_the_cli_mints_a_read_only_tenant_token(admin: RunningAdmin) -> None:
    env = {**os.environ, "SERVER_SECRET_KEY": SECRET}
    command = [sys.executable, "-m", "trustgate.cli", "admin", "token"]
    scoped = [*command, "--tenant", f"tenant-{uuid.uuid4().hex[:8]}", "--read-only", "--ttl", "2h"]
    token = (await asyncio.to_thread(_run, scoped, env)).stdout
    async with admin.client(token.strip()) as client:
        assert (await client.get("/v1/gateways")).json()["total"] == 0
        assert (await client.post("/v1/gateways", json={})).status_code == 403
    too_long = await asyncio.to_thread(_run, [*command, "--ttl", "48h"], env)
    assert too_long.returncode == 2 and not too_long.stdout
