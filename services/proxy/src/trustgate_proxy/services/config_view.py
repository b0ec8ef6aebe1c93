"""The replica's state compiled for the hot path, recompiled lazily after any change.

Config changes are rare and requests many, so each consumer's plan (its routable
bindings, its router, its policy chain) and each registry's upstream target (with its
credentials and the sealed fields of its ``provider_options`` opened once) are built on
first use and dropped when the replica applies an event (``invalidate``). Lookups are
dict hits. How targets, routers and chains are built is handed in (the composition root
wires the adapters), so this module imports none.

A role-based consumer has a plan per set of roles a token's claims select: the roles'
registries, model policies (merged: a registry any role leaves unrestricted is unrestricted,
otherwise the union of the allowed models) and MCP toolkits, with the consumer's policies.
Bearer tokens are checked by the view's `TokenVerifier`, which opens the auths' sealed
secrets (an introspection ``client_secret``) with the same box.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from trustgate_core.access import TOKEN_AUTH_TYPES, TokenVerifier, matching_roles
from trustgate_core.crypto import SecretBox, find_url_credentials
from trustgate_core.errors import Forbidden, ProviderCredentialError
from trustgate_core.models import Auth, Consumer, Gateway, Registry, Role
from trustgate_core.models.consumer import ModelPolicy, RegistryBinding
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
_MAX_ROLE_PLANS = 1024


class ConsumerPlan:
    """A consumer as the hot path needs it: who may call it, where it routes (its
    bindings, its router) and its policy chain."""

    __slots__ = (
        "auth_ids",
        "bindings",
        "certificate_auths",
        "chain",
        "consumer",
        "router",
        "routes",
        "token_auths",
    )

    def __init__(
        self,
        consumer: Consumer,
        bindings: tuple[Binding, ...],
        router: Router,
        chain: Chain,
        token_auths: tuple[Auth, ...] = (),
        certificate_auths: tuple[Auth, ...] = (),
    ) -> None:
        self.consumer = consumer
        self.auth_ids: frozenset[object] = frozenset(consumer.auth_ids)
        # the enabled oauth2/oidc auths attached to the consumer, for its bearer tokens
        self.token_auths = token_auths
        self.certificate_auths = certificate_auths  # its enabled mtls auths
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
        tokens: TokenVerifier | None = None,
    ) -> None:
        self.state = state
        self._box = box
        self._builders = builders
        self._supported = frozenset(builders)
        self._router = router
        self._chain = chain
        self._plans: dict[UUID, ConsumerPlan] = {}
        self._role_plans: dict[tuple[UUID, tuple[UUID, ...]], ConsumerPlan] = {}
        self.tokens = tokens or TokenVerifier(open_config=box.open_fields)
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
        self._role_plans = {}
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
                *self._credential_auths(consumer),
            )
            self._plans[consumer.id] = plan
        return plan

    def _credential_auths(self, consumer: Consumer) -> tuple[tuple[Auth, ...], tuple[Auth, ...]]:
        """The consumer's enabled auths of its gateway that a bearer token (oauth2, oidc)
        and that a client certificate (mtls) are checked against."""
        auths = self.state.auths
        attached = [
            auth
            for auth in (auths.get(aid) for aid in consumer.auth_ids)
            if auth is not None and auth.enabled and auth.gateway_id == consumer.gateway_id
        ]
        return (
            tuple(a for a in attached if a.type in TOKEN_AUTH_TYPES),
            tuple(a for a in attached if a.type == "mtls"),
        )

    def role_plan(self, consumer: Consumer, claims: Mapping[str, Any]) -> ConsumerPlan:
        """A role-based consumer's plan for a token's claims: from the consumer's roles
        that the claims select. None selected → 403."""
        roles = self.state.roles
        attached = [r for r in (roles.get(rid) for rid in consumer.role_ids) if r is not None]
        chosen = matching_roles(attached, claims)
        if not chosen:
            raise Forbidden("forbidden")
        key = (consumer.id, tuple(role.id for role in chosen))
        plan = self._role_plans.get(key)
        if plan is None:
            merged = _merge_roles(consumer, chosen)
            plan = ConsumerPlan(
                merged,
                bindings_of(merged, self.state.registries, self._supported),
                self._router_of(consumer),
                self._chain(consumer),
                *self._credential_auths(consumer),
            )
            if len(self._role_plans) >= _MAX_ROLE_PLANS:
                self._role_plans.clear()
            self._role_plans[key] = plan
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


def _merge_roles(consumer: Consumer, roles: tuple[Role, ...]) -> Consumer:
    """The consumer as the roles make it: their registries in order (each once), a model
    policy per registry (unrestricted if any role leaves it so, else the union of the
    allowed models, the first role's default), their MCP toolkits one after another
    (``fail_mode`` closed if any role says so)."""
    order: list[UUID] = []
    allowed: dict[UUID, set[str] | None] = {}
    defaults: dict[UUID, str] = {}
    toolkit: list[dict[str, Any]] = []
    closed = False
    for role in roles:
        policies = {p.registry_id: p for p in role.model_policies}
        for rid in role.registry_ids:
            if rid not in allowed:
                order.append(rid)
                allowed[rid] = set()
            policy = policies.get(rid)
            current = allowed[rid]
            if policy is None or not policy.allowed or current is None:
                allowed[rid] = None
            else:
                current.update(policy.allowed)
            if policy is not None and policy.default and rid not in defaults:
                defaults[rid] = policy.default
        mcp = role.mcp_policies or {}
        toolkit.extend(t for t in mcp.get("toolkit") or () if isinstance(t, dict))
        closed = closed or mcp.get("fail_mode") == "closed"
    policies_out = []
    for rid in order:
        models = allowed[rid]
        default = defaults.get(rid)
        if models is not None and default is not None:
            models.add(default)
        policies_out.append(
            ModelPolicy(
                registry_id=rid,
                allowed=sorted(models) if models is not None else None,
                default=default,
            )
        )
    return consumer.model_copy(
        update={
            "registries": [RegistryBinding(registry_id=rid) for rid in order],
            "model_policies": policies_out,
            "toolkit": toolkit or consumer.toolkit,
            "fail_mode": "closed" if closed else consumer.fail_mode,
        }
    )
