"""Route health shared by the proxy's replicas: passive ejection, `Retry-After`
cooldowns, half-open trials and active probes run once for the cluster (`RouteHealth`,
built by `health_from`)."""

from trustgate_core.health.route_health import (
    DEFAULT_COOLDOWN,
    DEFAULT_INTERVAL,
    DEFAULT_THRESHOLD,
    RouteHealth,
    health_from,
)

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_INTERVAL",
    "DEFAULT_THRESHOLD",
    "RouteHealth",
    "health_from",
]
