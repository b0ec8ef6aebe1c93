"""The upstream connect flow (auth mode ``forwarded``): a user signs in once at an
OAuth-protected upstream MCP server, and the plane keeps their tokens
(``adapters.upstream.forwarded``).

- ``GET /oauth/connect/{registry id}?ticket=…``: the URL of a -32003 answer. The sealed
  ticket names the gateway, the registry and the user (it expires after
  ``forwarded.TICKET_TTL``). The upstream's authorization server comes from the
  registry's auth: ``registration: manual`` gives ``authorize_url``, ``token_url`` and
  ``client_id`` (and ``client_secret``); ``registration: auto`` discovers it from the
  upstream MCP URL (RFC 9728 protected-resource metadata, then RFC 8414 / OpenID
  metadata) and registers the plane as a client there (RFC 7591, once per registry and
  callback URL on each replica). Then a 302 to the authorization endpoint: authorization
  code with PKCE S256, ``resource`` (RFC 8707: ``auth.resource``, else the metadata's,
  else the MCP URL) and ``scope`` (``auth.scopes``, else the metadata's).
- ``GET /oauth/callback/{registry id}?code=…&state=…``: the code for tokens (the PKCE
  verifier and the client travel in the sealed ``state``), kept for the user; a page says
  they may go back to their application.

The ``state`` is sealed (AES-GCM: tampering is refused), expires after ``STATE_TTL`` and is
used once (the limit counters: in Redis across replicas when configured). Any failure is
a 400 JSON ``{"error", "error_description"}`` (502 when the upstream's authorization server
fails), never a secret in it.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import Any, Final
from uuid import UUID

import aiohttp
import orjson
from cryptography.exceptions import InvalidTag
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, ProtectedResourceMetadata
from pydantic import ValidationError

from trustgate_core.counters import Counters, CountersUnavailable
from trustgate_core.crypto import SecretBox
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Scope, Send
from trustgate_mcp.adapters.upstream.forwarded import (
    ForwardedTokens,
    TokenFailure,
    client_auth,
    token_request,
)
from trustgate_mcp.oauth import http
from trustgate_mcp.oauth.grants import s256
from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.page import message_page

log = logging.getLogger(__name__)

CONNECT: Final = "/oauth/connect/"
CALLBACK: Final = "/oauth/callback/"
STATE: Final = b"upstream-connect-state"
STATE_TTL: Final = 600
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_MAX_CLIENTS: Final = 1024


class UpstreamConnect:
    def __init__(
        self,
        state: ReplicaState,
        sealer: Sealer,
        counters: Counters,
        box: SecretBox,
        tokens: ForwardedTokens,
    ) -> None:
        self.state = state
        self.sealer = sealer
        self.counters = counters
        self.box = box
        self.tokens = tokens
        # (registry id, redirect URI) -> (registry object, client registered there)
        self._clients: dict[tuple[UUID, str], tuple[Any, dict[str, Any]]] = {}

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith((CONNECT, CALLBACK))

    async def __call__(self, scope: Scope, send: Send, base: str) -> None:
        path: str = scope["path"]
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            raise BadRequest("invalid_request", "use GET", 405)
        if path.startswith(CONNECT):
            await self.start(scope, send, base, path[len(CONNECT) :])
        else:
            await self.callback(scope, send, base, path[len(CALLBACK) :])

    # --- /oauth/connect/{registry id} ---------------------------------------------------
    async def start(self, scope: Scope, send: Send, base: str, rid: str) -> None:
        ticket = self.tokens.open_ticket(http.query(scope).get("ticket") or "")
        if ticket is None or ticket.get("r") != rid:
            raise BadRequest(
                "invalid_request",
                "this connect link is invalid or has expired: call the tool again for a new one",
            )
        auth, mcp_url = self._forwarded_auth(ticket)
        redirect_uri = f"{base}{CALLBACK}{rid}"
        server = await self._server(UUID(rid), auth, mcp_url, redirect_uri)
        verifier = secrets.token_urlsafe(48)
        doc = {
            **{k: ticket[k] for k in ("g", "c", "r", "u")},
            "v": verifier,
            "ru": redirect_uri,
            "client": server["client"],
            "exp": int(time.time()) + STATE_TTL,
            "jti": uuid.uuid4().hex,
        }
        query = {
            "response_type": "code",
            "client_id": server["client"]["ci"],
            "redirect_uri": redirect_uri,
            "state": self.sealer.seal(STATE, doc),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if server["scope"]:
            query["scope"] = server["scope"]
        if server["client"].get("res"):
            query["resource"] = server["client"]["res"]
        await http.redirect(send, server["authorize_url"], query)

    def _forwarded_auth(self, ticket: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The registry's opened auth and MCP URL, if it still is a forwarded MCP
        registry of the ticket's gateway."""
        try:
            registry = self.state.registries.get(UUID(str(ticket["r"])))
        except ValueError:
            registry = None
        gone = BadRequest("invalid_request", "this MCP server is no longer configured", 404)
        if registry is None or str(registry.gateway_id) != ticket.get("g"):
            raise gone
        try:
            target = self.box.open_fields(registry.mcp_target or {})
        except (InvalidTag, ValueError):
            raise gone from None
        auth = target.get("auth") if isinstance(target, dict) else None
        if not isinstance(auth, dict) or auth.get("mode") != "forwarded":
            raise gone
        return auth, str(target.get("url") or "")

    async def _server(
        self, rid: UUID, auth: dict[str, Any], mcp_url: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Where to send the user and the client to redeem the code with."""
        scopes = auth.get("scopes")
        scope = " ".join(str(s) for s in scopes) if isinstance(scopes, list) else scopes or ""
        method = str(auth.get("token_endpoint_auth_method") or "client_secret_basic")
        if auth.get("registration", "auto") == "manual":
            client = {
                "tu": str(auth["token_url"]),
                "ci": str(auth["client_id"]),
                "cs": auth.get("client_secret") or None,
                "am": method if auth.get("client_secret") else "none",
                "res": str(auth.get("resource") or mcp_url),
            }
            return {"authorize_url": str(auth["authorize_url"]), "scope": scope, "client": client}
        prm, metadata = await self._discover(mcp_url)
        if not scope and prm is not None and prm.scopes_supported:
            scope = " ".join(prm.scopes_supported)
        resource = str(auth.get("resource") or (prm.resource if prm else "") or mcp_url)
        registered = await self._registered(rid, metadata, redirect_uri, method)
        client = {
            "tu": str(metadata.token_endpoint),
            "ci": registered["client_id"],
            "cs": registered.get("client_secret"),
            "am": registered.get("token_endpoint_auth_method") or "none",
            "res": resource,
        }
        return {
            "authorize_url": str(metadata.authorization_endpoint),
            "scope": scope,
            "client": client,
        }

    async def _discover(
        self, mcp_url: str
    ) -> tuple[ProtectedResourceMetadata | None, OAuthMetadata]:
        prm: ProtectedResourceMetadata | None = None
        for url in build_protected_resource_metadata_discovery_urls(None, mcp_url):
            doc = await _get_json(url)
            if doc is not None:
                try:
                    prm = ProtectedResourceMetadata.model_validate(doc)
                    break
                except ValidationError:
                    continue
        issuer = str(prm.authorization_servers[0]) if prm and prm.authorization_servers else None
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, mcp_url):
            doc = await _get_json(url)
            if doc is not None:
                try:
                    return prm, OAuthMetadata.model_validate(doc)
                except ValidationError:
                    continue
        raise BadRequest(
            "temporarily_unavailable",
            "the MCP server's authorization server could not be discovered",
            502,
        )

    async def _registered(
        self, rid: UUID, metadata: OAuthMetadata, redirect_uri: str, method: str
    ) -> dict[str, Any]:
        """The plane's client at the upstream's authorization server (RFC 7591)."""
        registry = self.state.registries.get(rid)
        kept = self._clients.get((rid, redirect_uri))
        if kept is not None and kept[0] is registry:
            return kept[1]
        if metadata.registration_endpoint is None:
            raise BadRequest(
                "temporarily_unavailable",
                "the MCP server's authorization server does not offer dynamic client "
                "registration: configure the registry with registration manual",
                502,
            )
        body = {
            "client_name": "TrustGate MCP gateway",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT) as session,
                session.post(str(metadata.registration_endpoint), json=body) as response,
            ):
                status, raw = response.status, await response.read()
            info = OAuthClientInformationFull.model_validate_json(raw)
        except (aiohttp.ClientError, TimeoutError, ValidationError, ValueError) as exc:
            log.warning("mcp connect: client registration failed (%s)", type(exc).__name__)
            raise BadRequest(
                "temporarily_unavailable", "registering with the MCP server's sign-in failed", 502
            ) from None
        if status not in (200, 201):
            log.warning("mcp connect: client registration answered HTTP %s", status)
            raise BadRequest(
                "temporarily_unavailable", "registering with the MCP server's sign-in failed", 502
            )
        registered = {
            "client_id": info.client_id,
            "client_secret": info.client_secret,
            "token_endpoint_auth_method": info.token_endpoint_auth_method
            if info.client_secret
            else "none",
        }
        while len(self._clients) >= _MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        self._clients[(rid, redirect_uri)] = (registry, registered)
        return registered

    # --- /oauth/callback/{registry id} --------------------------------------------------
    async def callback(self, scope: Scope, send: Send, base: str, rid: str) -> None:
        q = http.query(scope)
        doc = self.sealer.open(STATE, q.get("state") or "")
        if not isinstance(doc, dict) or doc.get("r") != rid:
            raise BadRequest("invalid_request", "the sign-in state is invalid")
        if int(doc.get("exp") or 0) < time.time():
            raise BadRequest("invalid_request", "the sign-in took too long: connect again")
        await self._use_once(str(doc.get("jti")))
        if q.get("error") or not q.get("code"):
            reason = q.get("error") or "no code"
            raise BadRequest(
                "access_denied", f"the MCP server's sign-in did not succeed ({reason:.60})"
            )
        client = doc["client"]
        form = {
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": str(doc["ru"]),
            "code_verifier": str(doc["v"]),
        }
        if client.get("res"):
            form["resource"] = str(client["res"])
        headers = client_auth(form, str(client["ci"]), client.get("cs"), str(client["am"]))
        try:
            tokens = await token_request(str(client["tu"]), form, headers)
        except TokenFailure as exc:
            log.warning("mcp connect: code exchange failed: %s", exc)
            raise BadRequest(
                "invalid_grant", "the MCP server's sign-in did not give a token: connect again", 502
            ) from None
        await self.tokens.save(str(doc["g"]), rid, str(doc["u"]), client, tokens)
        page = message_page(
            "Connected", "You can close this window and go back to your application."
        )
        await http.html(send, 200, page)

    async def _use_once(self, jti: str) -> None:
        try:
            hit = await self.counters.hit(f"mcp:connect:used:{jti}", 1, (STATE_TTL + 60) * 1000)
        except CountersUnavailable as exc:
            raise BadRequest("temporarily_unavailable", "try again in a moment", 503) from exc
        if not hit.allowed:
            raise BadRequest(
                "invalid_request", "this sign-in state was already used: connect again"
            )


async def _get_json(url: str) -> Any:
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.get(url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status != 200:
                return None
            return orjson.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return None
