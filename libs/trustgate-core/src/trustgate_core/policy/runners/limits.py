"""Runners: rate_limiter, request_size_limiter and the gateway's plan limits (entitlements)."""

from __future__ import annotations

from trustgate_core.models import Gateway
from trustgate_core.policy.engine import PolicyDeps, Runner, RunnerType

RUNNERS: dict[str, RunnerType] = {}


def gateway_plan(gateway: Gateway, deps: PolicyDeps) -> Runner | None:
    """The runner of the gateway's plan limits, or ``None`` when it has none."""
    return None
