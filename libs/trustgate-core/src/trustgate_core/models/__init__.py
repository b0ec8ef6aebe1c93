"""The six configuration objects, as they travel on the bus and live in replicas.

These are wire contracts: frozen, versioned through the config event's
``schema_version``, evolved only by adding fields (readers ignore fields they do not
know). Database tables are separate (in the admin service).
"""

from trustgate_core.models.auth import Auth, AuthType
from trustgate_core.models.base import Entity, EntityKind
from trustgate_core.models.consumer import Consumer, ModelPolicy, RegistryBinding
from trustgate_core.models.gateway import Gateway, GatewayGovernance
from trustgate_core.models.policy import Policy
from trustgate_core.models.registry import Registry
from trustgate_core.models.role import Role
from trustgate_core.models.routing import (
    Fallback,
    FallbackBudget,
    HealthChecks,
    LbConfig,
    LbMember,
    SmartRouting,
    SmartRoutingTier,
)

__all__ = [
    "Auth",
    "AuthType",
    "Consumer",
    "Entity",
    "EntityKind",
    "Fallback",
    "FallbackBudget",
    "Gateway",
    "GatewayGovernance",
    "HealthChecks",
    "LbConfig",
    "LbMember",
    "ModelPolicy",
    "Policy",
    "Registry",
    "RegistryBinding",
    "Role",
    "SmartRouting",
    "SmartRoutingTier",
]
