"""The service skeleton every plane shares: the config-replica runner and the
health/readiness/metrics app."""

from trustgate_core.service.health import HealthApp
from trustgate_core.service.lifecycle import Lifecycle
from trustgate_core.service.runner import ReplicaRunner

__all__ = ["HealthApp", "Lifecycle", "ReplicaRunner"]
