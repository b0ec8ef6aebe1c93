"""Admin authentication: `Authorization: Bearer <JWT>`.

Two kinds of token (docs/admin-access.md):

- console tokens, HS256 signed with SERVER_SECRET_KEY (`trustgate admin token`);
- machine-to-machine tokens, RS256 or ES256, verified against the keys published at
  ADMIN_JWKS_URL, with ``iss`` = ADMIN_M2M_ISSUER and ``aud`` = ADMIN_M2M_AUDIENCE.

Both must carry ``sub`` and ``exp``, and live at most ADMIN_M2M_MAX_TOKEN_TTL. A token
with ``tenant_id`` acts for that tenant only; one without it is a platform (operator)
token only with ``platform_admin: true``. ``scope`` (space-separated) limits what it may
do: ``admin:read`` alone is read-only; no ``scope`` claim means read and write.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

from trustgate_admin.domain.identity import AdminIdentity
from trustgate_core.errors import Unauthorized

READ_SCOPE = "admin:read"
WRITE_SCOPE = "admin:write"
M2M_ALGORITHMS = ("RS256", "ES256")
CLOCK_SKEW_SECONDS = 30


def mint_admin_token(
    secret: str,
    ttl_seconds: int = 3600,
    subject: str = "admin",
    *,
    tenant_id: str | None = None,
    read_only: bool = False,
) -> str:
    """A console token: a platform token unless ``tenant_id`` is given."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if tenant_id is None:
        claims["platform_admin"] = True
    else:
        claims["tenant_id"] = tenant_id
    claims["scope"] = READ_SCOPE if read_only else f"{READ_SCOPE} {WRITE_SCOPE}"
    return jwt.encode(claims, secret, algorithm="HS256")


class JwksKeys:
    """The M2M signing keys from a JWKS URL: fetched on first use, kept ``ttl`` seconds,
    refetched early for an unknown ``kid`` but at most once per ``min_refresh`` seconds
    (a flood of made-up kids cannot hammer the key server)."""

    def __init__(self, url: str, *, ttl: float = 300.0, min_refresh: float = 30.0) -> None:
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if age > self._ttl or (kid not in self._keys and age > self._min_refresh):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid) if kid is not None else None
        if found is None:
            raise Unauthorized("Invalid token")
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at <= self._min_refresh:
                return  # another request refreshed while this one waited
            self._fetched_at = time.monotonic()
            self.fetches += 1
            try:
                document = await asyncio.to_thread(_fetch_json, self._url)
                keys = jwt.PyJWKSet.from_dict(document).keys
            except (OSError, ValueError, jwt.PyJWTError):
                return  # keep the keys we have; the next refresh may succeed
            self._keys = {k.key_id: k for k in keys if k.key_id is not None}
            if not self._keys and len(keys) == 1:
                self._keys = {"": keys[0]}


def _fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read(1 << 20))


@dataclass
class Authenticator:
    """Checks admin bearer tokens against the settings it was built with."""

    secret: str
    max_ttl_seconds: float = 24 * 3600
    platform_claim_required: bool = True
    m2m_keys: JwksKeys | None = None
    m2m_issuer: str | None = None
    m2m_audience: str = "trustgate-admin"

    async def authenticate(self, authorization: str | None) -> AdminIdentity:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Invalid token") from exc
        if header.get("alg") in M2M_ALGORITHMS:
            claims = await self._m2m_claims(token, header)
        else:
            claims = self._console_claims(token)
        return self._identity(claims)

    def _console_claims(self, token: str) -> dict[str, Any]:
        claims = _decode(token, self.secret, ["HS256"], options={"verify_aud": False})
        if "purpose" in claims or "token_use" in claims:
            raise Unauthorized("Token not valid for admin API")
        return claims

    async def _m2m_claims(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        if self.m2m_keys is None:
            raise Unauthorized("Invalid token")
        key = await self.m2m_keys.key(header.get("kid"))
        if key.algorithm_name not in M2M_ALGORITHMS:
            raise Unauthorized("Invalid token")
        options: dict[str, Any] = {"require": ["exp", "sub", "aud"]}
        if self.m2m_issuer:
            options["require"].append("iss")
        return _decode(
            token,
            key,
            [key.algorithm_name],
            options=options,
            audience=self.m2m_audience,
            issuer=self.m2m_issuer,
        )

    def _identity(self, claims: dict[str, Any]) -> AdminIdentity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("Token not valid for admin API")
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise Unauthorized("Token not valid for admin API")
        issued = claims.get("iat")
        start = issued if isinstance(issued, int | float) else time.time()
        if exp - start > self.max_ttl_seconds + CLOCK_SKEW_SECONDS:
            raise Unauthorized("Token not valid for admin API")
        tenant = claims.get("tenant_id")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise Unauthorized("Token not valid for admin API")
        platform = tenant is None
        if platform and self.platform_claim_required and claims.get("platform_admin") is not True:
            raise Unauthorized("Token not valid for admin API")
        return AdminIdentity(
            subject=subject,
            tenant_id=tenant,
            platform_admin=platform,
            can_write=_can_write(claims.get("scope", claims.get("scopes"))),
        )


def _can_write(scope: Any) -> bool:
    if scope is None:
        return True
    granted = scope.split() if isinstance(scope, str) else scope
    if not isinstance(granted, list):
        raise Unauthorized("Token not valid for admin API")
    if WRITE_SCOPE in granted:
        return True
    if READ_SCOPE in granted:
        return False
    raise Unauthorized("Token not valid for admin API")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Authorization required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Invalid authorization format")
    token = token.strip()
    if not token:
        raise Unauthorized("Empty token provided")
    return token


def _decode(token: str, key: Any, algorithms: list[str], **kwargs: Any) -> dict[str, Any]:
    options = kwargs.pop("options")
    options.setdefault("require", ["exp", "sub"])
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=algorithms, options=options, leeway=CLOCK_SKEW_SECONDS, **kwargs
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid token") from exc
    return claims
