"""The service skeleton every plane shares: the config-replica runner and the
health/readiness/metrics app."""

from trustgate_core.service.health import HealthApp
from trustgate_core.service.runner import ReplicaRunner

__all__ = ["HealthApp", "ReplicaRunner"]
