"""Admin authentication: `Authorization: Bearer <JWT>`, HS256 with SERVER_SECRET_KEY."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from trustgate_core.errors import Unauthorized


@dataclass(frozen=True)
class AdminIdentity:
    subject: str | None
    tenant_id: str | None
    platform_admin: bool


def mint_admin_token(secret: str, ttl_seconds: int = 3600, subject: str = "admin") -> str:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + ttl_seconds, "platform_admin": True}
    return jwt.encode(claims, secret, algorithm="HS256")


def authenticate(
    authorization: str | None, secret: str, *, platform_claim_required: bool = False
) -> AdminIdentity:
    if not authorization:
        raise Unauthorized("Authorization required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Invalid authorization format")
    token = token.strip()
    if not token:
        raise Unauthorized("Empty token provided")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": [], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid token") from exc
    if "purpose" in claims or "token_use" in claims:
        raise Unauthorized("Token not valid for admin API")
    tenant = claims.get("tenant_id")
    platform = tenant is None
    if platform and platform_claim_required and claims.get("platform_admin") is not True:
        raise Unauthorized("Token not valid for admin API")
    return AdminIdentity(
        subject=claims.get("sub") or claims.get("user_id"),
        tenant_id=str(tenant) if tenant is not None else None,
        platform_admin=platform,
    )
