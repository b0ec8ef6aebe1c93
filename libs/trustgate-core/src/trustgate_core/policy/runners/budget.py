"""Runners: token_rate_limiter: token and dollar budgets, reserved before the call and settled after it."""

from __future__ import annotations

from trustgate_core.policy.engine import RunnerType

RUNNERS: dict[str, RunnerType] = {}
