"""Sign-in with the configured upstream identity provider (``MCP_DEFAULT_IDP_*``): an
authorization-code round trip with PKCE from the connect page to the IdP and back
(``/oauth/callback``), the person identified by the ``sub`` of the IdP's id token (or, if
it sends none, of its JWT access token), checked against the IdP's JWKS.

Who may connect: a consumer accepts IdP sign-in only if an enabled ``oidc``/``oauth2``
auth with that IdP's issuer is attached to it (the grant records that auth, so detaching
or disabling it ends the access). Without one, the connect page's link leads to "this
MCP server does not accept that sign-in".
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import aiohttp
import jwt

from trustgate_core.access import ASYMMETRIC_ALGORITHMS, TOKEN_AUTH_TYPES
from trustgate_core.models import Auth, Consumer
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Scope, Send
from trustgate_mcp.oauth import http
from trustgate_mcp.oauth.authorize import Authorize
from trustgate_mcp.oauth.grants import s256
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.page import message_page
from trustgate_mcp.oauth.urls import CALLBACK
from trustgate_mcp.settings import McpSettings

log = logging.getLogger(__name__)

STATE = b"idp"
_STATE_TTL = 600
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_JWKS_REFRESH = 60.0


class IdpFailure(Exception):
    """The round trip did not identify anyone (the reason is for the log)."""


class IdpSignIn:
    def __init__(self, settings: McpSettings, sealer: Sealer) -> None:
        self.settings = settings
        self.sealer = sealer
        self.issuer = settings.default_idp_issuer
        self.name = settings.default_idp_name or self.issuer
        self._keys: dict[str | None, Any] = {}
        self._fetched = -1e18

    async def start(self, scope: Scope, send: Send, base: str, authorize: Authorize) -> None:
        """From the connect page's link to the IdP's authorization endpoint."""
        request = authorize.open_form(http.query(scope).get("form"))
        if request is None:
            await _expired(send)
            return
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        state = self.sealer.seal(
            STATE, {"q": request, "v": verifier, "n": nonce, "exp": int(time.time()) + _STATE_TTL}
        )
        s = self.settings
        await http.redirect(
            send,
            s.default_idp_authorize_url,
            {
                "response_type": "code",
                "client_id": s.default_idp_client_id,
                "redirect_uri": base + CALLBACK,
                "scope": s.default_idp_scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            },
        )

    async def callback(self, scope: Scope, send: Send, base: str, authorize: Authorize) -> None:
        """Back from the IdP: the code for tokens, the person, then back to the client."""
        q = http.query(scope)
        doc = self.sealer.open(STATE, q.get("state") or "")
        if not isinstance(doc, dict) or int(doc.get("exp") or 0) < time.time():
            await _expired(send)
            return
        request: dict[str, Any] = doc["q"]
        if q.get("error") or not q.get("code"):
            log.info("idp sign-in refused by the idp: %.100r", q.get("error", "no code"))
            await authorize.show(send, request, f"{self.name} did not sign you in.")
            return
        try:
            subject = await self._subject(q["code"], base, str(doc["v"]), str(doc["n"]))
        except IdpFailure as exc:
            log.warning("idp sign-in failed: %s", exc)
            await authorize.show(send, request, f"Signing in with {self.name} failed.")
            return
        found = self._accepting(authorize.state, request["slug"])
        if found is None:
            await authorize.show(
                send, request, f"This MCP server does not accept sign-in with {self.name}."
            )
            return
        consumer, auth = found
        grant = {
            "gid": str(consumer.gateway_id),
            "cid": str(consumer.id),
            "aid": str(auth.id),
            "sub": subject,
        }
        await authorize.approve(send, request, grant)

    def _accepting(self, state: ReplicaState, slug: str) -> tuple[Consumer, Auth] | None:
        consumer = state.consumer_by_any_slug(slug)
        gateway = state.gateways.get(consumer.gateway_id) if consumer else None
        if consumer is None or gateway is None or not gateway.active:
            return None
        if consumer.type != "MCP" or not consumer.active:
            return None
        want = self.issuer.rstrip("/")
        for auth_id in consumer.auth_ids:
            auth = state.auths.get(auth_id)
            if auth is None or not auth.enabled or auth.type not in TOKEN_AUTH_TYPES:
                continue
            if str((auth.config or {}).get("issuer") or "").rstrip("/") == want:
                return consumer, auth
        return None

    async def _subject(self, code: str, base: str, verifier: str, nonce: str) -> str:
        s = self.settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": base + CALLBACK,
            "client_id": s.default_idp_client_id,
            "client_secret": s.default_idp_client_secret,
            "code_verifier": verifier,
        }
        tokens = await self._fetch("POST", s.default_idp_token_url, form)
        id_token, access = tokens.get("id_token"), tokens.get("access_token")
        if isinstance(id_token, str):
            claims = await self._verified(id_token, audience=s.default_idp_client_id)
            if claims.get("nonce") not in (None, nonce):
                raise IdpFailure("id token nonce mismatch")
        elif isinstance(access, str):
            claims = await self._verified(access, audience=None)
        else:
            raise IdpFailure("the token answer carries no token")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise IdpFailure("the token has no subject")
        return sub

    async def _verified(self, token: str, audience: str | None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = await self._key(header.get("kid"))
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=sorted(ASYMMETRIC_ALGORITHMS),
                issuer=self.issuer,
                audience=audience,
                options={"verify_aud": audience is not None, "require": ["exp", "iss", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise IdpFailure(f"token refused: {type(exc).__name__}") from exc
        return claims

    async def _key(self, kid: Any) -> Any:
        if kid not in self._keys and time.monotonic() - self._fetched > _JWKS_REFRESH:
            self._fetched = time.monotonic()
            doc = await self._fetch("GET", self.settings.default_idp_jwks_url, None)
            keys: dict[str | None, Any] = {}
            for jwk in doc.get("keys") or ():
                try:
                    keys[jwk.get("kid")] = jwt.PyJWK(jwk).key
                except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                    continue
            self._keys = keys
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise IdpFailure("no IdP key for the token's kid")
        return key

    async def _fetch(self, method: str, url: str, form: dict[str, str] | None) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT) as session,
                session.request(
                    method, url, data=form, headers={"accept": "application/json"}
                ) as response,
            ):
                if response.status != 200:
                    raise IdpFailure(f"{url} answered HTTP {response.status}")
                doc = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise IdpFailure(f"{url} unreachable or not JSON: {type(exc).__name__}") from exc
        if not isinstance(doc, dict):
            raise IdpFailure(f"{url} did not answer a JSON object")
        return doc


async def _expired(send: Send) -> None:
    page = message_page("This page has expired", "Go back to your application and connect again.")
    await http.html(send, 400, page)
