"""Request-count limiters: ``rate_limiter`` and ``per_tool_rate_limiter``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from trustgate_core.plugins.base import (
    Duration,
    NonBlankStr,
    OnError,
    Plane,
    PluginSettings,
    PluginSpec,
    PositiveInt,
    Scope,
    SettingsError,
    require_duration,
)


class RateLimiterSettings(PluginSettings):
    """Sliding-window request limit per scope subject (and optionally per header value)."""

    limit: PositiveInt = Field(description="Requests allowed per window.")
    window: Duration = Field(description='Window length, a duration >= 1s such as "1m".')
    retry_after: str | None = Field(
        None,
        description=(
            "Seconds announced in Retry-After; without it, the time until a slot frees "
            "(rounded up, at least 1)."
        ),
    )
    group_by_header: NonBlankStr | None = Field(
        None, description="Count separately per value of this request header."
    )
    on_error: OnError = Field(
        "fail_open",
        description="When the counters are unreachable: let the call through, or 503.",
    )

    @field_validator("window")
    @classmethod
    def _window_at_least_one_second(cls, value: str) -> str:
        require_duration(value, minimum=1)
        return value

    @field_validator("retry_after", mode="before")
    @classmethod
    def _retry_after_is_seconds(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError("must be a whole number of seconds > 0")
        return str(int(value))


ToolBehavior = Literal["reject_response", "inject_error_result", "strip_tool_from_request"]


class ToolWindow(PluginSettings):
    duration: Duration = Field(description="Window length, a whole number of seconds >= 1s.")
    max: PositiveInt = Field(description="Calls allowed per window.")

    @field_validator("duration")
    @classmethod
    def _whole_seconds(cls, value: str) -> str:
        seconds = require_duration(value, minimum=1)
        if seconds != int(seconds):
            raise ValueError("must be a whole number of seconds")
        return value


class ToolRule(PluginSettings):
    tool: NonBlankStr = Field(description="Tool name or glob (``*`` wildcard).")
    windows: list[ToolWindow] = Field(min_length=1)
    behavior: ToolBehavior | None = None


class PerToolRateLimiterSettings(PluginSettings):
    """Per-tool call budgets, counted from tool calls seen in requests and responses."""

    scope: Scope | None = None
    rules: list[ToolRule] = Field(min_length=1)
    behavior_default: ToolBehavior = "reject_response"


def _per_tool_protocol_check(settings: PluginSettings, protocol: Plane) -> None:
    """Only the LLM path can rewrite an exchange; over MCP a limit can only reject."""
    assert isinstance(settings, PerToolRateLimiterSettings)
    if protocol != "MCP":
        return
    if settings.behavior_default != "reject_response":
        raise SettingsError("behavior_default", "must be reject_response for MCP consumers")
    for index, rule in enumerate(settings.rules):
        if rule.behavior not in (None, "reject_response"):
            raise SettingsError(
                f"rules[{index}].behavior", "must be reject_response for MCP consumers"
            )


RATE_LIMITER = PluginSpec(
    id="rate_limiter",
    name="Rate limiter",
    category="traffic",
    description=(
        "Limits the number of requests per consumer or gateway in a sliding window; "
        "excess requests get 429 (or are delayed in throttle mode)."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM", "MCP"),
    modes=("enforce", "throttle", "observe"),
    settings_model=RateLimiterSettings,
    aliases=("ratelimit",),
)

PER_TOOL_RATE_LIMITER = PluginSpec(
    id="per_tool_rate_limiter",
    name="Per-tool rate limiter",
    category="traffic",
    description=(
        "Limits how often each tool may be called per window; over the limit a call is "
        "rejected, answered with an error result, or the tool is stripped from the request."
    ),
    stages=("pre_request", "pre_response"),
    mandatory_stages=("pre_request", "pre_response"),
    default_stages=("pre_request", "pre_response"),
    protocols=("LLM", "MCP"),
    modes=("enforce",),
    settings_model=PerToolRateLimiterSettings,
    mutates=frozenset({"request_body", "response_body"}),
    protocol_check=_per_tool_protocol_check,
)
