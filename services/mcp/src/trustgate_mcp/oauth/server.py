"""The plane's authorization server and protected-resource metadata.

- RFC 9728: ``/.well-known/oauth-protected-resource/{slug}/mcp`` describes the MCP URL
  ``{base}/{slug}/mcp`` (``challenge`` points 401s there).
- RFC 8414: ``/.well-known/oauth-authorization-server`` (also path-suffixed).
- RFC 7591 ``/oauth/register``, ``/oauth/authorize`` (the connect page), ``/oauth/token``,
  ``/.well-known/jwks.json``; with an IdP configured, ``/oauth/idp`` and
  ``/oauth/callback``.
- The upstream connect flow of auth mode ``forwarded``: ``/oauth/connect/{registry}``
  and ``/oauth/callback/{registry}`` (``oauth.connect``).

Stateless but for single use: keys derive from the secrets key and everything handed out
is signed or sealed, so any replica serves any step. ``{base}`` is ``MCP_PUBLIC_URL`` or
the request's scheme and Host.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import orjson

from trustgate_core.counters import Counters
from trustgate_core.crypto import SecretBox
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Receive, Scope, Send
from trustgate_mcp.adapters.upstream.forwarded import ForwardedTokens, token_store
from trustgate_mcp.oauth import http, token, urls
from trustgate_mcp.oauth.authorize import Authorize
from trustgate_mcp.oauth.clients import register
from trustgate_mcp.oauth.connect import UpstreamConnect
from trustgate_mcp.oauth.grants import SCOPE, Grants
from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.idp import IdpSignIn
from trustgate_mcp.oauth.keys import Sealer, Signer
from trustgate_mcp.oauth.tokens import AccessTokens
from trustgate_mcp.services.ports import Grant
from trustgate_mcp.settings import McpSettings

log = logging.getLogger(__name__)

_EXACT = frozenset(
    {urls.JWKS, urls.REGISTER, urls.AUTHORIZE, urls.TOKEN, urls.CALLBACK, urls.IDP_START}
)


class OAuthServer:
    def __init__(self, state: ReplicaState, settings: McpSettings, counters: Counters) -> None:
        self.state = state
        self.settings = settings
        self.counters = counters
        previous = settings.previous_keys()
        self.signer = Signer(settings.secrets_material, previous)
        self.sealer = Sealer(settings.secrets_material, previous)
        self.tokens = AccessTokens(self.signer, settings.oauth_token_ttl)
        self.grants = Grants(state, self.sealer, counters, self.tokens, settings.oauth_refresh_ttl)
        self.idp = IdpSignIn(settings, self.sealer) if settings.idp_configured() else None
        self.authorize = Authorize(
            state,
            self.sealer,
            counters,
            self.grants,
            settings.connect_rate_limit_per_minute,
            self.idp.name if self.idp else None,
        )
        # users' own upstream tokens (auth mode forwarded) and the flow that gets them
        self.upstream_tokens = ForwardedTokens(self.sealer, token_store(counters))
        self.connect = UpstreamConnect(
            state, self.sealer, counters, SecretBox(settings.secrets_material), self.upstream_tokens
        )

    def handles(self, path: str) -> bool:
        """Whether ``path`` is one of the OAuth endpoints (served by ``__call__``)."""
        return (
            path in _EXACT
            or path.startswith(urls.PRM_PREFIX)
            or path.startswith(urls.AS_METADATA)
            or UpstreamConnect.handles(path)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._route(scope, receive, send)
        except BadRequest as failure:
            await http.error(send, failure)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        base = urls.base_url(scope, self.settings.public_url)
        if base is None:
            raise BadRequest("invalid_request", "no usable Host header")
        if path.startswith(urls.PRM_PREFIX):
            self._allow(method, "GET")
            await self._resource_metadata(send, base, path[len(urls.PRM_PREFIX) :])
        elif path.startswith(urls.AS_METADATA):
            self._allow(method, "GET")
            await http.ok(send, self.metadata(base))
        elif path == urls.JWKS:
            self._allow(method, "GET")
            await http.ok(send, self.signer.jwks())
        elif path == urls.REGISTER:
            self._allow(method, "POST")
            await http.ok(send, register(self.sealer, _json(await http.body(receive))), 201)
        elif path == urls.AUTHORIZE:
            if self._allow(method, "GET", "POST") == "GET":
                await self.authorize.get(scope, send, base)
            else:
                await self.authorize.post(scope, receive, send)
        elif path == urls.TOKEN:
            self._allow(method, "POST")
            form = await http.form(scope, receive)
            await http.ok(send, await token.exchange(self.sealer, self.grants, form, base))
        elif UpstreamConnect.handles(path):
            await self.connect(scope, send, base)
        elif self.idp is None:
            raise BadRequest("not_found", "no identity provider is configured", 404)
        elif path == urls.IDP_START:
            self._allow(method, "GET")
            await self.idp.start(scope, send, base, self.authorize)
        else:
            self._allow(method, "GET")
            await self.idp.callback(scope, send, base, self.authorize)

    @staticmethod
    def _allow(method: str, *allowed: str) -> str:
        if method in allowed or (method == "HEAD" and "GET" in allowed):
            return "GET" if method == "HEAD" else method
        raise BadRequest("invalid_request", f"use {' or '.join(allowed)}", 405)

    async def _resource_metadata(self, send: Send, base: str, rest: str) -> None:
        slug = rest[1:-4] if rest.startswith("/") and rest.endswith("/mcp") else ""
        if not urls.valid_slug(slug):
            raise BadRequest(
                "not_found",
                "protected resources are /.well-known/oauth-protected-resource/{consumer}/mcp",
                404,
            )
        await http.ok(
            send,
            {
                "resource": urls.mcp_url(base, slug),
                "authorization_servers": [base],
                "bearer_methods_supported": ["header"],
                "scopes_supported": [SCOPE],
                "resource_name": f"TrustGate MCP: {slug}",
            },
        )

    def metadata(self, base: str) -> dict[str, Any]:
        """The authorization server's metadata (RFC 8414)."""
        return {
            "issuer": base,
            "authorization_endpoint": base + urls.AUTHORIZE,
            "token_endpoint": base + urls.TOKEN,
            "registration_endpoint": base + urls.REGISTER,
            "jwks_uri": base + urls.JWKS,
            "scopes_supported": [SCOPE],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
        }

    def verify(self, token: str, resource: str) -> Grant | None:
        """The grant of a token of ours for ``resource`` whose consumer (and the auth it
        was signed in through) still stands. The scheme and host of ``resource`` are
        compared without case (a Host header may come in any)."""
        resource = urls.canonical(resource)
        claims = self.tokens.claims(token, resource)
        if claims is None:
            return None
        slug = resource.rsplit("/", 2)[-2] if resource.endswith("/mcp") else ""
        grant = {
            "cid": claims.get("consumer_id"),
            "gid": claims.get("gateway_id"),
            "aid": claims.get("auth_id"),
        }
        consumer = self.grants.live_consumer(grant, slug)
        if consumer is None:
            return None
        aid = claims.get("auth_id")
        return Grant(
            gateway_id=consumer.gateway_id,
            consumer_id=consumer.id,
            subject=str(claims["sub"]),
            auth_id=UUID(aid) if isinstance(aid, str) else None,
            scopes=tuple(str(claims.get("scope") or "").split()),
        )

    def resource_url(self, scope: Scope, slug: str) -> str | None:
        """The MCP URL a request to ``/{slug}/mcp`` is for, spelt as the tokens' audience
        (``MCP_PUBLIC_URL`` or the scheme and lower-cased Host); None without a usable Host."""
        base = urls.base_url(scope, self.settings.public_url)
        return None if base is None else urls.mcp_url(base, slug)

    def challenge(self, resource: str) -> str:
        return f'Bearer resource_metadata="{urls.resource_metadata_url(resource)}"'


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("invalid_client_metadata", "the body is not JSON") from exc
