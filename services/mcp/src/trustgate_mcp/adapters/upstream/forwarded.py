"""Upstream auth mode ``forwarded``: each end user's own token at an OAuth-protected
upstream MCP server, from their one-time sign-in there (the connect flow,
``oauth.connect``).

Whose token: the caller's authenticated subject (an OAuth token's ``sub``, a
certificate's identity), else its consumer (an API key stands for its consumer); see
``auth.user_of``. Tokens are kept per gateway, registry and user, sealed (AES-256-GCM
under the plane's sealing key, derived from the secrets key) in Redis when the plane
shares counters there (``trustgate:mcp:upstream-token:…``, so every replica uses them),
else in this process. A token about to expire is refreshed with its refresh token (one
refresh per user at a time on a replica); a user without a usable token gets
`ConsentRequired` with a connect URL on the plane: ``{base}/oauth/connect/{registry id}
?ticket=…``, the ticket sealed, naming the user, and valid for ``TICKET_TTL``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from trustgate_core.counters import Counters, CountersUnavailable, RedisCounters
from trustgate_core.models import Registry
from trustgate_mcp.adapters.upstream.auth import AUTH_REQUIRED, user_of
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.services.ports import Caller, ConsentRequired, UpstreamUnavailable

log = logging.getLogger(__name__)

TICKET: Final = b"upstream-connect-ticket"
TOKENS: Final = b"upstream-tokens"
TICKET_TTL: Final = 600
# a user's tokens are kept this long after their last sign-in or refresh
KEEP: Final = 30 * 24 * 3600
# without ``expires_in`` an upstream access token is used this long
DEFAULT_LIFETIME: Final = 3600
EXPIRY_MARGIN: Final = 30
_KEY: Final = "trustgate:mcp:upstream-token:"
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class TokenFailure(Exception):
    """A token endpoint did not give tokens (the reason is for the log: no secret)."""


def client_auth(
    form: dict[str, str], client_id: str, secret: str | None, method: str
) -> dict[str, str]:
    """The client's authentication at a token endpoint: ``client_secret_basic`` (RFC 6749
    §2.3.1, both parts form-encoded first), ``client_secret_post``, or ``none`` (a public
    client: its id in the form). Returns the headers; ``form`` is completed in place."""
    headers = {"Accept": "application/json"}
    if secret and method == "client_secret_basic":
        pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_id"] = client_id
        if secret:
            form["client_secret"] = secret
    return headers


async def token_request(url: str, form: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    """POST ``form`` to a token endpoint; its JSON answer with an ``access_token``."""
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as http,
            http.post(url, data=form, headers=headers) as response,
        ):
            status = response.status
            raw = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenFailure(f"token endpoint unreachable ({type(exc).__name__})") from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if status != 200 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        code = error if isinstance(error, str) and error.isidentifier() else "?"
        raise TokenFailure(f"token endpoint answered HTTP {status} ({code})")
    if not isinstance(doc.get("access_token"), str) or not doc["access_token"]:
        raise TokenFailure("token endpoint answer has no access_token")
    return doc


class TokenStore(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, ttl: int) -> None: ...
    async def delete(self, key: str) -> None: ...


class LocalTokenStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[float, str]] = {}
        self._clock = clock

    async def get(self, key: str) -> str | None:
        entry = self._held.get(key)
        if entry is None or entry[0] <= self._clock():
            self._held.pop(key, None)
            return None
        return entry[1]

    async def put(self, key: str, value: str, ttl: int) -> None:
        self._held[key] = (self._clock() + ttl, value)

    async def delete(self, key: str) -> None:
        self._held.pop(key, None)


class RedisTokenStore:
    """On the counters' Redis connection (its deadline and failure mode): a store that
    cannot be read knows no token (the user is asked to connect again rather than the
    call failing with a 500)."""

    def __init__(self, counters: RedisCounters) -> None:
        self._counters = counters

    async def get(self, key: str) -> str | None:
        try:
            value = await self._counters.execute("GET", key)
        except CountersUnavailable:
            log.warning("mcp forwarded tokens: Redis unavailable, no token read")
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl: int) -> None:
        try:
            await self._counters.execute("SET", key, value, "PX", ttl * 1000)
        except CountersUnavailable:
            log.warning("mcp forwarded tokens: Redis unavailable, token not kept")

    async def delete(self, key: str) -> None:
        try:
            await self._counters.execute("DEL", key)
        except CountersUnavailable:
            return


def token_store(counters: Counters) -> TokenStore:
    """In Redis when the counters are there (shared by replicas), else in this process."""
    if isinstance(counters, RedisCounters):
        return RedisTokenStore(counters)
    return LocalTokenStore()


def base_of(resource: str | None) -> str | None:
    """The plane's base URL from a consumer's MCP URL (``{base}/{slug}/mcp``)."""
    if not resource or not resource.endswith("/mcp"):
        return None
    return resource.rsplit("/", 2)[0]


class ForwardedTokens:
    def __init__(self, sealer: Sealer, store: TokenStore) -> None:
        self.sealer = sealer
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def key(gateway_id: str, registry_id: str, user: str) -> str:
        digest = hashlib.sha256(user.encode()).hexdigest()
        return f"{_KEY}{gateway_id}:{registry_id}:{digest}"

    def _key_of(self, registry: Registry, caller: Caller) -> str:
        return self.key(str(caller.gateway.id), str(registry.id), user_of(caller))

    # --- the connect URL ----------------------------------------------------------------
    def ticket(self, registry: Registry, caller: Caller) -> str:
        doc = {
            "g": str(caller.gateway.id),
            "c": str(caller.consumer.id),
            "r": str(registry.id),
            "u": user_of(caller),
            "exp": int(time.time()) + TICKET_TTL,
        }
        return self.sealer.seal(TICKET, doc)

    def open_ticket(self, ticket: str) -> dict[str, Any] | None:
        doc = self.sealer.open(TICKET, ticket) if ticket else None
        if not isinstance(doc, dict) or int(doc.get("exp") or 0) < time.time():
            return None
        return doc

    def consent(self, registry: Registry, caller: Caller, why: str) -> ConsentRequired:
        """Counted and logged: the user has to connect (no URL without a base to build it
        on: a request without a usable Host and no ``MCP_PUBLIC_URL``)."""
        AUTH_REQUIRED["consent"] += 1
        log.info("mcp upstream %s (auth forwarded): user must connect: %s", registry.name, why)
        base = base_of(caller.resource)
        url = None
        if base is not None:
            query = urlencode({"ticket": self.ticket(registry, caller)})
            url = f"{base}/oauth/connect/{registry.id}?{query}"
        message = (
            f"connect your account at this MCP server first: open {url} in a browser, "
            "sign in, then call again"
            if url
            else "connect your account at this MCP server first"
        )
        return ConsentRequired(message, registry.name, url)

    # --- tokens -------------------------------------------------------------------------
    async def save(
        self,
        gateway_id: str,
        registry_id: str,
        user: str,
        client: dict[str, Any],
        doc: dict[str, Any],
    ) -> None:
        """Keep a token answer (``doc``) for the user, with what refreshing it needs
        (``client``: token URL, client id and secret, auth method, resource)."""
        record = {**client, **_tokens(doc, None)}
        await self.store.put(
            self.key(gateway_id, registry_id, user), self.sealer.seal(TOKENS, record), KEEP
        )

    async def drop(self, registry: Registry, caller: Caller) -> None:
        await self.store.delete(self._key_of(registry, caller))

    async def bearer(self, registry: Registry, config: dict[str, Any], caller: Caller) -> str:
        """The user's access token at ``registry``'s upstream, refreshed if it is about
        to expire; `ConsentRequired` when there is none to use."""
        key = self._key_of(registry, caller)
        record = await self._record(key)
        if record is None:
            raise self.consent(registry, caller, "not connected")
        if record["exp"] > time.time():
            return str(record["at"])
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                fresh = await self._record(key)
                if fresh is not None and fresh["exp"] > time.time():
                    return str(fresh["at"])
                return await self._refresh(registry, caller, key, fresh or record)
        finally:
            self._locks.pop(key, None)

    async def _record(self, key: str) -> dict[str, Any] | None:
        sealed = await self.store.get(key)
        doc = self.sealer.open(TOKENS, sealed) if sealed else None
        return doc if isinstance(doc, dict) and isinstance(doc.get("at"), str) else None

    async def _refresh(
        self, registry: Registry, caller: Caller, key: str, record: dict[str, Any]
    ) -> str:
        refresh = record.get("rt")
        if not isinstance(refresh, str) or not refresh:
            await self.store.delete(key)
            raise self.consent(registry, caller, "the upstream token expired (no refresh token)")
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        if record.get("res"):
            form["resource"] = str(record["res"])
        headers = client_auth(
            form, str(record["ci"]), record.get("cs"), str(record.get("am") or "none")
        )
        try:
            doc = await token_request(str(record["tu"]), form, headers)
        except TokenFailure as exc:
            if "HTTP 400" in str(exc) or "HTTP 401" in str(exc):
                await self.store.delete(key)
                raise self.consent(registry, caller, f"refresh refused: {exc}") from None
            raise UpstreamUnavailable(f"refreshing the user's token failed: {exc}") from None
        fresh = {**record, **_tokens(doc, refresh)}
        await self.store.put(key, self.sealer.seal(TOKENS, fresh), KEEP)
        return str(fresh["at"])


def _tokens(doc: dict[str, Any], previous_refresh: str | None) -> dict[str, Any]:
    """The parts of a token answer kept: access token, refresh token (a new one replaces
    the old, else the old is kept) and when the access token is to be renewed."""
    expires_in = doc.get("expires_in")
    lifetime = (
        int(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else DEFAULT_LIFETIME
    )
    refresh = doc.get("refresh_token")
    return {
        "at": doc["access_token"],
        "rt": refresh if isinstance(refresh, str) and refresh else previous_refresh,
        "exp": int(time.time()) + max(0, lifetime - EXPIRY_MARGIN),
    }
