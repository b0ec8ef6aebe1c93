"""How the plane authenticates to an upstream MCP server (``mcp_target.auth.mode``).

``none``; ``static`` (one header); ``passthrough`` (the caller's own bearer token, only
when its ``aud`` names the upstream: anything else would hand a token to a server it was
not issued for); ``client_credentials`` (the plane's own token, cached per registry);
``exchange`` (RFC 8693: the caller's token traded for one the upstream accepts, cached
per caller token). The caller's token is never forwarded otherwise. ``forwarded`` is
refused here as the admin refuses it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from trustgate_mcp.services.ports import Caller, UpstreamAuthRequired, UpstreamUnavailable

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# A token is renewed this long before the issuer says it expires.
EXPIRY_MARGIN = 30.0
# Without ``expires_in`` a token is reused this long.
DEFAULT_LIFETIME = 60.0
# Exchanged tokens kept (one per caller token and registry) before expired ones are pruned.
MAX_EXCHANGED = 4096


def credential_key(mode: str, caller: Caller) -> str:
    """Whose credential reaches the upstream: ``""`` when it is the registry's own (none,
    static, client_credentials), else a digest of the caller's token."""
    if mode in ("passthrough", "exchange") and caller.token:
        return token_digest(caller.token)
    return ""


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

    def __init__(self, auth: dict[str, Any] | None, http: aiohttp.ClientSession, timeout: float):
        self.config = auth or {}
        self.mode: str = self.config.get("mode", "none")
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

    async def headers(self, caller: Caller) -> dict[str, str] | None:
        """The per-call auth header, or None when the mode needs none per call."""
        mode = self.mode
        if mode in ("none", "static"):
            return None
        if mode == "passthrough":
            return {"Authorization": f"Bearer {self._passthrough(caller)}"}
        if mode == "client_credentials":
            return {"Authorization": f"Bearer {await self._cached('', None)}"}
        if mode == "exchange":
            if not caller.token:
                raise UpstreamAuthRequired("the upstream needs the caller's bearer token")
            key = token_digest(caller.token)
            return {"Authorization": f"Bearer {await self._cached(key, caller.token)}"}
        if mode == "forwarded":
            raise UpstreamAuthRequired("forwarded is not supported")
        raise UpstreamAuthRequired(f"unknown upstream auth mode {mode!r}")

    def _passthrough(self, caller: Caller) -> str:
        token = caller.token
        if not token:
            raise UpstreamAuthRequired("the upstream needs the caller's bearer token")
        expected = self.config.get("expected_audience")
        if not expected or str(expected) not in audiences(token):
            raise UpstreamAuthRequired("the caller's token is not for this upstream's audience")
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
        """One token from ``token_url``: client credentials, or an exchange of
        ``subject_token``."""
        cfg = self.config
        form: dict[str, str] = {}
        if subject_token is None:
            form["grant_type"] = "client_credentials"
        else:
            form["grant_type"] = TOKEN_EXCHANGE
            form["subject_token"] = subject_token
            form["subject_token_type"] = ACCESS_TOKEN_TYPE
        scope = cfg.get("scopes", cfg.get("scope"))
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        if scope:
            form["scope"] = str(scope)
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
            if code == "invalid_grant" and form["grant_type"] == TOKEN_EXCHANGE:
                raise UpstreamAuthRequired(reason)
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
