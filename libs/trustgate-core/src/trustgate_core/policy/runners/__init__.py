"""The plugins' runners by plugin id, per plane (``LLM_RUNNERS``, ``MCP_RUNNERS``), and
the runner of a gateway's plan limits (``gateway_plan``, on both planes: its limits count
LLM and MCP calls alike). A plugin without a runner on any plane is not enforced, and the
admin refuses its policies; one attached to a consumer of a plane without its runner too."""

from __future__ import annotations

from typing import Final

from trustgate_core.policy.engine import RunnerType
from trustgate_core.policy.runners import budget, cache, content, limits, mcp, pii
from trustgate_core.policy.runners.limits import gateway_plan

LLM_RUNNERS: Final[dict[str, RunnerType]] = {
    **limits.RUNNERS,
    **budget.RUNNERS,
    **content.RUNNERS,
    **cache.RUNNERS,
    **pii.RUNNERS,
}

#: ``cors`` is left out: an MCP client is an agent, not a browser page.
MCP_RUNNERS: Final[dict[str, RunnerType]] = {
    **limits.RUNNERS,
    **mcp.RUNNERS,
}

#: The planes that enforce each plugin (by id), in ``PLANES`` order.
ENFORCED_ON: Final[dict[str, tuple[str, ...]]] = {
    plugin: tuple(
        plane
        for plane, runners in (("LLM", LLM_RUNNERS), ("MCP", MCP_RUNNERS))
        if plugin in runners
    )
    for plugin in {**LLM_RUNNERS, **MCP_RUNNERS}
}

__all__ = ["ENFORCED_ON", "LLM_RUNNERS", "MCP_RUNNERS", "gateway_plan"]
