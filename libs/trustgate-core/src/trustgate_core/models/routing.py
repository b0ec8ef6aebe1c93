"""How a consumer's traffic is spread and rescued: load balancing (``lb_config``), the
fallback chain (``fallback``) and a registry's passive health checks (``health_checks``),
typed as they travel on the bus (reference §5).

Readers are lenient: unknown fields are ignored and every field has a default, so a newer
admin's event never breaks an older proxy. The admin validates what it accepts.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="ignore")


class LbMember(BaseModel):
    """One route of an enabled pool: a registry and the model(s) it serves there."""

    model_config = _FROZEN

    registry_id: UUID
    models: list[str] = []
    model: str | None = None
    weight: int | None = None


class SmartRoutingTier(BaseModel):
    model_config = _FROZEN

    min_score: float = 0.0
    registry_id: UUID | None = None
    model: str | None = None


class SmartRouting(BaseModel):
    model_config = _FROZEN

    tiers: list[SmartRoutingTier] = []


class LbConfig(BaseModel):
    """``lb_config``: disabled → the pool is the consumer's registries; enabled → its
    members, each (registry, model) pair a distinct route."""

    model_config = _FROZEN

    enabled: bool = False
    algorithm: str = "round-robin"
    pool_alias: str | None = None
    members: list[LbMember] = []
    embedding_config: dict[str, Any] | None = None
    smart_routing: SmartRouting | None = None


class FallbackBudget(BaseModel):
    model_config = _FROZEN

    max_attempts: int | None = None
    max_total_latency_ms: int | None = None


class Fallback(BaseModel):
    """``fallback``: registries tried in order once the pool is exhausted, when the
    failure matches one of ``triggers`` (http_5xx, http_429, timeout, provider_error,
    plugin_rejection)."""

    model_config = _FROZEN

    enabled: bool = False
    triggers: list[str] = []
    budget: FallbackBudget = Field(default_factory=FallbackBudget)
    chain: list[UUID] = []


class HealthChecks(BaseModel):
    """A registry's ``health_checks``: passive health counts failures within ``interval``
    seconds and takes the registry out at ``threshold``."""

    model_config = _FROZEN

    passive: bool = False
    path: str | None = None
    headers: dict[str, str] = {}
    threshold: int | None = None
    interval: int | None = None
