"""Structural validation of registry credentials, MCP targets and consumer auth configs.

Pure functions: each raises ``ValidationFailed`` with a message naming the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from trustgate_core.crypto import find_url_credentials
from trustgate_core.errors import ValidationFailed

REGISTRY_AUTH_TYPES = ("api_key", "azure", "aws", "oauth2", "gcp_service_account")


def _fail(field: str, msg: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {msg}")


def _section(auth: dict[str, Any], kind: str) -> dict[str, Any]:
    """The per-type object: ``{"type": "api_key", "api_key": {...}}``, or the flat form."""
    inner = auth.get(kind)
    if isinstance(inner, dict):
        return inner
    return {k: v for k, v in auth.items() if k != "type"}


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def refuse_url_credentials(field: str, doc: Any) -> None:
    """A URL with ``user:password@`` would carry its secret in clear (on the bus, in logs,
    in every answer): refused, naming the field but never repeating its value."""
    found = find_url_credentials(doc)
    if found:
        raise _fail(
            f"{field}.{found}",
            "must not carry credentials (user:password@); "
            "put them in the registry's auth or headers",
        )


def validate_registry_auth(auth: Any) -> None:
    if not isinstance(auth, dict):
        raise _fail("auth", "must be an object")
    kind = auth.get("type")
    if kind not in REGISTRY_AUTH_TYPES:
        raise _fail("auth.type", f"must be one of {', '.join(REGISTRY_AUTH_TYPES)}")
    cfg = _section(auth, kind)
    where = f"auth.{kind}" if isinstance(auth.get(kind), dict) else "auth"
    if kind == "api_key":
        if isinstance(auth.get("api_key"), str):
            return
        if cfg.get("api_key"):
            return
        if cfg.get("header_name") and cfg.get("header_value"):
            return
        if cfg.get("param_name") and cfg.get("param_value"):
            if cfg.get("param_location", "query") not in ("query", "body"):
                raise _fail(f"{where}.param_location", "must be query or body")
            return
        raise _fail(where, "needs api_key, or header_name+header_value, or param_name+param_value")
    if kind == "azure":
        if not _is_url(cfg.get("endpoint")):
            raise _fail(f"{where}.endpoint", "is required (an http(s) URL)")
        modes = [
            bool(cfg.get("api_key")),
            bool(cfg.get("client_id") and cfg.get("client_secret") and cfg.get("tenant_id")),
            bool(cfg.get("use_managed_identity")),
        ]
        if sum(modes) != 1:
            raise _fail(
                where,
                "needs exactly one of api_key, client_id+client_secret+tenant_id, "
                "use_managed_identity",
            )
    elif kind == "aws":
        if not cfg.get("region"):
            raise _fail(f"{where}.region", "is required")
        keys = bool(cfg.get("access_key_id") and cfg.get("secret_access_key"))
        role = bool(cfg.get("use_role") and cfg.get("role"))
        if keys == role:
            raise _fail(where, "needs access_key_id+secret_access_key, or use_role+role")
    elif kind == "oauth2":
        for field in ("token_url", "grant_type"):
            if not cfg.get(field):
                raise _fail(f"{where}.{field}", "is required")
        if not _is_url(cfg.get("token_url")):
            raise _fail(f"{where}.token_url", "must be an http(s) URL")
    elif kind == "gcp_service_account":
        sa = auth.get("gcp_service_account")
        if not sa:
            raise _fail("auth.gcp_service_account", "is required (the service-account JSON)")


MCP_AUTH_MODES = ("none", "static", "passthrough", "exchange", "forwarded", "client_credentials")


def validate_mcp_target(target: Any) -> None:
    if not isinstance(target, dict):
        raise _fail("mcp_target", "must be an object")
    if not _is_url(target.get("url")):
        raise _fail("mcp_target.url", "is required (an http(s) URL)")
    transport = target.get("transport", "streamable-http")
    if transport != "streamable-http":
        raise _fail("mcp_target.transport", "must be streamable-http")
    headers = target.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise _fail("mcp_target.headers", "must be an object")
    auth = target.get("auth")
    if auth is None:
        return
    if not isinstance(auth, dict):
        raise _fail("mcp_target.auth", "must be an object")
    mode = auth.get("mode", "none")
    if mode not in MCP_AUTH_MODES:
        raise _fail("mcp_target.auth.mode", f"must be one of {', '.join(MCP_AUTH_MODES)}")
    if mode == "none" and (auth.get("header") or auth.get("value")):
        raise _fail("mcp_target.auth", "mode none takes no header or value")
    if mode == "static" and not (auth.get("header") and auth.get("value")):
        raise _fail("mcp_target.auth", "mode static needs header and value")
    if mode == "passthrough" and not auth.get("expected_audience"):
        raise _fail("mcp_target.auth.expected_audience", "is required for passthrough")
    method = auth.get("token_endpoint_auth_method")
    if method is not None and method not in TOKEN_ENDPOINT_AUTH_METHODS:
        raise _fail(
            "mcp_target.auth.token_endpoint_auth_method",
            f"must be one of {', '.join(TOKEN_ENDPOINT_AUTH_METHODS)}",
        )
    if mode == "forwarded":
        _validate_forwarded(auth)
    if mode == "client_credentials":
        _require(auth, ("token_url", "client_id", "client_secret"), "client_credentials")
    if mode == "exchange":
        _validate_exchange(auth)


TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

#: Token exchange: the fields each pattern needs besides ``token_url``. impersonation and
#: token_exchange are RFC 8693 without an actor; delegation sends an ``actor_token``; obo
#: is the on-behalf-of grant (RFC 7523 jwt-bearer), a confidential client's.
EXCHANGE_PATTERNS: dict[str, tuple[str, ...]] = {
    "impersonation": ("audience",),
    "delegation": ("audience", "actor"),
    "obo": ("scope", "client_id", "client_secret"),
    "token_exchange": ("audience",),
}
#: where delegation's actor token comes from: the plane's own client-credentials token at
#: ``token_url``, or a configured ``actor_token``
EXCHANGE_ACTORS: dict[str, tuple[str, ...]] = {
    "client_credentials": ("client_id", "client_secret"),
    "static": ("actor_token",),
}
ACTOR_TOKEN_TYPES = ("access_token", "jwt", "id_token")


def _validate_exchange(auth: dict[str, Any]) -> None:
    pattern = auth.get("pattern")
    if pattern not in EXCHANGE_PATTERNS:
        raise _fail("mcp_target.auth.pattern", f"must be one of {', '.join(EXCHANGE_PATTERNS)}")
    _require(auth, ("token_url", *EXCHANGE_PATTERNS[pattern]), f"exchange ({pattern})")
    if pattern != "delegation":
        for name in ("actor", "actor_token", "actor_token_type"):
            if auth.get(name) is not None:
                raise _fail(f"mcp_target.auth.{name}", "is only for pattern delegation")
        return
    actor = auth["actor"]
    if actor not in EXCHANGE_ACTORS:
        raise _fail(
            "mcp_target.auth.actor",
            f"must be one of {', '.join(EXCHANGE_ACTORS)} (the plane's own client-credentials "
            "token, or a configured actor_token)",
        )
    _require(auth, EXCHANGE_ACTORS[actor], f"actor {actor}")
    kind = auth.get("actor_token_type")
    if kind is not None:
        if actor != "static":
            raise _fail("mcp_target.auth.actor_token_type", "is only for actor static")
        urns = tuple(f"urn:ietf:params:oauth:token-type:{k}" for k in ACTOR_TOKEN_TYPES)
        if kind not in ACTOR_TOKEN_TYPES + urns:
            raise _fail(
                "mcp_target.auth.actor_token_type", f"must be one of {', '.join(ACTOR_TOKEN_TYPES)}"
            )


def _validate_forwarded(auth: dict[str, Any]) -> None:
    """Each user signs in at the upstream once (the MCP plane's connect flow)."""
    where = "mcp_target.auth"
    if not isinstance(auth.get("provider"), str) or not auth["provider"]:
        raise _fail(f"{where}.provider", "is required for forwarded (a name for the sign-in)")
    registration = auth.get("registration", "auto")
    if registration not in ("auto", "manual"):
        raise _fail(f"{where}.registration", "must be auto or manual")
    if registration == "auto":
        for name in ("client_id", "client_secret"):
            if auth.get(name) is not None:
                raise _fail(
                    f"{where}.{name}",
                    "is not allowed with registration auto (the plane registers itself)",
                )
    else:
        _require(auth, ("client_id", "authorize_url", "token_url"), "registration manual")
        if not _is_url(auth["authorize_url"]):
            raise _fail(f"{where}.authorize_url", "must be an http(s) URL")
    scopes = auth.get("scopes")
    if scopes is not None and not (
        isinstance(scopes, str)
        or (isinstance(scopes, list) and all(isinstance(s, str) and s for s in scopes))
    ):
        raise _fail(f"{where}.scopes", "must be a list of strings")
    if auth.get("resource") is not None and not _is_url(auth["resource"]):
        raise _fail(f"{where}.resource", "must be an http(s) URL")


def _require(auth: dict[str, Any], names: tuple[str, ...], what: str) -> None:
    for name in names:
        if not auth.get(name):
            raise _fail(f"mcp_target.auth.{name}", f"is required for {what}")
    if "token_url" in names and not _is_url(auth["token_url"]):
        raise _fail("mcp_target.auth.token_url", "must be an http(s) URL")


def normalize_auth_config(kind: str, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate a consumer auth's config; returns ``{kind: {...}}`` or None for api keys."""
    if kind == "api_key":
        if config:
            raise _fail("config", "api_key auths take no config")
        return None
    if not config:
        raise _fail("config", f"is required for {kind}")
    inner = config.get(kind)
    cfg: dict[str, Any] = inner if isinstance(inner, dict) else config
    where = f"config.{kind}" if cfg is not config else "config"
    if kind in ("oauth2", "oidc"):
        audiences = cfg.get("audiences")
        if not isinstance(audiences, list) or not audiences:
            raise _fail(f"{where}.audiences", "is required (a non-empty list)")
        if kind == "oauth2":
            has_source = cfg.get("jwks_url") or cfg.get("introspection_url")
            if not has_source and not _is_url(cfg.get("issuer")):
                raise _fail(where, "needs jwks_url, introspection_url or an http(s) issuer")
            if bool(cfg.get("authorize_url")) != bool(cfg.get("token_url")):
                raise _fail(where, "authorize_url and token_url go together")
            if cfg.get("authorize_url") and not cfg.get("client_id"):
                raise _fail(f"{where}.client_id", "is required with authorize_url")
            oidc_scopes = {"openid", "profile", "email", "offline_access"}
            if set(cfg.get("required_scopes") or []) & oidc_scopes:
                raise _fail(f"{where}.required_scopes", "OIDC protocol scopes are not allowed")
        else:
            if not cfg.get("issuer"):
                raise _fail(f"{where}.issuer", "is required")
            if not (cfg.get("jwks_url") or cfg.get("public_keys")):
                raise _fail(where, "needs jwks_url or public_keys")
            algs = cfg.get("allowed_algorithms") or []
            if any(str(a).upper().startswith("HS") for a in algs):
                raise _fail(f"{where}.allowed_algorithms", "HS* algorithms are not allowed")
    elif kind == "mtls":
        if not cfg.get("ca_cert"):
            raise _fail(f"{where}.ca_cert", "is required")
    return {kind: cfg}
