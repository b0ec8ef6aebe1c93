"""The policy-cache service's settings: the core ones plus its own, from the environment."""

from __future__ import annotations

from pydantic import Field

from trustgate_core.counters import RedisSettings
from trustgate_core.settings import DEFAULT_HOST, CoreSettings


class PolicyCacheSettings(CoreSettings, RedisSettings):
    """``REDIS_*``: where entries live, shared by the replicas; none → this process's
    memory (``trustgate run`` without Redis)."""

    host: str = Field(DEFAULT_HOST, alias="SERVER_POLICY_CACHE_HOST")
    # health and metrics (the service's only HTTP)
    port: int = Field(8084, alias="SERVER_POLICY_CACHE_PORT")
