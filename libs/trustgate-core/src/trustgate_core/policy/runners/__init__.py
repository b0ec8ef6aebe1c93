"""The plugins' runners on the LLM plane, by plugin id (``LLM_RUNNERS``), and the runner
of a gateway's plan limits (``gateway_plan``). A plugin without a runner here is not
enforced, and the admin refuses its policies."""

from __future__ import annotations

from typing import Final

from trustgate_core.policy.engine import RunnerType
from trustgate_core.policy.runners import budget, content, limits
from trustgate_core.policy.runners.limits import gateway_plan

LLM_RUNNERS: Final[dict[str, RunnerType]] = {
    **limits.RUNNERS,
    **budget.RUNNERS,
    **content.RUNNERS,
}

__all__ = ["LLM_RUNNERS", "gateway_plan"]
