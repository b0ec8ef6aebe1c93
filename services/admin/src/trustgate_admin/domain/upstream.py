"""How the admin reaches a registry's upstream on its own behalf (the live tool list, the
connection test): which URL, which headers, which token to obtain first.

Pure: the documents given here are already opened (no sealed leaf). The admin has no
caller, so an MCP auth mode that needs one (a caller's token passed through or exchanged)
cannot be exercised: it is refused with ``NeedsCallerToken``, a 422."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trustgate_core.crypto import is_secret_key
from trustgate_core.errors import BackendError, TrustGateError, ValidationFailed

#: Seconds the admin waits for an upstream by default, and at most.
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 60.0


class NeedsCallerToken(TrustGateError):
    """The registry's upstream is only reachable with an agent's token."""

    code, status = "caller_token_required", 422


class UpstreamUnavailable(BackendError):
    """The upstream could not be reached or answered with an error (no secret in the
    message)."""

    code, status = "upstream_unavailable", 502


@dataclass(frozen=True)
class TokenRequest:
    """An OAuth2 client-credentials grant to run before connecting (RFC 6749 §4.4)."""

    token_url: str
    client_id: str
    client_secret: str
    basic_auth: bool = True
    form: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class McpConnection:
    """Where and how to open an MCP session: ``headers`` go on every request; with a
    ``token_request``, its access token goes in ``Authorization`` as a bearer."""

    url: str
    headers: dict[str, str]
    token_request: TokenRequest | None = None


CALLER_MODES = ("passthrough", "exchange")


def mcp_connection(target: Mapping[str, Any]) -> McpConnection:
    """The connection to an MCP registry's upstream as the admin (no caller)."""
    headers = {str(k): str(v) for k, v in (target.get("headers") or {}).items()}
    auth = target.get("auth") or {}
    mode = auth.get("mode", "none")
    if mode in CALLER_MODES:
        raise NeedsCallerToken(
            f"mcp_target.auth mode {mode} sends an agent's token upstream: the tool list "
            "cannot be fetched without one (call tools/list through the MCP plane)"
        )
    if mode == "forwarded":
        raise NeedsCallerToken(
            "mcp_target.auth mode forwarded uses each user's own upstream sign-in: the tool "
            "list can only be fetched by a connected user (call tools/list through the MCP plane)"
        )
    if mode == "static":
        headers[str(auth["header"])] = str(auth["value"])
    if mode == "client_credentials":
        return McpConnection(str(target["url"]), headers, client_credentials(auth))
    return McpConnection(str(target["url"]), headers)


def client_credentials(auth: Mapping[str, Any]) -> TokenRequest:
    form: dict[str, str] = {}
    scopes = auth.get("scopes") or auth.get("scope")
    if scopes:
        form["scope"] = " ".join(scopes) if isinstance(scopes, list) else str(scopes)
    for name in ("audience", "resource"):
        if auth.get(name):
            form[name] = str(auth[name])
    method = auth.get("token_endpoint_auth_method", "client_secret_basic")
    return TokenRequest(
        token_url=str(auth["token_url"]),
        client_id=str(auth["client_id"]),
        client_secret=str(auth["client_secret"]),
        basic_auth=method != "client_secret_post",
        form=form,
    )


def checked_timeout(value: float | None) -> float:
    """``?timeout=`` in seconds: positive, at most ``MAX_TIMEOUT``."""
    if value is None:
        return DEFAULT_TIMEOUT
    if not 0 < value <= MAX_TIMEOUT:
        raise ValidationFailed(f"timeout: must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return value


def secret_values(*docs: Any) -> list[str]:
    """The secret leaves of ``docs`` (credentials, targets): what a message must not carry."""
    found: set[str] = set()

    def walk(doc: Any, secret: bool) -> None:
        if isinstance(doc, Mapping):
            for k, v in doc.items():
                walk(v, secret or k == "headers" or is_secret_key(str(k)))
        elif isinstance(doc, list):
            for v in doc:
                walk(v, secret)
        elif secret and isinstance(doc, str) and len(doc) >= 4:
            found.add(doc)

    for doc in docs:
        walk(doc, False)
    return sorted(found, key=len, reverse=True)


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret replaced by ``***`` (an upstream may echo a header)."""
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


class ProbeFailed(Exception):
    """A call to an upstream failed at ``stage``; ``message`` is safe to show (built from
    statuses and error codes, scrubbed of secrets by the caller)."""

    def __init__(
        self, stage: str, message: str, *, status_code: int | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.status_code = status_code
        self.timed_out = timed_out
