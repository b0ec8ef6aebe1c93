"""Choosing where a request goes: the candidate set by model, and a ``Router``.

``resolve_routes`` gives the candidates a request may go to, in the consumer's order; a
consumer's ``Router`` leads each request through them (``attempts``: the next route to
try, told how each went), which is where strategies, shared health, retries and the fallback chain
plug in (``services.resilience``; the strategies are ``domain.strategies``).

A registry's ``provider_options.model_mapping`` (``{alias: provider_model_id}``) lets it
serve models by other names: a request for ``gpt-4o-mini`` routed to a registry that maps
it to ``claude-3-5-haiku-latest`` is sent as that id (so Claude or Bedrock can serve an
OpenAI model name). Aliases count as models the registry serves: a binding whose
allow-list lacks a model still serves it when its mapping has it. Default models and
``@provider/model`` names are mapped too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    health_key: str = field(init=False, compare=False)  # the registry id, as route health keys it

    def __post_init__(self) -> None:
        object.__setattr__(self, "health_key", str(self.registry.id))

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
    """The routes a request may take: ``routes`` (the pool, in the consumer's order) and
    ``fallback`` (the chain's routes, in its order, tried once the pool is exhausted;
    none for a pinned model). ``key`` names the set for a balancer's state."""

    key: tuple[object, ...]
    routes: tuple[Route, ...]
    fallback: tuple[Route, ...] = ()


class Bindings(tuple[Binding, ...]):
    """A consumer's bindings (its registries, in its order) and what else it routes to:
    ``pool`` (an enabled ``lb_config``'s members, each (registry, model) a route, with the
    model name a request reaches it by), ``pool_alias`` and ``chain`` (the enabled
    fallback chain's bindings, in order)."""

    pool: tuple[tuple[str | None, Route], ...] = ()
    pool_alias: str | None = None
    chain: tuple[Binding, ...] = ()


def bindings_of(
    consumer: Consumer, registries: dict[UUID, Registry], supported: frozenset[str]
) -> Bindings:
    """The consumer's registries that exist, are enabled LLM registries, and whose provider
    this proxy speaks, in the consumer's order; with its pool and fallback chain (whose
    registries need not be bound to it)."""
    policies = {p.registry_id: p for p in consumer.model_policies}
    weights = {link.registry_id: link.weight for link in consumer.registries}

    def binding(registry_id: UUID) -> Binding | None:
        registry = registries.get(registry_id)
        if registry is None or not registry.enabled or registry.type != "LLM":
            return None
        provider = (registry.provider or "").lower()
        if provider not in supported:
            return None
        policy = policies.get(registry_id)
        allowed = frozenset(policy.allowed) if policy and policy.allowed else None
        default = policy.default if policy else None
        mapping = model_mapping(registry.provider_options or {})
        return Binding(registry, provider, weights.get(registry_id, 1), allowed, default, mapping)

    direct = [b for b in (binding(link.registry_id) for link in consumer.registries) if b]
    out = Bindings(direct)
    known = {b.registry.id: b for b in direct}

    def find(registry_id: UUID) -> Binding | None:
        if registry_id not in known:
            found = binding(registry_id)
            if found is None:
                return None
            known[registry_id] = found
        return known[registry_id]

    lb = consumer.lb_config
    if lb is not None and lb.enabled:
        pool: list[tuple[str | None, Route]] = []
        for member in lb.members:
            b = find(member.registry_id)
            if b is None:
                continue
            names: list[str | None] = [member.model] if member.model else [*member.models] or [None]
            for name in names:
                route = b.route(name or b.default)
                pool.append((name, Route(b, route.model, weight=member.weight or b.weight)))
        out.pool = tuple(pool)
        out.pool_alias = lb.pool_alias
    fallback = consumer.fallback
    if fallback is not None and fallback.enabled:
        out.chain = tuple(b for b in map(find, fallback.chain) if b is not None)
    return out


def _fallback_route(binding: Binding, model: str | None) -> Route | None:
    """Where a chain registry takes a request for ``model``: the model when it names it
    (allow-list or mapping), else its default, else the model as sent when nothing
    restricts it."""
    if model and (model in binding.mapping or (binding.allowed and model in binding.allowed)):
        return binding.route(model)
    if binding.default:
        return binding.route(binding.default)
    if binding.allowed is None:
        return binding.route(model)
    return None


def resolve_routes(consumer_id: UUID, bindings: Sequence[Binding], model: str | None) -> Candidates:
    """The candidate routes for ``model`` (reference §3 "Model intent", with round-robin
    across every registry that serves a bare model, as issue 3 asks).

    - no model: every binding; its default model is injected when it has one, and a binding
      with an allow-list but no default cannot serve the request;
    - ``auto``: the bindings that have a default model, each with its default;
    - ``@provider/model``: pinned to the first binding of that provider that permits it;
    - ``pool:<alias>``: the pool's members, each with its model (the alias must be the
      consumer's ``lb_config.pool_alias``);
    - a bare model: every binding whose allow-list (if any) or model mapping has it.

    With an enabled pool, a request naming no model (or ``auto``) goes to the pool, and a
    bare model to the members that name it (to the bindings, when none does). A mapped
    model (the request's, a default, a pinned name) is sent as its provider id. The
    fallback chain's routes follow, except for a pinned model (it never fails over).
    """
    pool = bindings.pool if isinstance(bindings, Bindings) else ()
    if not bindings and not pool:
        raise NoBackendAvailable("no backend available for this consumer")
    routes: list[Route]
    pinned = False
    if model and model.startswith("pool:"):
        alias = bindings.pool_alias if isinstance(bindings, Bindings) else None
        if not pool or model[5:] != alias:
            raise InvalidModel("unknown pool")
        routes = [r for _, r in pool if r.model]
    elif pool and (not model or model == "auto"):
        routes = [r for _, r in pool]
    elif pool and any(name == model for name, _ in pool):
        routes = [r for name, r in pool if name == model]
    elif not model:
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
        bound = [b for b in bindings if b.provider == provider]
        if not bound:
            raise ModelNotAllowed(f"provider '{provider}' is not bound to this consumer")
        routes = [b.route(name, True) for b in bound if b.permits(name)][:1]
        pinned = True
    else:
        routes = [Route(b, b.send_as(model)) for b in bindings if b.permits(model)]
    if not routes:
        raise ModelNotAllowed("model not allowed")
    fallback: tuple[Route, ...] = ()
    chain = bindings.chain if isinstance(bindings, Bindings) else ()
    if chain and not pinned:
        asked = None if model and model.startswith("pool:") else model
        seen = {r.key for r in routes}
        found = []
        for b in chain:
            route = _fallback_route(b, asked)
            if route is not None and route.key not in seen:
                seen.add(route.key)
                found.append(route)
        fallback = tuple(found)
    key = (consumer_id, *(r.binding.registry.id for r in routes))
    return Candidates(key, tuple(routes), fallback)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """A consumer's routing settings, typed: its ``lb_config`` and ``fallback``."""

    lb: LbConfig | None = None
    fallback: Fallback | None = None


class Attempts(Protocol):
    """One request's way through its candidates: ``next`` gives the route to try (after
    waiting out a retry's backoff), ``None`` once there is none left or the last report
    ended the request; ``number`` (1-based) and ``fallback`` describe the attempt made
    last. ``report`` is told how each attempt went — its ``status`` (0: no answer),
    the whole answer's ``body`` (``None``: a stream, or no answer), whether it timed out,
    the upstream's ``Retry-After`` in seconds, its time to first byte — and returns its
    outcome (``success`` | ``retryable`` | ``terminal``). ``close`` ends the request
    (once, after the reply was relayed or the client left)."""

    number: int
    fallback: bool

    async def next(self) -> Route | None: ...

    def report(
        self,
        route: Route,
        status: int,
        body: bytes | None,
        timed_out: bool,
        retry_after: float | None,
        latency: float,
    ) -> str: ...

    def close(self) -> None: ...


class Router(Protocol):
    """A consumer's router: the way each request takes through its candidates."""

    def attempts(self, candidates: Candidates, exchange: Exchange) -> Attempts: ...


class OneAttempt:
    """A single attempt on a route (no retry, no fallback)."""

    __slots__ = ("_route", "fallback", "number")

    def __init__(self, route: Route) -> None:
        self._route: Route | None = route
        self.number = 0
        self.fallback = False

    async def next(self) -> Route | None:
        route, self._route = self._route, None
        if route is not None:
            self.number += 1
        return route

    def report(
        self,
        route: Route,
        status: int,
        body: bytes | None,
        timed_out: bool,
        retry_after: float | None,
        latency: float,
    ) -> str:
        return outcome_of_status(status) if status else RETRYABLE

    def close(self) -> None:
        return None


class RoundRobin:
    """Each candidate set in turn, one attempt per request (the router of a proxy built
    without ``Routing``). State is per candidate set (bounded by configuration)."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        del config  # one strategy, no settings
        self._next: dict[tuple[object, ...], int] = {}

    def pick(self, candidates: Candidates) -> Route:
        routes = candidates.routes
        if len(routes) == 1:
            return routes[0]
        n = self._next.get(candidates.key, 0)
        self._next[candidates.key] = n + 1
        return routes[n % len(routes)]

    def attempts(self, candidates: Candidates, exchange: Exchange) -> Attempts:
        return OneAttempt(self.pick(candidates))
