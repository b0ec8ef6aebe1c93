"""The authorization endpoint: checks an authorization request, shows the connect page,
signs the person in (the consumer's API key here, an IdP in ``idp``) and sends the
browser back to the client with a code.

The page's form carries the checked request sealed (the "form token", 10 minutes): the
POST trusts nothing else the browser sends but the key, so it cannot be steered to
another client, redirect URI or consumer (CSRF-safe without a cookie). Before the
redirect URI is known to be the client's, errors are shown here; after, they go back to
the client (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlencode

from trustgate_core.access import authenticate
from trustgate_core.counters import Counters, CountersUnavailable
from trustgate_core.errors import TrustGateError
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Receive, Scope, Send
from trustgate_mcp.oauth import http
from trustgate_mcp.oauth.clients import client_of
from trustgate_mcp.oauth.grants import SCOPE, Grants, client_hash
from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.page import connect_page, message_page
from trustgate_mcp.oauth.urls import AUTHORIZE, IDP_START, slug_of

log = logging.getLogger(__name__)

FORM = b"form"
FORM_TTL = 600
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Redirected(Exception):
    """An error for the client, sent to its (checked) redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str):
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.params = {"error": error, "error_description": description}
        if state is not None:
            self.params["state"] = state


def check_request(sealer: Sealer, q: dict[str, str], base: str) -> dict[str, Any]:
    """The checked authorization request; raises `BadRequest` (shown here) or
    `Redirected` (sent to the client)."""
    client = client_of(sealer, q.get("client_id"))
    if client is None:
        raise BadRequest("invalid_client", "unknown client_id: register the client first")
    redirect_uri = q.get("redirect_uri")
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        raise BadRequest("invalid_request", "redirect_uri is not one the client registered")
    state = q.get("state")

    def refuse(error: str, description: str) -> Redirected:
        return Redirected(redirect_uri, state, error, description)

    if q.get("response_type") != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    if q.get("code_challenge_method") != "S256":
        raise refuse("invalid_request", "PKCE is required, with code_challenge_method=S256")
    challenge = q.get("code_challenge") or ""
    if not _CHALLENGE.match(challenge):
        raise refuse("invalid_request", "code_challenge must be a base64url SHA-256 (43 chars)")
    resource = q.get("resource")
    if not resource:
        raise refuse("invalid_target", "resource is required: the MCP server's URL")
    slug = slug_of(resource, base)
    if slug is None:
        raise refuse("invalid_target", f"resource must be an MCP URL of {base}")
    scopes = (q.get("scope") or SCOPE).split()
    if any(s != SCOPE for s in scopes):
        raise refuse("invalid_scope", f"the only scope is {SCOPE}")
    return {
        "cid": client.client_id,
        "name": client.name,
        "ru": redirect_uri,
        "state": state,
        "ch": challenge,
        "res": resource,
        "slug": slug,
        "scope": SCOPE,
    }


class Authorize:
    def __init__(
        self,
        state: ReplicaState,
        sealer: Sealer,
        counters: Counters,
        grants: Grants,
        rate_per_minute: int,
        idp_name: str | None,
    ) -> None:
        self.state = state
        self.sealer = sealer
        self.counters = counters
        self.grants = grants
        self.rate = rate_per_minute
        self.idp_name = idp_name

    def form_token(self, request: dict[str, Any]) -> str:
        return self.sealer.seal(FORM, {"q": request, "exp": int(time.time()) + FORM_TTL})

    def open_form(self, token: str | None) -> dict[str, Any] | None:
        doc = self.sealer.open(FORM, token) if token else None
        if not isinstance(doc, dict) or int(doc.get("exp") or 0) < time.time():
            return None
        request = doc.get("q")
        return request if isinstance(request, dict) else None

    async def show(self, send: Send, request: dict[str, Any], error: str | None = None) -> None:
        token = self.form_token(request)
        idp = None
        if self.idp_name is not None:
            idp = (self.idp_name, f"{IDP_START}?{urlencode({'form': token})}")
        page = connect_page(
            client_name=request["name"],
            resource=request["res"],
            form_token=token,
            action=AUTHORIZE,
            idp=idp,
            error=error,
        )
        await http.html(send, 401 if error else 200, page)

    async def get(self, scope: Scope, send: Send, base: str) -> None:
        try:
            request = check_request(self.sealer, http.query(scope), base)
        except Redirected as refused:
            await http.redirect(send, refused.redirect_uri, refused.params)
            return
        await self.show(send, request)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The connect form: the person's API key for the request's consumer."""
        if not await self._within_rate(scope):
            page = message_page("Too many attempts", "Wait a minute, then try again.")
            await http.html(send, 429, page, [(b"retry-after", b"60")])
            return
        fields = await http.form(scope, receive)
        request = self.open_form(fields.get("form"))
        if request is None:
            page = message_page(
                "This page has expired", "Go back to your application and connect again."
            )
            await http.html(send, 400, page)
            return
        consumer = self.state.consumer_by_any_slug(request["slug"])
        gateway = self.state.gateways.get(consumer.gateway_id) if consumer else None
        auth = None
        if consumer is not None and gateway is not None and consumer.type == "MCP":
            try:
                auth = authenticate(
                    self.state,
                    gateway,
                    consumer,
                    frozenset(consumer.auth_ids),
                    fields.get("api_key"),
                )
            except TrustGateError as exc:
                log.info("mcp connect refused for %s: %s", request["slug"], exc)
        if consumer is None or gateway is None or auth is None or not gateway.active:
            await self.show(send, request, "That key does not open this MCP server.")
            return
        grant = {
            "gid": str(gateway.id),
            "cid": str(consumer.id),
            "aid": str(auth.id),
            "sub": f"auth:{auth.id}",
        }
        await self.approve(send, request, grant)

    async def approve(self, send: Send, request: dict[str, Any], grant: dict[str, Any]) -> None:
        """Back to the client with a code for ``grant`` (who signed in, for which consumer)."""
        full = {
            **grant,
            "scope": request["scope"],
            "res": request["res"],
            "cl": client_hash(request["cid"]),
        }
        code = self.grants.code(full, request["ru"], request["ch"])
        answer = {"code": code}
        if request.get("state") is not None:
            answer["state"] = request["state"]
        await http.redirect(send, request["ru"], answer)

    async def _within_rate(self, scope: Scope) -> bool:
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        try:
            hit = await self.counters.hit(f"mcp:oauth:connect:{ip}", self.rate, 60_000)
        except CountersUnavailable:
            return True  # keys are long random strings: a limit outage is not a break-in
        return hit.allowed
