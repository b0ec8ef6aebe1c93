"""The replica's state compiled for the hot path, recompiled lazily after any change.

Config changes are rare and requests many, so each consumer's plan (its routable
bindings, its router, its policy chain) and each registry's upstream target (with its
credentials and the sealed fields of its ``provider_options`` opened once) are built on
first use and dropped when the replica applies an event (``invalidate``). Lookups are
dict hits. How targets, routers and chains are built is handed in (the composition root
wires the adapters), so this module imports none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from trustgate_core.crypto import SecretBox, find_url_credentials
from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_core.replica import ReplicaState
from trustgate_core.telemetry.settings import body_capture_limit
from trustgate_proxy.domain.routing import (
    Binding,
    Candidates,
    RoundRobin,
    Router,
    RoutingConfig,
    bindings_of,
    resolve_routes,
)
from trustgate_proxy.services.ports import (
    Chain,
    ChainCompiler,
    TargetBuilder,
    Upstream,
    no_policies,
)

RouterFactory = Callable[[RoutingConfig], Router]

_MAX_ROUTE_CACHE = 256


class ConsumerPlan:
    """A consumer as the hot path needs it: who may call it, where it routes (its
    bindings, its router) and its policy chain."""

    __slots__ = ("auth_ids", "bindings", "chain", "consumer", "router", "routes")

    def __init__(
        self,
        consumer: Consumer,
        bindings: tuple[Binding, ...],
        router: Router,
        chain: Chain,
    ) -> None:
        self.consumer = consumer
        self.auth_ids: frozenset[object] = frozenset(consumer.auth_ids)
        self.bindings = bindings
        self.router = router
        self.chain = chain
        self.routes: dict[str | None, Candidates] = {}

    def candidates(self, model: str | None) -> Candidates:
        found = self.routes.get(model)
        if found is None:
            found = resolve_routes(self.consumer.id, self.bindings, model)
            if len(self.routes) >= _MAX_ROUTE_CACHE:
                self.routes.clear()
            self.routes[model] = found
        return found


class ConfigView:
    def __init__(
        self,
        state: ReplicaState,
        box: SecretBox,
        builders: Mapping[str, TargetBuilder],
        *,
        router: RouterFactory = RoundRobin,
        chain: ChainCompiler = no_policies,
    ) -> None:
        self.state = state
        self._box = box
        self._builders = builders
        self._supported = frozenset(builders)
        self._router = router
        self._chain = chain
        self._plans: dict[UUID, ConsumerPlan] = {}
        # registry id -> (the registry it was built from, its target or why it has none)
        self._targets: dict[UUID, tuple[Registry, Upstream | ProviderCredentialError]] = {}
        # consumer id -> (its routing settings, its router): a router's state (the
        # round-robin position, later health) survives changes that leave them alone
        self._routers: dict[UUID, tuple[RoutingConfig, Router]] = {}
        self._body_limits: dict[UUID, int] = {}

    def invalidate(self, _event: object = None) -> None:
        """After any config change: plans and body limits are recompiled on next use; a
        target is kept while its registry is unchanged, so the tokens it holds (Entra,
        Vertex) survive changes elsewhere in the cluster and are not minted again."""
        self._plans = {}
        self._body_limits = {}
        registries = self.state.registries
        self._targets = {
            rid: entry for rid, entry in self._targets.items() if registries.get(rid) is entry[0]
        }
        consumers = self.state.consumers
        self._routers = {cid: entry for cid, entry in self._routers.items() if cid in consumers}

    def body_limit(self, gateway: Gateway) -> int:
        """Bytes of each body to attach to the gateway's request events (0: none)."""
        limit = self._body_limits.get(gateway.id)
        if limit is None:
            limit = self._body_limits[gateway.id] = body_capture_limit(gateway.telemetry)
        return limit

    def plan(self, consumer: Consumer) -> ConsumerPlan:
        plan = self._plans.get(consumer.id)
        if plan is None or plan.consumer is not consumer:
            plan = ConsumerPlan(
                consumer,
                bindings_of(consumer, self.state.registries, self._supported),
                self._router_of(consumer),
                self._chain(consumer),
            )
            self._plans[consumer.id] = plan
        return plan

    def _router_of(self, consumer: Consumer) -> Router:
        config = RoutingConfig(consumer.lb_config, consumer.fallback)
        entry = self._routers.get(consumer.id)
        if entry is None or entry[0] != config:
            entry = self._routers[consumer.id] = (config, self._router(config))
        return entry[1]

    def target(self, registry: Registry) -> Upstream:
        entry = self._targets.get(registry.id)
        if entry is None or entry[0] is not registry:
            entry = self._targets[registry.id] = (registry, self._build_target(registry))
        target = entry[1]
        if isinstance(target, ProviderCredentialError):
            raise ProviderCredentialError(target.message)  # fresh: no traceback pile-up
        return target

    def _build_target(self, registry: Registry) -> Upstream | ProviderCredentialError:
        builder = self._builders.get((registry.provider or "").lower())
        if builder is None:
            return ProviderCredentialError(f"provider '{registry.provider}' is not supported")
        try:
            opened: Mapping[str, Any] | None = (
                self._box.open_fields(registry.auth) if registry.auth else None
            )
            options = self._box.open_fields(registry.provider_options)
            in_url = find_url_credentials({"provider_options": options, "auth": opened})
            if in_url:  # stored before the admin refused them; never sent, never echoed
                return ProviderCredentialError(
                    f"{in_url} carries credentials (user:password@); "
                    "put them in the registry's auth or headers"
                )
            return builder(registry.model_copy(update={"provider_options": options}), opened)
        except ProviderCredentialError as exc:
            return exc
        except Exception:  # a key that does not open (rotated secret), malformed auth
            return ProviderCredentialError("the registry's credentials cannot be read")
