"""Consumer bearer tokens: OIDC/OAuth2 JWTs and opaque OAuth2 tokens (reference §3,
"Credential sources" 3).

A JWT is checked against the auths attached to the path's consumer: signature by a key of
the auth's JWKS (``jwks_url``, ``public_keys``, or the issuer's discovery document) with an
asymmetric algorithm only, ``iss``, ``aud`` (any of ``audiences``), ``exp``/``nbf`` with a
small leeway and ``required_scopes``. An opaque token goes to the auth's RFC 7662
``introspection_url``. Verified tokens are cached by the SHA-256 of the token until they
expire (bounded), so a repeat costs a hash and a dict lookup. A JWKS is refreshed on an
unknown ``kid`` at most once per ``refresh_interval`` per auth, so a flood of unknown kids
cannot hammer the IdP; an IdP that is down refuses new tokens (401) while cached ones work.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import jwt

from trustgate_core.access.idp_http import FetchJson, IdpError, http_fetcher
from trustgate_core.errors import Forbidden, Unauthenticated
from trustgate_core.models import Auth

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
TOKEN_AUTH_TYPES = frozenset({"oauth2", "oidc"})
_NO_EXPIRY_TTL = 60.0
# signature, iss and aud by pyjwt; exp and nbf by `_timing`, on the verifier's clock
_CLAIMS_CHECKED_HERE: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}  # an introspected token without ``exp`` is trusted this long


class Verified:
    """A token that passed: the auth it belongs to, its subject and claims."""

    __slots__ = ("auth", "claims", "expires", "subject")

    def __init__(self, auth: Auth, subject: str | None, claims: Mapping[str, Any], expires: float):
        self.auth = auth
        self.subject = subject
        self.claims = claims
        self.expires = expires


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _scopes(claims: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(str(v) for v in value)
    return found


def _audiences(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


class _Issuer:
    """One auth's compiled settings and its key set."""

    def __init__(self, auth: Auth, config: Mapping[str, Any]) -> None:
        self.auth = auth
        self.kind = auth.type
        self.issuer: str | None = config.get("issuer") or None
        self.audiences: list[str] = [str(a) for a in config.get("audiences") or []]
        algs = {str(a) for a in config.get("allowed_algorithms") or ()} or set(
            ASYMMETRIC_ALGORITHMS
        )
        self.algorithms = frozenset(algs & ASYMMETRIC_ALGORITHMS)  # never none, never HS*
        self.required_scopes = frozenset(str(s) for s in config.get("required_scopes") or ())
        self.subject_claim: str = config.get("subject_claim") or "sub"
        self.jwks_url: str | None = config.get("jwks_url") or None
        self.introspection_url: str | None = config.get("introspection_url") or None
        client_id, secret = config.get("client_id"), config.get("client_secret")
        self.client: tuple[str, str] | None = (
            (str(client_id), str(secret)) if client_id and secret else None
        )
        self.discover = bool(
            self.issuer
            and self.issuer.startswith(("http://", "https://"))
            and not self.jwks_url
            and not config.get("public_keys")
        )
        self.keys: dict[str | None, Any] = _static_keys(config.get("public_keys"))
        self.static = bool(self.keys)
        self.last_refresh = -1e18
        self.refreshing: asyncio.Future[None] | None = None

    def subject(self, claims: Mapping[str, Any]) -> str | None:
        value = claims.get(self.subject_claim)
        return None if value is None else str(value)


def _jwk_key(jwk: Mapping[str, Any]) -> tuple[str | None, Any] | None:
    try:
        key = jwt.PyJWK(dict(jwk))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None  # a key of a type or curve we cannot use: skipped, not fatal
    if jwk.get("use") not in (None, "sig"):
        return None
    return jwk.get("kid"), key.key


def _keys_of_jwks(doc: Mapping[str, Any]) -> dict[str | None, Any]:
    found: dict[str | None, Any] = {}
    for jwk in doc.get("keys") or ():
        if isinstance(jwk, dict) and (pair := _jwk_key(jwk)) is not None:
            found[pair[0]] = pair[1]
    return found


def _static_keys(value: Any) -> dict[str | None, Any]:
    """``public_keys``: a JWKS object, a list of JWKs, of PEM strings or of ``{kid, pem}``."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        return _keys_of_jwks(value)
    found: dict[str | None, Any] = {}
    for n, item in enumerate(value if isinstance(value, list) else ()):
        try:
            if isinstance(item, str):
                found[f"#{n}"] = load_pem_public_key(item.encode())
            elif isinstance(item, dict) and "pem" in item:
                found[item.get("kid") or f"#{n}"] = load_pem_public_key(str(item["pem"]).encode())
            elif isinstance(item, dict) and (pair := _jwk_key(item)) is not None:
                found[pair[0] or f"#{n}"] = pair[1]
        except (ValueError, TypeError):
            continue
    return found


class TokenVerifier:
    """Verifies consumers' bearer tokens; one per process, shared by its requests."""

    def __init__(
        self,
        fetch: FetchJson | None = None,
        *,
        open_config: Callable[[Any], Any] = lambda doc: doc,
        refresh_interval: float = 30.0,
        leeway: float = 30.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch or http_fetcher()
        self._open = open_config
        self.refresh_interval = refresh_interval
        self.leeway = leeway
        self._cache_size = cache_size
        self._clock = clock
        self._monotonic = monotonic
        self._issuers: dict[UUID, _Issuer] = {}
        self._verified: dict[bytes, Verified] = {}

    async def verify(self, token: str, auths: Iterable[Auth]) -> Verified:
        """The first of ``auths`` (enabled oauth2/oidc auths attached to the consumer) the
        token is valid for. Raises ``Unauthenticated`` (401) when none accepts it and
        ``Forbidden`` (403) when it is valid but lacks a required scope."""
        candidates = [a for a in auths if a.enabled and a.type in TOKEN_AUTH_TYPES]
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            if hit.expires > self._clock() and any(a is hit.auth for a in candidates):
                return hit
            if hit.expires <= self._clock():
                del self._verified[digest]
        if not candidates:
            raise Unauthenticated("no_token_auth")
        if looks_like_jwt(token):
            verified = await self._verify_jwt(token, candidates)
        else:
            verified = await self._introspect(token, candidates)
        self._remember(digest, verified)
        return verified

    def _remember(self, digest: bytes, verified: Verified) -> None:
        cache = self._verified
        if len(cache) >= self._cache_size:
            now = self._clock()
            for key in [k for k, v in cache.items() if v.expires <= now]:
                del cache[key]
            if len(cache) >= self._cache_size:
                cache.clear()
        cache[digest] = verified

    def _issuer(self, auth: Auth) -> _Issuer:
        found = self._issuers.get(auth.id)
        if found is None or found.auth is not auth:
            opened = self._open(auth.config or {})
            config = opened.get(auth.type) if isinstance(opened.get(auth.type), dict) else opened
            found = self._issuers[auth.id] = _Issuer(auth, config)
        return found

    # -- JWTs -------------------------------------------------------------------------
    async def _verify_jwt(self, token: str, auths: Sequence[Auth]) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed_token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS:  # none, HS* (a public key as an HMAC secret)
            raise Unauthenticated("algorithm_refused")
        reason = "no_auth_accepts_token"
        short_of_scope = False
        for auth in auths:
            issuer = self._issuer(auth)
            if alg not in issuer.algorithms:
                reason = "algorithm_not_allowed"
                continue
            keys = await self._keys_for(issuer, kid)
            if not keys:
                reason = "unknown_kid"
                continue
            for key in keys:
                try:
                    claims = jwt.decode(
                        token,
                        key,
                        algorithms=[alg],
                        audience=issuer.audiences,
                        issuer=issuer.issuer,
                        options=_CLAIMS_CHECKED_HERE,
                    )
                except jwt.InvalidSignatureError:
                    reason = "bad_signature"
                    continue
                except (jwt.PyJWTError, ValueError, TypeError) as exc:
                    reason = type(exc).__name__
                    break  # the key fit; the claims did not: the next auth
                timing = self._timing(claims)
                if timing:
                    reason = timing
                    break
                if not issuer.required_scopes <= _scopes(claims):
                    short_of_scope = True
                    break
                return Verified(auth, issuer.subject(claims), claims, float(claims["exp"]))
        if short_of_scope:
            raise Forbidden("forbidden")
        raise Unauthenticated(reason)

    def _timing(self, claims: Mapping[str, Any]) -> str | None:
        """Why ``exp`` (required) or ``nbf`` refuse the token now, on this verifier's clock
        (the one its cache expires on), with the leeway."""
        now, exp, nbf = self._clock(), claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            return "no_exp"
        if exp + self.leeway <= now:
            return "expired"
        if nbf is not None and (not isinstance(nbf, (int, float)) or nbf - self.leeway > now):
            return "not_yet_valid"
        return None

    async def _keys_for(self, issuer: _Issuer, kid: str | None) -> list[Any]:
        if kid in issuer.keys:
            return [issuer.keys[kid]]
        if kid is None and issuer.keys:
            return list(issuer.keys.values())
        if issuer.static or not (issuer.jwks_url or issuer.discover):
            return []
        await self._refresh(issuer)
        if kid is None:
            return list(issuer.keys.values())
        return [issuer.keys[kid]] if kid in issuer.keys else []

    async def _refresh(self, issuer: _Issuer) -> None:
        """Fetch the JWKS again unless it was fetched (or tried) within the interval;
        concurrent callers share one fetch."""
        if issuer.refreshing is not None:
            await asyncio.shield(issuer.refreshing)
            return
        if self._monotonic() - issuer.last_refresh < self.refresh_interval:
            return
        issuer.last_refresh = self._monotonic()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        issuer.refreshing = done
        try:
            url = issuer.jwks_url or await self._discovered(issuer, "jwks_uri")
            if url:
                keys = _keys_of_jwks(await self._fetch(url, None, None))
                if keys and not issuer.keys:
                    issuer.last_refresh = -1e18  # the first load: a rotation may follow soon
                issuer.keys = keys or issuer.keys
        except IdpError:
            pass  # the keys we hold stay; unknown kids are refused until the next try
        finally:
            issuer.refreshing = None
            done.set_result(None)

    async def _discovered(self, issuer: _Issuer, field: str) -> str | None:
        if not issuer.discover or not issuer.issuer:
            return None
        url = issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._fetch(url, None, None)
        if doc.get("issuer") not in (issuer.issuer, issuer.issuer.rstrip("/")):
            return None  # a document for another issuer is not trusted
        value = doc.get(field)
        return value if isinstance(value, str) else None

    # -- opaque tokens (RFC 7662) -----------------------------------------------------
    async def _introspect(self, token: str, auths: Sequence[Auth]) -> Verified:
        reason = "no_introspection"
        for auth in auths:
            issuer = self._issuer(auth)
            if issuer.kind != "oauth2":
                continue
            try:
                url = issuer.introspection_url or await self._discovered(
                    issuer, "introspection_endpoint"
                )
                if not url:
                    continue
                answer = await self._fetch(
                    url, {"token": token, "token_type_hint": "access_token"}, issuer.client
                )
            except IdpError:
                reason = "idp_unreachable"
                continue
            if answer.get("active") is not True:
                reason = "inactive_token"
                continue
            now = self._clock()
            exp = answer.get("exp")
            if isinstance(exp, (int, float)) and exp + self.leeway <= now:
                reason = "expired"
                continue
            nbf = answer.get("nbf")
            if isinstance(nbf, (int, float)) and nbf - self.leeway > now:
                reason = "not_yet_valid"
                continue
            if issuer.issuer and "iss" in answer and answer["iss"] != issuer.issuer:
                reason = "wrong_issuer"
                continue
            if "aud" in answer and not _audiences(answer["aud"]) & set(issuer.audiences):
                reason = "wrong_audience"
                continue
            if not issuer.required_scopes <= _scopes(answer):
                raise Forbidden("forbidden")
            expires = float(exp) if isinstance(exp, (int, float)) else now + _NO_EXPIRY_TTL
            return Verified(auth, issuer.subject(answer), answer, expires)
        raise Unauthenticated(reason)
