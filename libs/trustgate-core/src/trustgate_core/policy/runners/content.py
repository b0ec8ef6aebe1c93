"""Runners: cors, model_allowlist, tool_allowlist and regex_replace."""

from __future__ import annotations

from trustgate_core.policy.engine import RunnerType

RUNNERS: dict[str, RunnerType] = {}
