"""Runners on the MCP plane: ``tool_allowlist`` and ``per_tool_rate_limiter`` (the MCP
forms), beside ``rate_limiter`` and ``request_size_limiter`` which read nothing
LLM-only (``MCP_RUNNERS`` in ``trustgate_core.policy.runners``). Both judge the tool a
``tools/call`` names (``McpExchange.tool``, the name the client sees); other methods pass.

- ``tool_allowlist``: a tool matching a ``deny_tools`` glob, or none of the
  ``allow_tools`` globs (when there are any), is refused, 403 ``tool_not_allowed`` (the
  plane answers -32001), and left out of ``tools/list`` (``Chain.allows_tool``).
  ``on_empty_after_filter`` and ``scope`` concern an LLM request's ``tools`` field only.
- ``per_tool_rate_limiter``: the first rule whose ``tool`` glob matches gives the tool
  its windows; each tool it matches is counted on its own. Each window is a sliding
  window like ``rate_limiter``'s (one atomic ``counters.hit``: exact across replicas, a
  refused hit is not counted), checked shortest first: a call a longer window refuses
  has taken a slot of the shorter ones only (they free soonest). Over a window: 429 with
  ``Retry-After`` (until a slot frees) and ``X-RateLimit-Tool-*`` (the plane answers
  -32004); passing, the ``X-RateLimit-Tool-*`` headers of the tightest window. Counted
  per consumer, or per gateway with ``scope: global`` (or a global policy). On MCP a rule
  can only reject (the admin refuses the other behaviours for MCP consumers).
"""

from __future__ import annotations

import re
from typing import Final

from trustgate_core.counters.base import WindowHit
from trustgate_core.durations import parse_duration
from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.base import glob_match
from trustgate_core.plugins.guards import ToolAllowlistSettings
from trustgate_core.plugins.ratelimit import PerToolRateLimiterSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import PolicyExchange
from trustgate_core.policy.mcp import McpExchange
from trustgate_core.policy.runners.content import compile_globs

_TOOLS_CALL: Final = "tools/call"
#: Tools whose rule is remembered (the names an upstream offers are few).
_MEMO_MAX: Final = 10_000
_LIMIT: Final = b"x-ratelimit-tool-limit"
_REMAINING: Final = b"x-ratelimit-tool-remaining"
_RESET: Final = b"x-ratelimit-tool-reset"


def _called_tool(x: PolicyExchange) -> str | None:
    """The tool a ``tools/call`` names; ``None`` for anything else."""
    if isinstance(x, McpExchange) and x.method == _TOOLS_CALL:
        return x.tool
    return None


class McpToolAllowlist(Runner):
    """``tool_allowlist`` on MCP calls."""

    def __init__(self, info: PolicyInfo, settings: ToolAllowlistSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self._allow: re.Pattern[str] | None = compile_globs(settings.allow_tools)
        self._deny: re.Pattern[str] | None = compile_globs(settings.deny_tools)

    def allows_tool(self, name: str) -> bool:
        if self._allow is not None and self._allow.fullmatch(name) is None:
            return False
        return self._deny is None or self._deny.fullmatch(name) is None

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        tool = _called_tool(x)
        if tool is None or self.allows_tool(tool):
            return None
        raise PolicyRejected(
            403,
            {
                "error": "tool_not_allowed",
                "message": f"The tool {tool!r} is not allowed for this consumer.",
                "tool": tool,
            },
            kind="tool_not_allowed",
        )


class _Rule:
    __slots__ = ("pattern", "windows")

    def __init__(self, pattern: str, windows: list[tuple[int, int]]) -> None:
        self.pattern = pattern
        tightest: dict[int, int] = {}  # two windows of one length: the smaller max holds
        for duration_ms, limit in windows:
            tightest[duration_ms] = min(limit, tightest.get(duration_ms, limit))
        self.windows = tuple(sorted(tightest.items()))  # (duration ms, max), shortest first


class PerToolRateLimiter(Runner):
    """``per_tool_rate_limiter`` on MCP calls (enforce only)."""

    def __init__(
        self, info: PolicyInfo, settings: PerToolRateLimiterSettings, deps: PolicyDeps
    ) -> None:
        super().__init__(info, settings, deps)
        # counted where the tool is called (pre_request); nothing to do on the answer
        self.steps.pop("pre_response", None)
        global_ = info.global_ or settings.scope == "global"
        self.dim = "global" if global_ else "consumer"
        self._prefix = f"trl:{info.id}:{self.dim}:"
        self._rules = tuple(
            _Rule(
                rule.tool,
                [
                    (int(parse_duration(window.duration, bare=None) * 1000), window.max)
                    for window in rule.windows
                ],
            )
            for rule in settings.rules
        )
        self._by_tool: dict[str, _Rule | None] = {}

    def _rule(self, tool: str) -> _Rule | None:
        if tool in self._by_tool:
            return self._by_tool[tool]
        found = next((rule for rule in self._rules if glob_match(rule.pattern, tool)), None)
        if len(self._by_tool) < _MEMO_MAX:  # tool names are few; made-up ones are not kept
            self._by_tool[tool] = found
        return found

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        tool = _called_tool(x)
        if tool is None:
            return None
        rule = self._rule(tool)
        if rule is None:
            return None
        subject = x.gateway.id if self.dim == "global" else x.consumer.id
        base = f"{self._prefix}{subject}:{tool}:"
        counters = self.deps.counters
        tightest: WindowHit | None = None
        for duration_ms, limit in rule.windows:
            hit: WindowHit = await counters.hit(f"{base}{duration_ms}", limit, duration_ms)
            if not hit.allowed:
                raise self._refusal(tool, duration_ms, hit)
            if tightest is None or hit.remaining < tightest.remaining:
                tightest = hit
        if tightest is not None:
            x.response_headers.extend(
                (
                    (_LIMIT, b"%d" % tightest.limit),
                    (_REMAINING, b"%d" % tightest.remaining),
                    (_RESET, b"%d" % _ceil_s(tightest.reset_ms)),
                )
            )
        return None

    def _refusal(self, tool: str, duration_ms: int, hit: WindowHit) -> PolicyRejected:
        retry = max(hit.retry_after_s, 1)
        return PolicyRejected(
            429,
            {
                "error": "rate limit exceeded",
                "message": f"Request blocked: the tool {tool!r} may be called {hit.limit} "
                f"times per {_ceil_s(duration_ms)}s. Retry after {retry}s.",
                "reason": "tool_rate_limit_exceeded",
                "scope": self.dim,
                "tool": tool,
                "limit": hit.limit,
                "retry_after_seconds": retry,
            },
            (
                (b"retry-after", b"%d" % retry),
                (_LIMIT, b"%d" % hit.limit),
                (_REMAINING, b"0"),
                (_RESET, b"%d" % _ceil_s(hit.reset_ms)),
            ),
            kind="rate_limited",
        )


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000)


RUNNERS: dict[str, RunnerType] = {
    "tool_allowlist": McpToolAllowlist,
    "per_tool_rate_limiter": PerToolRateLimiter,
}
