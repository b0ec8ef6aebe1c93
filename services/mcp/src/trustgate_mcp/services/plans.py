"""A consumer as the MCP request path needs it (``McpPlan``): its MCP registries in
binding order, its compiled policy chain, the auths its credentials are checked against.
Built once per change of the configuration, not per request."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from uuid import UUID

from trustgate_core.access import TOKEN_AUTH_TYPES
from trustgate_core.models import Auth, Consumer, Registry
from trustgate_core.policy import Chain
from trustgate_core.replica import ReplicaState


class McpPlan:
    __slots__ = (
        "_fingerprint",
        "allows_tool",
        "auth_ids",
        "chain",
        "consumer",
        "registries",
        "token_auths",
    )

    def __init__(
        self,
        consumer: Consumer,
        registries: tuple[Registry, ...],
        chain: Chain,
        token_auths: tuple[Auth, ...],
    ) -> None:
        self.consumer = consumer
        self.registries = registries
        self.chain = chain
        # one bound method per plan: the catalog memoizes its filtered view on it
        self.allows_tool: Callable[[str], bool] = chain.allows_tool
        self.auth_ids: frozenset[object] = frozenset(consumer.auth_ids)
        self.token_auths = token_auths  # enabled oauth2/oidc auths attached to the consumer
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """8 hex characters that change when the consumer or one of its servers does
        (``serverInfo.version``: a client sees that what it was given has changed)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(self.consumer.model_dump_json().encode())
            for registry in self.registries:
                digest.update(registry.model_dump_json().encode())
            self._fingerprint = digest.hexdigest()[:8]
        return self._fingerprint


class Plans:
    def __init__(self, state: ReplicaState, compile_chain: Callable[[Consumer], Chain]) -> None:
        self.state = state
        self._compile = compile_chain
        self._plans: dict[UUID, McpPlan] = {}

    def invalidate(self, _event: object = None) -> None:
        """After any config change: plans are built again on next use."""
        self._plans = {}

    def plan(self, consumer: Consumer) -> McpPlan:
        plan = self._plans.get(consumer.id)
        if plan is None or plan.consumer is not consumer:
            plan = self._plans[consumer.id] = McpPlan(
                consumer,
                self._registries(consumer),
                self._compile(consumer),
                self._token_auths(consumer),
            )
        return plan

    def _registries(self, consumer: Consumer) -> tuple[Registry, ...]:
        registries = self.state.registries
        found = (registries.get(binding.registry_id) for binding in consumer.registries)
        return tuple(
            r
            for r in found
            if r is not None
            and r.type == "MCP"
            and r.enabled
            and r.gateway_id == consumer.gateway_id
        )

    def _token_auths(self, consumer: Consumer) -> tuple[Auth, ...]:
        auths = self.state.auths
        attached = (auths.get(aid) for aid in consumer.auth_ids)
        return tuple(
            a
            for a in attached
            if a is not None
            and a.enabled
            and a.gateway_id == consumer.gateway_id
            and a.type in TOKEN_AUTH_TYPES
        )
