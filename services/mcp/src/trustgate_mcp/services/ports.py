"""The seams between the MCP plane's parts: who calls (``Caller``), the upstream MCP
servers (``UpstreamPort``, implemented by ``services.upstreams.Upstreams`` over
``adapters.upstream``) and the plane's own OAuth tokens (``GrantVerifier``, implemented by
``oauth.server.OAuthServer``). The request path (``services.dispatch``) takes these
ports; nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

from trustgate_core.models import Consumer, Gateway, Registry

ListKind = Literal["tools", "resources", "resource_templates", "prompts"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is for and who sends it. ``token`` is the bearer token the client sent
    (an upstream auth of mode passthrough or exchange reads it); it is never logged, put
    in an event, or forwarded upstream unless its audience is the upstream's."""

    gateway: Gateway
    consumer: Consumer
    auth_id: UUID | None = None
    subject: str | None = None
    token: str | None = field(default=None, repr=False)
    # the MCP URL the request came to (where the plane's connect URLs are built from)
    resource: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamSession:
    """One upstream MCP session: its ``Mcp-Session-Id`` (None: the server is stateless)
    and the protocol version it negotiated."""

    registry_id: UUID
    session_id: str | None
    protocol_version: str


class RpcFailure(Exception):
    """The upstream answered with a JSON-RPC error: relayed to the client as it was."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, timed out, or answered with an HTTP error (the
    reason is for the log and the event, never with a credential in it)."""


class UpstreamAuthRequired(UpstreamUnavailable):
    """The upstream's auth mode needs something the caller did not bring (a bearer token
    for passthrough or exchange, or one for another audience). Its message is for the
    caller (it names no secret); ``reason`` is a short word for logs and metrics. Built
    again from its ``args`` alone (a remembered failure is raised anew that way)."""

    def __init__(self, message: str, reason: str = "auth_required") -> None:
        super().__init__(message, reason)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class ConsentRequired(UpstreamAuthRequired):
    """Mode ``forwarded``: the user has not connected their account at this upstream (or
    it no longer takes their token); ``connect_url`` starts the sign-in there."""

    def __init__(self, message: str, server: str = "", connect_url: str | None = None) -> None:
        UpstreamUnavailable.__init__(self, message, server, connect_url)
        self.message = message
        self.reason = "consent"
        self.server = server
        self.connect_url = connect_url


class SessionExpired(UpstreamUnavailable):
    """The upstream no longer knows the session (HTTP 404 on a request that carried it)."""


class UpstreamPort(Protocol):
    async def open(self, registry: Registry, caller: Caller) -> UpstreamSession:
        """``initialize`` (and ``notifications/initialized``) on the upstream."""
        ...

    async def request(
        self,
        registry: Registry,
        session: UpstreamSession | None,
        caller: Caller,
        method: str,
        params: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """One JSON-RPC request; its ``result``. Raises `RpcFailure`, `SessionExpired`,
        `UpstreamUnavailable`."""
        ...

    async def listing(
        self, registry: Registry, caller: Caller, kind: ListKind
    ) -> list[dict[str, Any]]:
        """Every item of an upstream list (``nextCursor`` followed, a repeating cursor
        stopped), kept for ``MCP_LIST_TTL`` per registry and upstream credential and
        dropped on the server's ``list_changed`` notification. Raises
        `UpstreamUnavailable`."""
        ...

    async def shared_session(
        self, registry: Registry, caller: Caller, expired: UpstreamSession | None
    ) -> UpstreamSession:
        """This replica's upstream session for ``registry`` and the caller's upstream
        credential (the one lists are fetched on), for stateless (2026-07-28) callers that
        carry no session; ``expired``: the one the upstream forgot (replaced unless someone
        replaced it already). Raises `UpstreamUnavailable`."""
        ...

    async def close(self, registry: Registry, session: UpstreamSession, caller: Caller) -> None:
        """End an upstream session (HTTP DELETE); failures are ignored."""
        ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token the plane issued says: for which consumer of which gateway,
    on whose behalf (``subject``), through which API-key auth if the user signed in with
    one."""

    gateway_id: UUID
    consumer_id: UUID
    subject: str
    auth_id: UUID | None = None
    scopes: tuple[str, ...] = ()


class GrantVerifier(Protocol):
    def verify(self, token: str, resource: str) -> Grant | None:
        """The grant of an access token issued by this plane for ``resource`` (the MCP
        URL, exactly); None if it is not one of ours, expired or for another audience."""
        ...

    def challenge(self, resource: str) -> str:
        """The ``WWW-Authenticate`` value of a 401 on ``resource``
        (``Bearer resource_metadata="…"``)."""
        ...
