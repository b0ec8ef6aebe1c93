"""The small ports the proxy's use cases are written against.

- the client connection, as ASGI hands it over (``Receive``/``Send``, messages as dicts;
  the types are core's, ``trustgate_core.service.asgi``);
- ``Upstream``: one registry's endpoint (URLs, headers, per-request credentials), built by
  the adapters (``adapters.providers``) and handed in through a ``TargetBuilder``;
- ``Chain``: a consumer's compiled policies, run at their stages (the engine is core's);
- ``CallSink``: where a finished call goes (metrics, traces, the request event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from trustgate_core.models import Consumer, Registry
from trustgate_core.models.policy import Stage
from trustgate_core.policy import Answer, Header
from trustgate_core.service.asgi import Headers, Message, Receive, Scope, Send
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.formats.base import WireFormat

__all__ = [
    "NO_POLICIES",
    "NO_SESSIONS",
    "CallSink",
    "Chain",
    "ChainCompiler",
    "CorsPolicy",
    "Header",
    "Headers",
    "MemorySink",
    "Message",
    "NoPolicies",
    "NullSink",
    "Receive",
    "Scope",
    "Send",
    "SessionPort",
    "TargetBuilder",
    "Upstream",
    "no_policies",
]


# -- upstreams ----------------------------------------------------------------------------
class Upstream(Protocol):
    """One registry's endpoint, as the forwarders and the model lister use it."""

    @property
    def wire(self) -> WireFormat: ...

    @property
    def needs_authorize(self) -> bool: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def generate_url(self, model: str | None, stream: bool) -> str: ...

    def for_inbound(self, inbound: WireFormat) -> Upstream: ...

    def embeddings_url(self, model: str | None) -> str | None: ...

    async def authorize(self, method: str, url: str, body: bytes) -> Mapping[str, str]: ...

    def models_url(self) -> str | None: ...

    def model_names(self, doc: Any) -> list[str]: ...


class TargetBuilder(Protocol):
    """Builds a registry's ``Upstream`` from the registry and its opened ``auth``."""

    def __call__(self, registry: Registry, auth: Mapping[str, Any] | None) -> Upstream: ...


# -- policies -----------------------------------------------------------------------------
class Chain(Protocol):
    """A consumer's compiled policy chain (core's ``trustgate_core.policy.Chain``).
    ``stages`` names the stages it has work at: the pipeline calls ``run`` only for those,
    so an empty chain costs a set lookup. ``run`` may raise a ``TrustGateError`` (a
    rejection, rendered as the client's error) or set ``exchange.answer`` at
    ``pre_request`` (the call is answered without an upstream). ``find`` returns the
    runner of a plugin (the CORS one answers preflights), or ``None``."""

    @property
    def stages(self) -> frozenset[Stage]: ...

    def find(self, plugin: str) -> Any: ...

    async def run(self, stage: Stage, exchange: Exchange) -> None: ...


class CorsPolicy(Protocol):
    """The ``cors`` policy's runner, as the pipeline asks it before any key check."""

    def allow(self, origin: str) -> list[Header]:
        """The CORS headers of an answer to ``origin`` (none when it is not allowed)."""
        ...

    def preflight(self, origin: str, method: str | None, headers: str | None) -> Answer:
        """The answer to a preflight from ``origin`` asking for ``method`` and ``headers``
        (``Access-Control-Request-*``)."""
        ...


class NoPolicies:
    """The chain of a consumer without policies."""

    stages: frozenset[Stage] = frozenset()

    def find(self, plugin: str) -> Any:
        return None

    async def run(self, stage: Stage, exchange: Exchange) -> None:
        return None


NO_POLICIES = NoPolicies()


class ChainCompiler(Protocol):
    """Compiles a consumer's chain when its configuration changes (not per request)."""

    def __call__(self, consumer: Consumer) -> Chain: ...


def no_policies(consumer: Consumer) -> Chain:
    return NO_POLICIES


# -- sessions -----------------------------------------------------------------------------
class SessionPort(Protocol):
    """Conversations across calls: ``begin`` runs once per call after the body is parsed
    and before any policy or route (it may echo ``X-Session-Id`` in ``headers``, record
    the session on the call, rewrite the document — a ``previous_response_id`` the gateway
    keeps — marking ``exchange.dirty``, and add response filters that keep what it
    needs of the answer)."""

    async def begin(self, exchange: Exchange, headers: Headers) -> None: ...


class NoSessions:
    async def begin(self, exchange: Exchange, headers: Headers) -> None:
        return None


NO_SESSIONS = NoSessions()


# -- finished calls -----------------------------------------------------------------------
class CallSink(Protocol):
    """Takes a finished call. Never blocks, never raises."""

    def emit(self, call: Call) -> None: ...


class NullSink:
    """Telemetry off: calls are discarded."""

    def emit(self, call: Call) -> None:
        return None


class MemorySink:
    """Keeps every call (tests, the in-process harness)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def emit(self, call: Call) -> None:
        self.calls.append(call)
