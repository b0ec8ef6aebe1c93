"""How the plane authenticates to an upstream MCP server (``mcp_target.auth.mode``).

``none``; ``static`` (one header); ``passthrough`` (the caller's own bearer token, only
when its ``aud`` names the upstream: anything else would hand a token to a server it was
not issued for); ``client_credentials`` (the plane's own token, cached per registry);
``exchange`` (the caller's token traded for one the upstream accepts, cached per caller
token, by ``pattern``: ``impersonation`` and ``token_exchange``, RFC 8693 without an
actor; ``delegation``, RFC 8693 with an ``actor_token``, the plane's own
client-credentials token (``actor: client_credentials``) or a configured one
(``actor: static``, ``actor_token``, ``actor_token_type``); ``obo``, the on-behalf-of
grant, RFC 7523 ``jwt-bearer`` with ``requested_token_use=on_behalf_of``);
``forwarded`` (each user's own upstream token, from their sign-in to the upstream through
the plane's connect flow: ``adapters.upstream.forwarded``). The caller's token is never
forwarded otherwise.

A caller that brings nothing the mode can use gets `UpstreamAuthRequired` (forwarded:
`ConsentRequired`, with the URL to connect at), logged and counted in
``AUTH_REQUIRED`` (the ``/metrics`` reading ``trustgate_mcp_upstream_auth_required_total``),
so a server left out under ``fail_mode: open`` for that reason is never left out silently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from trustgate_mcp.services.ports import Caller, UpstreamAuthRequired, UpstreamUnavailable

if TYPE_CHECKING:
    from trustgate_core.models import Registry
    from trustgate_mcp.adapters.upstream.forwarded import ForwardedTokens

log = logging.getLogger(__name__)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: ``actor_token_type`` short names (the URN itself is accepted too)
TOKEN_TYPES = {
    "access_token": ACCESS_TOKEN_TYPE,
    "jwt": "urn:ietf:params:oauth:token-type:jwt",
    "id_token": "urn:ietf:params:oauth:token-type:id_token",
}
PATTERNS = ("impersonation", "delegation", "obo", "token_exchange")
# A token is renewed this long before the issuer says it expires.
EXPIRY_MARGIN = 30.0
# Without ``expires_in`` a token is reused this long.
DEFAULT_LIFETIME = 60.0
# Exchanged tokens kept (one per caller token and registry) before expired ones are pruned.
MAX_EXCHANGED = 4096
# the plane's own token (client credentials, and the delegation actor's) is cached under it
OWN = ""
# errors of a token endpoint that mean "this caller's token will not do" (ask the caller)
CALLER_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})

#: why callers were asked to authenticate, since the process started (bounded keys)
AUTH_REQUIRED: Counter[str] = Counter()


def auth_required(reason: str, mode: str, registry: str, why: str) -> UpstreamAuthRequired:
    """Counted and logged (no token in it): a server left out under ``fail_mode: open``
    for this reason is visible in the log and ``/metrics``."""
    AUTH_REQUIRED[reason] += 1
    log.info("mcp upstream %s (auth %s): caller must authenticate: %s", registry, mode, why)
    return UpstreamAuthRequired(why, reason)


def credential_key(mode: str, caller: Caller) -> str:
    """Whose credential reaches the upstream: ``""`` when it is the registry's own (none,
    static, client_credentials), else a digest of the caller's token (passthrough,
    exchange) or of the user (forwarded)."""
    if mode in ("passthrough", "exchange") and caller.token:
        return token_digest(caller.token)
    if mode == "forwarded":
        return token_digest(user_of(caller))
    return ""


def user_of(caller: Caller) -> str:
    """The end user a forwarded upstream token belongs to: the caller's authenticated
    subject (an OAuth token's ``sub``, a certificate's identity), else the consumer (an
    API key stands for its consumer)."""
    if caller.subject is not None:
        return f"s:{caller.subject}"
    return f"c:{caller.consumer.id}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audiences(token: str) -> list[str]:
    """The ``aud`` claim of a JWT, read without verification (the upstream verifies the
    token; this only decides whether it may be sent there). Empty when not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return []
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(segment))
    except (binascii.Error, ValueError):
        return []
    aud = claims.get("aud") if isinstance(claims, dict) else None
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


class UpstreamAuth:
    """The auth headers for one registry's target (its ``auth`` already opened)."""

    def __init__(
        self,
        auth: dict[str, Any] | None,
        http: aiohttp.ClientSession,
        timeout: float,
        *,
        registry: Registry | None = None,
        forwarded: ForwardedTokens | None = None,
    ):
        self.config = auth or {}
        self.mode: str = self.config.get("mode", "none")
        self.registry = registry
        self.name = registry.name if registry is not None else "?"
        self._forwarded = forwarded
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def static_headers(self) -> dict[str, str]:
        """Headers that never change (mode static); merged once into the base headers."""
        header, value = self.config.get("header"), self.config.get("value")
        if self.mode == "static" and header and value is not None:
            return {str(header): str(value)}
        return {}

    def forget(self, caller: Caller) -> None:
        """Drop the token cached for ``caller`` (the upstream refused it)."""
        self._tokens.pop(credential_key(self.mode, caller), None)

    async def refused(self, caller: Caller, why: str) -> UpstreamAuthRequired | None:
        """The upstream refused the credential (HTTP 401/403): forget it; for a caller's
        own credential, what to tell the caller (None: the registry's own was refused)."""
        self.forget(caller)
        if self.mode == "forwarded" and self._forwarded is not None and self.registry:
            await self._forwarded.drop(self.registry, caller)
            return self._forwarded.consent(self.registry, caller, "the upstream refused it")
        if self.mode in ("passthrough", "exchange"):
            return auth_required("refused", self.mode, self.name, why)
        return None

    async def headers(self, caller: Caller) -> dict[str, str] | None:
        """The per-call auth header, or None when the mode needs none per call."""
        mode = self.mode
        if mode in ("none", "static"):
            return None
        if mode == "passthrough":
            return {"Authorization": f"Bearer {self._passthrough(caller)}"}
        if mode == "client_credentials":
            return {"Authorization": f"Bearer {await self._cached(OWN, None)}"}
        if mode == "exchange":
            if not caller.token:
                raise auth_required(
                    "no_token",
                    mode,
                    self.name,
                    "this MCP server needs your bearer token, traded for one it accepts: "
                    "authenticate with a token (OAuth), not an API key",
                )
            key = token_digest(caller.token)
            return {"Authorization": f"Bearer {await self._cached(key, caller.token)}"}
        if mode == "forwarded":
            if self._forwarded is None or self.registry is None:
                raise UpstreamAuthRequired("forwarded is not supported without the connect flow")
            token = await self._forwarded.bearer(self.registry, self.config, caller)
            return {"Authorization": f"Bearer {token}"}
        raise UpstreamAuthRequired(f"unknown upstream auth mode {mode!r}")

    def _passthrough(self, caller: Caller) -> str:
        token = caller.token
        expected = self.config.get("expected_audience")
        if not token:
            raise auth_required(
                "no_token",
                "passthrough",
                self.name,
                f"this MCP server takes only a bearer token issued for {expected!r}: "
                "authenticate with one (an API key is not enough)",
            )
        if not expected or str(expected) not in audiences(token):
            raise auth_required(
                "wrong_audience",
                "passthrough",
                self.name,
                f"your token is not for this MCP server: it takes only a bearer token "
                f"issued for {expected!r}",
            )
        return token

    async def _cached(self, key: str, subject_token: str | None) -> str:
        token = self._tokens.get(key)
        if token is not None and token.expires > time.monotonic():
            return token.value
        # one fetch per key at a time: callers arriving meanwhile take its token
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                token = self._tokens.get(key)
                if token is None or token.expires <= time.monotonic():
                    token = await self._fetch(subject_token)
                    self._remember(key, token)
        finally:
            self._locks.pop(key, None)
        return token.value

    def _remember(self, key: str, token: _Token) -> None:
        if len(self._tokens) >= MAX_EXCHANGED:
            now = time.monotonic()
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires > now}
            while len(self._tokens) >= MAX_EXCHANGED:
                del self._tokens[next(iter(self._tokens))]
        self._tokens[key] = token

    async def _fetch(self, subject_token: str | None) -> _Token:
        """One token from ``token_url``: the plane's own (client credentials), or the
        caller's ``subject_token`` traded by the exchange ``pattern``."""
        cfg = self.config
        form: dict[str, str] = {}
        pattern = str(cfg.get("pattern") or "token_exchange")
        if subject_token is None:
            form["grant_type"] = "client_credentials"
        elif pattern == "obo":
            # the on-behalf-of grant (Microsoft Entra, also Okta and others): RFC 7523's
            # jwt-bearer with the caller's token as the assertion
            form["grant_type"] = JWT_BEARER
            form["assertion"] = subject_token
            form["requested_token_use"] = "on_behalf_of"
        else:
            form["grant_type"] = TOKEN_EXCHANGE
            form["subject_token"] = subject_token
            form["subject_token_type"] = ACCESS_TOKEN_TYPE
            if pattern == "delegation":
                form["actor_token"], form["actor_token_type"] = await self._actor()
        scope = cfg.get("scopes", cfg.get("scope"))
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        if scope:
            form["scope"] = str(scope)
        if form["grant_type"] != JWT_BEARER:
            for name in ("audience", "resource"):
                if cfg.get(name):
                    form[name] = str(cfg[name])
        headers = {"Accept": "application/json"}
        client_id = cfg.get("client_id")
        if client_id:
            secret = str(cfg.get("client_secret") or "")
            if cfg.get("token_endpoint_auth_method") == "client_secret_post":
                form["client_id"] = str(client_id)
                if secret:
                    form["client_secret"] = secret
            else:
                # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
                pair = f"{quote(str(client_id), safe='')}:{quote(secret, safe='')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return await self._post_form(str(cfg.get("token_url") or ""), form, headers)

    async def _actor(self) -> tuple[str, str]:
        """Delegation's actor: the plane's own client-credentials token (``actor:
        client_credentials``, from ``token_url`` with ``client_id``/``client_secret``), or
        the configured ``actor_token`` (``actor: static``)."""
        cfg = self.config
        if cfg.get("actor") == "client_credentials":
            return await self._cached(OWN, None), ACCESS_TOKEN_TYPE
        kind = str(cfg.get("actor_token_type") or "access_token")
        return str(cfg.get("actor_token") or ""), TOKEN_TYPES.get(kind, kind)

    async def _post_form(self, url: str, form: dict[str, str], headers: dict[str, str]) -> _Token:
        if not url:
            raise UpstreamUnavailable("the upstream auth has no token_url")
        try:
            async with self._http.post(
                url, data=form, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                body = await resp.read()
        except TimeoutError:
            raise UpstreamUnavailable("the token endpoint did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"cannot reach the token endpoint ({type(exc).__name__})"
            ) from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if status != 200:
            error = doc.get("error") if isinstance(doc, dict) else None
            code = error if isinstance(error, str) and error.isidentifier() else ""
            reason = f"the token endpoint answered HTTP {status}" + (f" ({code})" if code else "")
            if code in CALLER_ERRORS and form["grant_type"] in (TOKEN_EXCHANGE, JWT_BEARER):
                raise auth_required(
                    "exchange_refused",
                    "exchange",
                    self.name,
                    f"the token service would not trade your token for this MCP server "
                    f"({reason}): authenticate again",
                )
            raise UpstreamUnavailable(reason)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("the token endpoint's answer has no access_token")
        expires_in = doc.get("expires_in") if isinstance(doc, dict) else None
        lifetime = (
            float(expires_in) - EXPIRY_MARGIN
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else DEFAULT_LIFETIME
        )
        return _Token(token, time.monotonic() + lifetime)
