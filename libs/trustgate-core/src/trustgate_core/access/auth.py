"""Consumer authentication by API key, and the bearer token that is not one (reference §3,
"Credential sources")."""

from __future__ import annotations

from trustgate_core.errors import Forbidden, Unauthenticated
from trustgate_core.ids import API_KEY_PREFIX, hash_api_key
from trustgate_core.models import Auth, Consumer, Gateway
from trustgate_core.replica import ReplicaState

_BEARER = "bearer "


def api_key_from_headers(
    x_ag_api_key: str | None, x_api_key: str | None, authorization: str | None
) -> str | None:
    """`X-AG-API-Key`, then `x-api-key`, then `Authorization: Bearer ag_…` (only tokens
    that carry the ``ag_`` prefix: other bearer tokens are for OAuth2)."""
    if x_ag_api_key:
        return x_ag_api_key
    if x_api_key:
        return x_api_key
    if authorization and authorization[:7].lower() == _BEARER:
        token = authorization[7:].strip()
        if token.startswith(API_KEY_PREFIX):
            return token
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer …`` when it is not an API key (an OIDC/OAuth2
    token for `TokenVerifier`)."""
    if authorization and authorization[:7].lower() == _BEARER:
        token = authorization[7:].strip()
        if token and not token.startswith(API_KEY_PREFIX):
            return token
    return None


def authenticate(
    state: ReplicaState,
    gateway: Gateway,
    consumer: Consumer,
    auth_ids: frozenset[object],
    key: str | None,
) -> Auth:
    """The auth the key belongs to, if it is enabled and attached to ``consumer``.

    Missing or unknown key (or one of another gateway, or disabled) → 401, one answer for
    all (the reason is for the server's log); a valid key that is not attached to this
    consumer → 403.
    """
    if not key:
        raise Unauthenticated("missing_key")
    auth = state.auth_by_key_hash(hash_api_key(key))
    if auth is None or auth.type != "api_key" or auth.gateway_id != gateway.id:
        raise Unauthenticated("bad_key")
    if not auth.enabled:
        raise Unauthenticated("disabled_key")
    if auth.id not in auth_ids:
        raise Forbidden("forbidden")
    if not consumer.active:
        raise Forbidden("consumer is inactive")
    return auth
