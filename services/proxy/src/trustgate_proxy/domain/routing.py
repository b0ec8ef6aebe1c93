"""Choosing where a request goes: the candidate set by model, and a ``Router``.

``resolve_routes`` gives the candidates a request may go to, in the consumer's order; a
consumer's ``Router`` orders them into attempts (``attempts``) and learns how each went
(``report``), which is where strategies, shared health, retries and the fallback chain
plug in. Today the only strategy is round-robin, one attempt per request.

A registry's ``provider_options.model_mapping`` (``{alias: provider_model_id}``) lets it
serve models by other names: a request for ``gpt-4o-mini`` routed to a registry that maps
it to ``claude-3-5-haiku-latest`` is sent as that id (so Claude or Bedrock can serve an
OpenAI model name). Aliases count as models the registry serves: a binding whose
allow-list lacks a model still serves it when its mapping has it. Default models and
``@provider/model`` names are mapped too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from uuid import UUID

from trustgate_core.errors import InvalidModel, ModelNotAllowed, NoBackendAvailable, TrustGateError
from trustgate_core.models import Consumer, Fallback, LbConfig, Registry
from trustgate_proxy.domain.exchange import Exchange

# How an attempt ended (reference §5): ``success`` (relay it), ``retryable`` (a transport
# error, 5xx, 429, 408: another attempt may serve the request), ``terminal`` (any other
# answer or error: relay it as it is).
SUCCESS: Final = "success"
RETRYABLE: Final = "retryable"
TERMINAL: Final = "terminal"
_RETRYABLE_STATUS = frozenset({408, 429})


def outcome_of_status(status: int) -> str:
    if status < 300:
        return SUCCESS
    if status >= 500 or status in _RETRYABLE_STATUS:
        return RETRYABLE
    return TERMINAL


def outcome_of_error(error: TrustGateError) -> str:
    """An attempt that got no answer: retryable when the error says so (transport
    failures, timeouts), else terminal (bad credentials, an untranslatable request)."""
    return RETRYABLE if error.retryable else TERMINAL


@dataclass(frozen=True, slots=True)
class Binding:
    """A consumer's link to a routable registry, with its model policy."""

    registry: Registry
    provider: str
    weight: int = 1
    allowed: frozenset[str] | None = None
    default: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict, hash=False)  # alias -> model id

    def permits(self, model: str) -> bool:
        """Whether the binding serves ``model``: no allow-list, on it, or an alias."""
        return self.allowed is None or model in self.allowed or model in self.mapping

    def send_as(self, model: str | None) -> str | None:
        """The id to send for ``model`` (``None``: as the client sent it)."""
        if model is None:
            return None
        return self.mapping.get(model)

    def route(self, model: str | None, pinned: bool = False) -> Route:
        """A route through this binding for ``model`` (an explicit one, or its default)."""
        if model is None:
            return Route(self, None, pinned)
        return Route(self, self.mapping.get(model, model), pinned)


def model_mapping(options: Mapping[str, Any]) -> dict[str, str]:
    """A registry's ``provider_options.model_mapping``; entries that are not text → text
    are ignored."""
    raw = options.get("model_mapping")
    if not isinstance(raw, Mapping):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str) and v}


@dataclass(frozen=True, slots=True)
class Route:
    """Where to send a request: a binding, and the model to send (``None``: as sent).
    ``weight``: its share under weighted strategies (the pool member's, else the
    binding's); ``key`` names it for strategies' state (registry id and model)."""

    binding: Binding
    model: str | None
    pinned: bool = False
    weight: int = 0
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.weight <= 0:
            object.__setattr__(self, "weight", self.binding.weight)
        object.__setattr__(self, "key", f"{self.binding.registry.id}:{self.model or ''}")


@dataclass(frozen=True, slots=True)
class Candidates:
    """The routes a request may take. ``key`` names the set for a balancer's state."""

    key: tuple[object, ...]
    routes: tuple[Route, ...]


def bindings_of(
    consumer: Consumer, registries: dict[UUID, Registry], supported: frozenset[str]
) -> tuple[Binding, ...]:
    """The consumer's registries that exist, are enabled LLM registries, and whose provider
    this proxy speaks, in the consumer's order."""
    policies = {p.registry_id: p for p in consumer.model_policies}
    out: list[Binding] = []
    for link in consumer.registries:
        registry = registries.get(link.registry_id)
        if registry is None or not registry.enabled or registry.type != "LLM":
            continue
        provider = (registry.provider or "").lower()
        if provider not in supported:
            continue
        policy = policies.get(link.registry_id)
        allowed = frozenset(policy.allowed) if policy and policy.allowed else None
        default = policy.default if policy else None
        mapping = model_mapping(registry.provider_options or {})
        out.append(Binding(registry, provider, link.weight, allowed, default, mapping))
    return tuple(out)


def resolve_routes(consumer_id: UUID, bindings: Sequence[Binding], model: str | None) -> Candidates:
    """The candidate routes for ``model`` (reference §3 "Model intent", with round-robin
    across every registry that serves a bare model, as issue 3 asks).

    - no model: every binding; its default model is injected when it has one, and a binding
      with an allow-list but no default cannot serve the request;
    - ``auto``: the bindings that have a default model, each with its default;
    - ``@provider/model``: pinned to the first binding of that provider that permits it;
    - a bare model: every binding whose allow-list (if any) or model mapping has it.

    A mapped model (the request's, a default, a pinned name) is sent as its provider id.
    """
    if not bindings:
        raise NoBackendAvailable("no backend available for this consumer")
    routes: list[Route]
    if not model:
        routes = [b.route(b.default) for b in bindings if b.default or b.allowed is None]
    elif model == "auto":
        routes = [b.route(b.default) for b in bindings if b.default]
        if not routes:
            raise InvalidModel("no registry has a default model for 'auto'")
    elif model[0] == "@":
        provider, sep, name = model[1:].partition("/")
        if not sep or not provider or not name:
            raise InvalidModel("a pinned model is '@provider/model'")
        provider = provider.lower()
        pinned = [b for b in bindings if b.provider == provider]
        if not pinned:
            raise ModelNotAllowed(f"provider '{provider}' is not bound to this consumer")
        routes = [b.route(name, True) for b in pinned if b.permits(name)][:1]
    elif model.startswith("pool:"):
        raise InvalidModel("unknown pool")
    else:
        routes = [Route(b, b.send_as(model)) for b in bindings if b.permits(model)]
    if not routes:
        raise ModelNotAllowed("model not allowed")
    key = (consumer_id, *(r.binding.registry.id for r in routes))
    return Candidates(key, tuple(routes))


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """A consumer's routing settings, typed: its ``lb_config`` and ``fallback``."""

    lb: LbConfig | None = None
    fallback: Fallback | None = None


class Router(Protocol):
    """Orders a request's candidates into attempts and learns from their outcomes.

    ``attempts`` yields the routes to try, in order; the pipeline stops taking them once
    an attempt succeeds, ends terminally, or a byte has reached the client. ``report`` is
    told every attempt's outcome and latency (seconds)."""

    def attempts(self, candidates: Candidates, exchange: Exchange) -> Iterator[Route]: ...

    def report(self, route: Route, outcome: str, latency: float) -> None: ...


class RoundRobin:
    """Each candidate set in turn, one attempt per request. State is per candidate set
    (bounded by configuration)."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        del config  # one strategy, no settings yet
        self._next: dict[tuple[object, ...], int] = {}

    def pick(self, candidates: Candidates) -> Route:
        routes = candidates.routes
        if len(routes) == 1:
            return routes[0]
        n = self._next.get(candidates.key, 0)
        self._next[candidates.key] = n + 1
        return routes[n % len(routes)]

    def attempts(self, candidates: Candidates, exchange: Exchange) -> Iterator[Route]:
        return iter((self.pick(candidates),))

    def report(self, route: Route, outcome: str, latency: float) -> None:
        return None
