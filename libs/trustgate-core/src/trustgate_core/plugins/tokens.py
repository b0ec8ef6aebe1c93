"""``token_rate_limiter``: token and dollar budgets plus the per-model cost cap."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from trustgate_core.plugins.base import (
    Duration,
    NonBlankStr,
    NonNegativeNumber,
    OnError,
    PluginSettings,
    PluginSpec,
    PositiveInt,
    PositiveNumber,
    SettingsError,
    require_duration,
)

#: Budgets are fixed windows; anything shorter than a minute is noise.
MIN_BUDGET_WINDOW_SECONDS = 60
#: The output reserved for a request that names no max_tokens: about a long chat answer.
#: An answer longer than this can overshoot a budget by the difference, once per call in
#: flight; set max_tokens (or raise this) where answers run long.
DEFAULT_OUTPUT_TOKENS = 1024
_DOWNGRADE_TARGET = re.compile(r"^(@[A-Za-z0-9_.-]+/)?[^\s@/][^\s]*$")


def _check_downgrade_target(value: str | None) -> str | None:
    if value is not None and not _DOWNGRADE_TARGET.match(value):
        raise ValueError('must be "model" or "@provider/model"')
    return value


class BudgetLimit(PluginSettings):
    """A maximum over a fixed window (tokens must be whole numbers; dollars may not)."""

    max: PositiveNumber = Field(description="Tokens, or USD when unit is dollars.")
    time_window: Duration = Field(description='A duration >= 60s such as "1h" or "1d".')

    @field_validator("time_window")
    @classmethod
    def _at_least_a_minute(cls, value: str) -> str:
        require_duration(value, minimum=MIN_BUDGET_WINDOW_SECONDS)
        return value


class ModelBudgetRule(BudgetLimit):
    model: NonBlankStr = Field(description="Model slug or glob; the best match wins.")


class LegacyWindow(PluginSettings):
    unit: Literal["second", "minute", "hour", "day"]
    max: PositiveNumber


class Price(PluginSettings):
    input: NonNegativeNumber = Field(description="USD per input token.")
    output: NonNegativeNumber = Field(description="USD per output token.")


class CostCeiling(PluginSettings):
    max_input_cost_per_1k_tokens: NonNegativeNumber | None = None
    max_output_cost_per_1k_tokens: NonNegativeNumber | None = None


class CostCap(CostCeiling):
    """Refuses (or downgrades) requests to models priced above a ceiling."""

    enabled: bool = False
    per_model_overrides: dict[str, CostCeiling] = Field(default_factory=dict)
    behavior_on_violation: Literal["reject", "downgrade"] = "reject"
    downgrade_to: NonBlankStr | None = None
    unknown_model: Literal["reject", "pass_through", "assume_max"] = "pass_through"

    @field_validator("downgrade_to")
    @classmethod
    def _downgrade_format(cls, value: str | None) -> str | None:
        return _check_downgrade_target(value)

    @model_validator(mode="after")
    def _coherent(self) -> CostCap:
        if self.behavior_on_violation == "downgrade" and self.downgrade_to is None:
            raise SettingsError(
                "downgrade_to", "is required when behavior_on_violation is downgrade"
            )
        if self.enabled and not self._has_ceiling():
            raise SettingsError(
                "max_input_cost_per_1k_tokens",
                "an enabled cost_cap needs max_input_cost_per_1k_tokens, "
                "max_output_cost_per_1k_tokens or per_model_overrides",
            )
        return self

    def _has_ceiling(self) -> bool:
        ceilings = [self, *self.per_model_overrides.values()]
        return any(
            c.max_input_cost_per_1k_tokens is not None
            or c.max_output_cost_per_1k_tokens is not None
            for c in ceilings
        )


class TokenRateLimiterSettings(PluginSettings):
    """Token or dollar budgets per scope subject, per model rule and in aggregate."""

    unit: Literal["tokens", "dollars"] = "tokens"
    counting: Literal["total", "input", "output"] = "total"
    rules: list[ModelBudgetRule] | None = None
    aggregate: BudgetLimit | None = None
    behavior_on_exceeded: Literal["reject", "downgrade_model"] = "reject"
    downgrade_to: NonBlankStr | None = Field(
        None, description='Target of downgrade_model: "model" or "@provider/model".'
    )
    count_cache_reads: bool = False
    custom_pricing: dict[str, Price] | None = Field(
        None, description="Per model slug or glob, USD per token."
    )
    cost_cap: CostCap | None = None
    group_by_header: NonBlankStr | None = None
    window: LegacyWindow | None = Field(None, description="Legacy single window.")
    default_output_tokens: PositiveInt = Field(
        DEFAULT_OUTPUT_TOKENS,
        description="Output tokens reserved for a request that names no max_tokens.",
    )
    on_error: OnError = Field(
        "fail_open", description="When the shared counters are unreachable: admit or refuse (503)."
    )

    @field_validator("downgrade_to")
    @classmethod
    def _downgrade_format(cls, value: str | None) -> str | None:
        return _check_downgrade_target(value)

    @model_validator(mode="after")
    def _coherent(self) -> TokenRateLimiterSettings:
        if (
            self.window is None
            and not self.rules
            and self.aggregate is None
            and not (self.cost_cap is not None and self.cost_cap.enabled)
        ):
            raise SettingsError(
                "rules",
                "at least one of window, rules, aggregate or an enabled cost_cap is required",
            )
        if self.behavior_on_exceeded == "downgrade_model" and self.downgrade_to is None:
            raise SettingsError(
                "downgrade_to", "is required when behavior_on_exceeded is downgrade_model"
            )
        if self.unit == "tokens":
            self._require_integer_maxima()
        return self

    def _require_integer_maxima(self) -> None:
        limits: list[tuple[str, BudgetLimit | LegacyWindow]] = [
            (f"rules[{i}]", rule) for i, rule in enumerate(self.rules or [])
        ]
        if self.aggregate is not None:
            limits.append(("aggregate", self.aggregate))
        if self.window is not None:
            limits.append(("window", self.window))
        for path, limit in limits:
            if not isinstance(limit.max, int):
                raise SettingsError(f"{path}.max", "token maxima must be integers")


TOKEN_RATE_LIMITER = PluginSpec(
    id="token_rate_limiter",
    name="Token & budget limiter",
    category="cost",
    description=(
        "Caps tokens or dollars spent per consumer or gateway in fixed windows, per model "
        "and in aggregate, and can refuse or downgrade models priced above a cost cap."
    ),
    stages=("pre_request", "post_response"),
    mandatory_stages=("pre_request", "post_response"),
    default_stages=("pre_request", "post_response"),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=TokenRateLimiterSettings,
    aliases=("tokenratelimit",),
    mutates=frozenset({"request_body"}),
)
