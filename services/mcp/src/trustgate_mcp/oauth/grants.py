"""What a sign-in grants and how it travels: authorization codes (sealed, 60 s, single
use) and refresh tokens (sealed, rotated on each use, single use), both checked again
against the live configuration when redeemed, and the token pair they turn into.

A grant is a small dict: ``gid``/``cid`` (gateway and consumer ids), ``sub``, ``aid``
(the auth the user signed in through, or None), ``scope``, ``res`` (the MCP URL) and
``cl`` (a hash of the client id) and ``fam``, the sign-in it descends from. Single use is
enforced with the limit counters (Redis when configured, so across replicas; this process
otherwise): the first redemption of a ``jti`` takes the one slot of a window as long as
the blob's life. A code or refresh token presented twice means one copy leaked (OAuth 2.1
§4.3.1): the whole family is revoked, so neither the thief nor the client can refresh
again (access tokens already issued live out their ``MCP_OAUTH_TOKEN_TTL``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from typing import Any
from uuid import UUID

from trustgate_core.counters import Counters, CountersUnavailable
from trustgate_core.models import Consumer
from trustgate_core.replica import ReplicaState
from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.tokens import AccessTokens

CODE = b"code"
REFRESH = b"refresh"
CODE_TTL = 60
SCOPE = "mcp"
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def client_hash(client_id: str) -> str:
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def pkce_matches(verifier: str | None, challenge: str) -> bool:
    return bool(verifier and _VERIFIER.match(verifier) and s256(verifier) == challenge)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


class Grants:
    def __init__(
        self,
        state: ReplicaState,
        sealer: Sealer,
        counters: Counters,
        tokens: AccessTokens,
        refresh_ttl: float,
    ) -> None:
        self.state = state
        self.sealer = sealer
        self.counters = counters
        self.tokens = tokens
        self.refresh_ttl = int(refresh_ttl)

    def live_consumer(self, grant: dict[str, Any], slug: str) -> Consumer | None:
        """The grant's consumer if it still stands: an active MCP consumer of an active
        gateway, at ``slug``, and the auth signed in through still enabled and attached."""
        cid = _uuid(grant.get("cid"))
        consumer = self.state.consumers.get(cid) if cid is not None else None
        if consumer is None or consumer.type != "MCP" or not consumer.active:
            return None
        if consumer.slug != slug or str(consumer.gateway_id) != grant.get("gid"):
            return None
        gateway = self.state.gateways.get(consumer.gateway_id)
        if gateway is None or not gateway.active:
            return None
        aid = _uuid(grant.get("aid"))
        if grant.get("aid") is not None:
            auth = self.state.auths.get(aid) if aid is not None else None
            if auth is None or not auth.enabled or auth.id not in consumer.auth_ids:
                return None
        return consumer

    def code(self, grant: dict[str, Any], redirect_uri: str, challenge: str) -> str:
        now = int(time.time())
        doc = {**grant, "ru": redirect_uri, "ch": challenge, "exp": now + CODE_TTL}
        return self.sealer.seal(CODE, {**doc, "jti": uuid.uuid4().hex, "fam": uuid.uuid4().hex})

    async def redeem(self, purpose: bytes, blob: str | None, client_id: str) -> dict[str, Any]:
        """The grant a code or refresh token carries, used up; raises `BadRequest`."""
        doc = self.sealer.open(purpose, blob) if blob else None
        kind = "authorization code" if purpose == CODE else "refresh token"
        if not isinstance(doc, dict) or int(doc.get("exp") or 0) < time.time():
            raise BadRequest("invalid_grant", f"the {kind} is invalid or expired")
        if doc.get("cl") != client_hash(client_id):
            raise BadRequest("invalid_grant", f"the {kind} was issued to another client")
        family = f"mcp:oauth:revoked:{doc.get('fam')}"
        ttl_ms = (int(doc["exp"] - time.time()) + 60) * 1000
        family_ttl_ms = (self.refresh_ttl + 60) * 1000
        try:
            revoked = await self.counters.reserve([family], [0], 0, [family_ttl_ms])
            if not revoked.allowed:
                raise BadRequest("invalid_grant", f"the {kind} was revoked")
            hit = await self.counters.hit(f"mcp:oauth:used:{doc.get('jti')}", 1, ttl_ms)
            if not hit.allowed:
                await self.counters.reserve([family], [1], 1, [family_ttl_ms], force=True)
                raise BadRequest("invalid_grant", f"the {kind} was already used")
        except CountersUnavailable as exc:
            raise BadRequest("temporarily_unavailable", "try again in a moment", 503) from exc
        return doc

    def pair(self, issuer: str, grant: dict[str, Any]) -> dict[str, Any]:
        """The token response for a grant: an access token for its resource and a fresh
        refresh token."""
        keep = ("gid", "cid", "aid", "sub", "scope", "res", "cl", "fam")
        core = {k: grant.get(k) for k in keep}
        access = self.tokens.issue(
            issuer,
            str(core["res"]),
            {
                "sub": core["sub"],
                "gateway_id": core["gid"],
                "consumer_id": core["cid"],
                "auth_id": core["aid"],
                "scope": core["scope"],
            },
        )
        refresh_doc = {**core, "exp": int(time.time()) + self.refresh_ttl, "jti": uuid.uuid4().hex}
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.tokens.ttl,
            "refresh_token": self.sealer.seal(REFRESH, refresh_doc),
            "scope": core["scope"],
        }
