"""The access tokens the plane issues: EdDSA JWTs bound to one MCP URL (``aud``).

Verification is on the request path, so a verified token's claims are kept (bounded, by
the token's SHA-256) until it expires: a repeat costs a hash and a dict lookup.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import jwt

from trustgate_mcp.oauth.keys import Signer

TOKEN_USE = "mcp_access"
_CACHE_MAX = 10_000
_LEEWAY = 30


class AccessTokens:
    def __init__(self, signer: Signer, ttl: float) -> None:
        self.signer = signer
        self.ttl = int(ttl)
        self._seen: dict[bytes, dict[str, Any]] = {}

    def issue(self, issuer: str, resource: str, grant: dict[str, Any]) -> str:
        """A token for ``resource`` carrying ``grant`` (sub, gateway_id, consumer_id,
        auth_id, scope)."""
        now = int(time.time())
        claims = {
            **grant,
            "iss": issuer,
            "aud": resource,
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "token_use": TOKEN_USE,
        }
        return jwt.encode(
            claims, self.signer.private, algorithm="EdDSA", headers={"kid": self.signer.kid}
        )

    def claims(self, token: str, resource: str) -> dict[str, Any] | None:
        """The claims of a token of ours for ``resource`` that has not expired."""
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        claims = self._seen.get(digest)
        if claims is None:
            claims = self._decode(token)
            if claims is None:
                return None
            if len(self._seen) >= _CACHE_MAX:
                self._seen.clear()
            self._seen[digest] = claims
        if claims["exp"] + _LEEWAY < now or claims["aud"] != resource:
            return None
        return claims

    def _decode(self, token: str) -> dict[str, Any] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.signer.public.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                options={"verify_aud": False, "require": ["exp", "aud", "sub", "iss"]},
                leeway=_LEEWAY,
            )
        except jwt.PyJWTError:
            return None
        if claims.get("token_use") != TOKEN_USE or not isinstance(claims.get("aud"), str):
            return None
        if not isinstance(claims.get("exp"), int):
            return None
        return claims
