"""Guards: allowlists and content-safety checks (TrustGuard, OpenAI, Azure, Bedrock)."""

from __future__ import annotations

import uuid
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator

from trustgate_core.plugins.base import (
    NonBlankStr,
    OnError,
    PluginSettings,
    PluginSpec,
    Scope,
    SettingsError,
    glob_match,
    require_duration,
)

# --------------------------------------------------------------------------- model_allowlist


class ModelAllowlistSettings(PluginSettings):
    allowed_models: list[NonBlankStr] = Field(
        min_length=1, description="Model slugs or globs (``*`` wildcard)."
    )
    behavior_on_disallowed: Literal["reject", "substitute"] = "reject"
    substitute_with: NonBlankStr | None = Field(
        None, description="Model used instead of a disallowed one (substitute only)."
    )
    default_model: NonBlankStr | None = Field(
        None, description="Model used when the request names none."
    )

    def allows(self, model: str) -> bool:
        return any(glob_match(pattern, model) for pattern in self.allowed_models)

    @model_validator(mode="after")
    def _coherent(self) -> ModelAllowlistSettings:
        if self.behavior_on_disallowed == "substitute":
            if self.substitute_with is None:
                raise SettingsError(
                    "substitute_with", "is required when behavior_on_disallowed is substitute"
                )
            if not self.allows(self.substitute_with):
                raise SettingsError("substitute_with", "must match allowed_models")
        elif self.substitute_with is not None:
            raise SettingsError(
                "substitute_with", "is only allowed when behavior_on_disallowed is substitute"
            )
        if self.default_model is not None and not self.allows(self.default_model):
            raise SettingsError("default_model", "must match allowed_models")
        return self


MODEL_ALLOWLIST = PluginSpec(
    id="model_allowlist",
    name="Model allowlist",
    category="security",
    description=(
        "Only lets requests through for the listed models; others are rejected (403) or "
        "substituted."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=ModelAllowlistSettings,
    mutates=frozenset({"request_body"}),
)

# --------------------------------------------------------------------------- tool_allowlist


class ToolAllowlistSettings(PluginSettings):
    allow_tools: list[NonBlankStr] = Field(default_factory=list)
    deny_tools: list[NonBlankStr] = Field(default_factory=list)
    on_empty_after_filter: Literal["reject", "pass_through_empty", "strip_tools_field"] = "reject"
    scope: Scope | None = None

    @model_validator(mode="after")
    def _something_to_filter(self) -> ToolAllowlistSettings:
        if not self.allow_tools and not self.deny_tools:
            raise SettingsError(
                "allow_tools", "at least one of allow_tools or deny_tools is required"
            )
        return self


TOOL_ALLOWLIST = PluginSpec(
    id="tool_allowlist",
    name="Tool allowlist",
    category="security",
    description=(
        "Filters tools through allow and deny lists: the tools an LLM request offers the "
        "model; on MCP, the tools a consumer sees and may call."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM", "MCP"),
    modes=("enforce", "observe"),
    settings_model=ToolAllowlistSettings,
    mutates=frozenset({"request_body"}),
)

# --------------------------------------------------------------------------- trustguard

MIN_TRUSTGUARD_TIMEOUT: Final[float] = 0.25
MAX_TRUSTGUARD_TIMEOUT: Final[float] = 120.0


class TrustGuardSettings(PluginSettings):
    inspect: Literal["request", "response", "request_response"] = Field(
        "request_response",
        validation_alias=AliasChoices("inspect", "direction"),
        description="Which legs are inspected.",
    )
    collector_id: str = Field(description="TrustGuard collector UUID.")
    on_error: OnError = "fail_open"
    on_timeout: OnError | None = Field(None, description="Defaults to on_error.")
    timeout: str | None = Field(
        None, description="Per-call deadline between 250ms and 120s; default TRUSTGUARD_TIMEOUT."
    )

    @field_validator("collector_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError("must be a UUID") from None

    @field_validator("timeout")
    @classmethod
    def _bounded_timeout(cls, value: str | None) -> str | None:
        if value is not None:
            require_duration(value, minimum=MIN_TRUSTGUARD_TIMEOUT, maximum=MAX_TRUSTGUARD_TIMEOUT)
        return value

    @model_validator(mode="after")
    def _inherit_on_timeout(self) -> TrustGuardSettings:
        if self.on_timeout is None:
            self.on_timeout = self.on_error
        return self


TRUSTGUARD = PluginSpec(
    id="trustguard",
    name="TrustGuard",
    category="security",
    description=(
        "Inspects prompts, responses and tool traffic with NeuralTrust TrustGuard and "
        "blocks or masks what it flags."
    ),
    stages=("pre_request", "pre_response", "post_response"),
    mandatory_stages=("pre_request", "pre_response", "post_response"),
    default_stages=("pre_request", "pre_response", "post_response"),
    protocols=("LLM", "MCP"),
    modes=("enforce", "observe"),
    settings_model=TrustGuardSettings,
    mutates=frozenset({"request_body", "response_body"}),
)

# --------------------------------------------------------------------------- openai_moderation


class ModerationAction(PluginSettings):
    message: NonBlankStr | None = Field(None, description="Message returned on a block.")


class OpenAIModerationSettings(PluginSettings):
    api_key: NonBlankStr
    model: NonBlankStr = "omni-moderation-latest"
    categories: list[NonBlankStr] = Field(
        default_factory=list, description="Categories to act on; empty means all."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-category score in [0,1] above which to block."
    )
    block_on_flagged: bool | None = Field(
        None, description="Block on OpenAI's flagged verdict; default true without thresholds."
    )
    action: ModerationAction = Field(default_factory=ModerationAction)

    @field_validator("thresholds")
    @classmethod
    def _unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for category, score in value.items():
            if not 0 <= score <= 1:
                raise ValueError(f"threshold for {category!r} must be between 0 and 1")
        return value

    @model_validator(mode="after")
    def _default_block_on_flagged(self) -> OpenAIModerationSettings:
        if self.block_on_flagged is None:
            self.block_on_flagged = not self.thresholds
        return self


OPENAI_MODERATION = PluginSpec(
    id="openai_moderation",
    name="OpenAI moderation",
    category="security",
    description=(
        "Classifies prompts and responses with the OpenAI moderation API and blocks "
        "flagged content (403; 502 when the API fails)."
    ),
    stages=("pre_request", "pre_response"),
    mandatory_stages=(),
    default_stages=("pre_request", "pre_response"),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=OpenAIModerationSettings,
)

# --------------------------------------------------------------------------- azure_content_safety

AzureCategory = Literal["Hate", "Violence", "SelfHarm", "Sexual"]
AZURE_CATEGORIES: Final[tuple[AzureCategory, ...]] = ("Hate", "Violence", "SelfHarm", "Sexual")


class AzureContentSafetySettings(PluginSettings):
    api_key: NonBlankStr
    endpoint: NonBlankStr = Field(description="https://<resource>.cognitiveservices.azure.com")
    output_type: Literal["FourSeverityLevels", "EightSeverityLevels"] = "FourSeverityLevels"
    categories: list[AzureCategory] = Field(
        default_factory=lambda: list(AZURE_CATEGORIES), min_length=1
    )
    category_severity: dict[AzureCategory, int] = Field(
        min_length=1, description="Per-category severity at or above which to block."
    )
    message: NonBlankStr | None = None
    on_error: OnError = "fail_open"

    @field_validator("endpoint")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _severities(self) -> AzureContentSafetySettings:
        four = self.output_type == "FourSeverityLevels"
        low, high = (2, 6) if four else (1, 7)
        for category, severity in self.category_severity.items():
            path = f"category_severity.{category}"
            if category not in self.categories:
                raise SettingsError(path, "category is not listed in categories")
            if not low <= severity <= high:
                raise SettingsError(path, f"must be between {low} and {high}")
            if four and severity % 2:
                raise SettingsError(path, "must be one of 2, 4, 6 with FourSeverityLevels")
        return self


AZURE_CONTENT_SAFETY = PluginSpec(
    id="azure_content_safety",
    name="Azure AI Content Safety",
    category="security",
    description=(
        "Scores prompts and responses with Azure AI Content Safety and blocks content at "
        "or above the configured severities (403)."
    ),
    stages=("pre_request", "pre_response"),
    mandatory_stages=(),
    default_stages=("pre_request", "pre_response"),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=AzureContentSafetySettings,
)

# --------------------------------------------------------------------------- bedrock_guardrail


class AwsCredentials(PluginSettings):
    aws_region: NonBlankStr = "us-east-1"
    use_role: bool = False
    role_arn: NonBlankStr | None = None
    session_name: NonBlankStr | None = None
    access_key_id: NonBlankStr | None = None
    secret_access_key: NonBlankStr | None = None
    session_token: NonBlankStr | None = None

    @model_validator(mode="after")
    def _one_way_in(self) -> AwsCredentials:
        if self.use_role:
            if self.role_arn is None:
                raise SettingsError("role_arn", "is required when use_role is true")
            if self.session_name is None:
                self.session_name = "BedrockClientSession"
        else:
            if self.access_key_id is None:
                raise SettingsError("access_key_id", "is required unless use_role is true")
            if self.secret_access_key is None:
                raise SettingsError("secret_access_key", "is required unless use_role is true")
        return self


class BedrockGuardrailSettings(PluginSettings):
    guardrail_id: NonBlankStr
    version: NonBlankStr = "DRAFT"
    pii_action: Literal["block", "anonymize"] = "block"
    message: NonBlankStr | None = None
    credentials: AwsCredentials


BEDROCK_GUARDRAIL = PluginSpec(
    id="bedrock_guardrail",
    name="Amazon Bedrock Guardrails",
    category="security",
    description=(
        "Applies an Amazon Bedrock guardrail to prompts and responses; blocks violations "
        "or anonymizes detected PII."
    ),
    stages=("pre_request", "pre_response"),
    mandatory_stages=(),
    default_stages=("pre_request", "pre_response"),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=BedrockGuardrailSettings,
    mutates=frozenset({"request_body", "response_body"}),
)
