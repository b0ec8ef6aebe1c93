"""Config events → the MCP plane: every applied change drops the compiled plans; a
policy change drops the engine's compiled policies; a registry change drops that
server's cached lists (its URL or credentials may have changed)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from trustgate_core.events.config import AnyConfigEvent
from trustgate_core.models.base import EntityKind
from trustgate_core.policy import PolicyEngine
from trustgate_core.replica import ReplicaState
from trustgate_core.replica.replica import Listener
from trustgate_mcp.services.plans import Plans


def config_listeners(
    state: ReplicaState,
    plans: Plans,
    engine: PolicyEngine,
    forget_registry: Callable[[UUID], None],
) -> list[Listener]:
    def changed(event: AnyConfigEvent) -> None:
        if event.kind is EntityKind.policy:
            engine.forget(state.policies)
        elif event.kind is EntityKind.registry:
            forget_registry(event.entity_id)

    return [changed, plans.invalidate]
