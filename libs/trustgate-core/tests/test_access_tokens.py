"""Consumers' bearer tokens against a local IdP: what passes, every forged or misdirected
token refused, the JWKS refreshed once on a rotation and never hammered, introspection,
and an IdP that goes down; plus the role mapping's rules."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import jwt
import pytest

from trustgate_core.access import TokenVerifier, http_fetcher, matching_roles
from trustgate_core.errors import Forbidden, Unauthenticated
from trustgate_core.models import Auth, Role
from trustgate_testkit.idp import LocalIdp, SigningKey

GW = uuid4()
NOW = datetime.now(UTC)


def _auth(kind: str = "oidc", **config: Any) -> Auth:
    return Auth(
        id=uuid4(),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name=kind,
        type=kind,  # type: ignore[arg-type]
        config={kind: config},
    )


@pytest.fixture(scope="module")
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp()
    yield server
    server.stop()


def _verifier(**kw: Any) -> TokenVerifier:
    return TokenVerifier(http_fetcher(timeout=0.5), **kw)


def _oidc(idp: LocalIdp, **over: Any) -> Auth:
    config: dict[str, Any] = {
        "issuer": idp.issuer,
        "audiences": ["trustgate"],
        "jwks_url": idp.jwks_url,
    }
    config.update(over)
    return _auth("oidc", **config)


async def _refused(verifier: TokenVerifier, token: str, auths: list[Auth]) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token, auths)
    return caught.value.reason


async def test_a_valid_token_names_its_auth_and_subject(idp: LocalIdp) -> None:
    auth = _oidc(idp, subject_claim="email")
    verified = await _verifier().verify(idp.mint(email="ana@example.com"), [auth])
    assert verified.auth is auth
    assert verified.subject == "ana@example.com"


def _forge_unsigned(claims: dict[str, Any], kid: str) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(claims)}."


def _forge_hs256_with_public_key(idp: LocalIdp) -> str:
    """The classic confusion attack: HMAC keyed with the RSA public key's PEM."""
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": idp.key.kid}

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing = f"{part(json.dumps(header).encode())}.{part(json.dumps(idp.claims()).encode())}"
    mac = hmac.new(idp.key.public_pem(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{part(mac)}"


async def test_forged_and_misdirected_tokens_are_refused(idp: LocalIdp) -> None:
    auth = _oidc(idp, required_scopes=[])
    verifier = _verifier()
    stranger = SigningKey()  # a key the IdP never published
    attacks = {
        "alg none": _forge_unsigned(idp.claims(), idp.key.kid),
        "HS256 keyed with the public key": _forge_hs256_with_public_key(idp),
        "expired": idp.mint(exp=int(time.time()) - 600),
        "nbf in the future": idp.mint(nbf=int(time.time()) + 600),
        "no exp": idp.mint(exp=None),
        "wrong iss": idp.mint(iss="https://evil.example"),
        "wrong aud": idp.mint(aud="someone-else"),
        "unknown kid": idp.mint(key=stranger),
        "a key not in the JWKS under a known kid": idp.mint(
            key=stranger, headers={"kid": idp.key.kid}
        ),
        "garbage": "a.b.c",
    }
    reasons = {name: await _refused(verifier, token, [auth]) for name, token in attacks.items()}
    assert len(reasons) == len(attacks)  # every one refused with a 401
    assert reasons["alg none"] == reasons["HS256 keyed with the public key"] == "algorithm_refused"


async def test_a_missing_scope_is_forbidden_and_scp_lists_count(idp: LocalIdp) -> None:
    auth = _oidc(idp, required_scopes=["llm:invoke"])
    verifier = _verifier()
    with pytest.raises(Forbidden):
        await verifier.verify(idp.mint(scope="profile"), [auth])
    assert await verifier.verify(idp.mint(scope="profile llm:invoke"), [auth])
    assert await verifier.verify(idp.mint(scp=["llm:invoke"]), [auth])


async def test_a_verified_token_is_cached_until_it_expires(idp: LocalIdp) -> None:
    auth = _oidc(idp)
    now = [time.time()]
    verifier = _verifier(clock=lambda: now[0])
    token = idp.mint(ttl=120)
    first = await verifier.verify(token, [auth])
    assert await verifier.verify(token, [auth]) is first  # no second decode
    now[0] += 121 + verifier.leeway  # past exp and the clock-skew leeway
    assert await _refused(verifier, token, [auth]) == "expired"


async def test_a_cached_token_is_not_valid_for_another_auth(idp: LocalIdp) -> None:
    mine, theirs = _oidc(idp), _oidc(idp, audiences=["other-app"])
    verifier = _verifier()
    token = idp.mint()
    await verifier.verify(token, [mine])
    await _refused(verifier, token, [theirs])


async def test_rotation_fetches_the_jwks_once_and_unknown_kids_do_not_hammer() -> None:
    idp = LocalIdp()
    try:
        auth = _oidc(idp)
        verifier = _verifier(refresh_interval=60)
        await verifier.verify(idp.mint(), [auth])
        assert idp.hits["/jwks"] == 1
        idp.rotate()
        await asyncio.gather(*(verifier.verify(idp.mint(sub=f"u{n}"), [auth]) for n in range(5)))
        assert idp.hits["/jwks"] == 2  # one refresh for the new kid, shared
        stranger = SigningKey()
        for n in range(20):
            await _refused(verifier, idp.mint(key=stranger, sub=f"x{n}"), [auth])
        assert idp.hits["/jwks"] == 2  # within the interval: no fetch at all
    finally:
        idp.stop()


async def test_discovery_from_the_issuer_and_static_public_keys(idp: LocalIdp) -> None:
    discovered = _auth("oauth2", issuer=idp.issuer, audiences=["trustgate"])
    assert await _verifier().verify(idp.mint(), [discovered])
    pem = _auth(
        "oidc",
        issuer=idp.issuer,
        audiences=["trustgate"],
        public_keys=[{"kid": idp.key.kid, "pem": idp.key.public_pem().decode()}],
    )
    assert await _verifier().verify(idp.mint(), [pem])


async def test_allowed_algorithms_narrow_what_passes(idp: LocalIdp) -> None:
    es_only = _oidc(idp, allowed_algorithms=["ES256"])
    assert await _refused(_verifier(), idp.mint(), [es_only]) == "algorithm_not_allowed"


async def test_opaque_tokens_through_introspection(idp: LocalIdp) -> None:
    auth = _auth(
        "oauth2",
        issuer=idp.issuer,
        audiences=["trustgate"],
        introspection_url=idp.introspection_url,
        client_id=idp.client[0],
        client_secret=idp.client[1],
    )
    verifier = _verifier()
    active = idp.issue_opaque(sub="svc-1")
    before = idp.hits["/introspect"]
    assert (await verifier.verify(active, [auth])).subject == "svc-1"
    await verifier.verify(active, [auth])
    assert idp.hits["/introspect"] == before + 1  # cached by hash
    await _refused(verifier, idp.issue_opaque(active=False), [auth])
    await _refused(verifier, idp.issue_opaque(aud="other"), [auth])
    wrong_client = _auth("oauth2", audiences=["trustgate"], introspection_url=idp.introspection_url)
    await _refused(verifier, idp.issue_opaque(), [wrong_client])


async def test_an_idp_down_refuses_new_tokens_fast_and_keeps_cached_ones() -> None:
    idp = LocalIdp()
    auth = _oidc(idp)
    verifier = _verifier()
    cached = idp.mint()
    await verifier.verify(cached, [auth])
    idp.rotate(keep_old=False)
    with idp.down():
        assert await verifier.verify(cached, [auth])
        started = time.monotonic()
        assert await _refused(verifier, idp.mint(), [auth]) == "unknown_kid"
        assert time.monotonic() - started < 1.5
    idp.stop()


def _role(mapping: dict[str, Any] | None, name: str = "r") -> Role:
    return Role(id=uuid4(), gateway_id=GW, created_at=NOW, updated_at=NOW, name=name,
                oidc_mapping=mapping)  # fmt: skip


def test_role_mappings() -> None:
    claims = {
        "groups": ["eng", "ml"],
        "realm_access": {"roles": ["admin"]},
        "tier": "gold",
        "scope": "a b",
    }
    eng = _role({"claims": [{"path": "groups", "op": "contains_any", "values": ["eng"]}]})
    both = _role(
        {
            "match": "all",
            "claims": [
                {"path": "groups", "op": "contains_all", "values": ["eng", "ml"]},
                {"path": "realm_access.roles", "op": "contains_any", "values": ["admin"]},
            ],
        }
    )
    gold = _role({"claims": [{"path": "tier", "op": "equals", "values": ["gold"]}]})
    scoped = _role({"claims": [{"path": "scope", "op": "contains_all", "values": ["a", "b"]}]})
    none = _role({"claims": [{"path": "groups", "op": "contains_any", "values": ["ops"]}]})
    partial = _role(
        {
            "match": "all",
            "claims": [
                {"path": "tier", "op": "equals", "values": ["gold"]},
                {"path": "missing", "op": "equals", "values": ["x"]},
            ],
        }
    )
    unmapped = _role(None)
    roles = [eng, both, gold, scoped, none, partial, unmapped]
    assert matching_roles(roles, claims) == (eng, both, gold, scoped)
    assert matching_roles(roles, {}) == ()


def test_tokens_are_plain_pyjwt(idp: LocalIdp) -> None:
    """The IdP's tokens are ordinary RS256 JWTs (what a real IdP sends)."""
    header = jwt.get_unverified_header(idp.mint())
    assert header["alg"] == "RS256" and header["kid"] == idp.key.kid
