"""Transformations: prompt templates and compression, tool injection, regex rewriting."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from trustgate_core.models.policy import Stage
from trustgate_core.plugins.base import (
    NonBlankStr,
    NonNegativeInt,
    PluginSettings,
    PluginSpec,
    PositiveInt,
    Scope,
    SettingsError,
)

# --------------------------------------------------------------------------- prompt_template


class ContextVariable(PluginSettings):
    source: Literal["header", "jwt_claim"]
    name: NonBlankStr


class InjectTemplate(PluginSettings):
    id: NonBlankStr | None = None
    position: NonBlankStr = "system"
    role: Literal["system", "developer", "user", "assistant"] = "system"
    content: NonBlankStr
    on_existing_system: Literal["merge", "replace"] = "merge"


class RequiredVariable(PluginSettings):
    type: Literal["string", "number", "integer", "boolean"] = "string"
    enum: list[str] | None = None
    max_length: PositiveInt | None = None


class TemplateVersion(PluginSettings):
    version: NonBlankStr
    labels: list[NonBlankStr] = Field(default_factory=list)
    content: NonBlankStr
    required_variables: dict[str, RequiredVariable] = Field(default_factory=dict)


class NamedTemplate(PluginSettings):
    name: NonBlankStr
    versions: list[TemplateVersion] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _unique_versions(cls, value: list[TemplateVersion]) -> list[TemplateVersion]:
        seen: set[str] = set()
        for version in value:
            if version.version in seen:
                raise ValueError(f"duplicate version {version.version!r}")
            seen.add(version.version)
        return value


class PromptTemplateSettings(PluginSettings):
    template_engine: Literal["mustache", "jinja2_subset"] = "mustache"
    context_variables: dict[str, ContextVariable] = Field(default_factory=dict)
    inject_templates: list[InjectTemplate] = Field(default_factory=list)
    named_templates: list[NamedTemplate] = Field(default_factory=list)
    allow_untemplated_requests: bool = False
    on_missing_context_variable: Literal["error", "empty_string", "skip_injection"] = "error"
    on_missing_client_variable: Literal["error", "empty_string"] = "error"
    default_label: NonBlankStr | None = None
    escape_json_control_chars: bool = True

    @model_validator(mode="after")
    def _has_a_template(self) -> PromptTemplateSettings:
        if not self.inject_templates and not self.named_templates:
            raise SettingsError(
                "inject_templates",
                "at least one of inject_templates or named_templates is required",
            )
        names = [template.name for template in self.named_templates]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise SettingsError(f"named_templates[{index}].name", f"duplicate name {name!r}")
        return self


PROMPT_TEMPLATE = PluginSpec(
    id="prompt_template",
    name="Prompt template",
    category="transformation",
    description=(
        "Injects system prompts and renders named, versioned templates with variables "
        "taken from headers, JWT claims or the client."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=PromptTemplateSettings,
    mutates=frozenset({"request_body"}),
)

# --------------------------------------------------------------------------- prompt_compression


class PromptCompressionSettings(PluginSettings):
    compress_json: bool = True
    normalize_whitespace: bool = True
    strip_ansi: bool = True
    max_consecutive_blank_lines: int = Field(1, ge=1, le=1000)
    min_length: NonNegativeInt = Field(0, description="Skip messages shorter than this (bytes).")
    max_body_bytes: NonNegativeInt = Field(
        1024 * 1024, description="Skip bodies larger than this; 0 disables the cap."
    )
    target_roles: list[NonBlankStr] = Field(
        default_factory=list, description="Roles to compress; empty means all."
    )

    @model_validator(mode="after")
    def _one_transform(self) -> PromptCompressionSettings:
        if not (self.compress_json or self.normalize_whitespace or self.strip_ansi):
            raise SettingsError(
                "compress_json",
                "at least one of compress_json, normalize_whitespace or strip_ansi must be true",
            )
        return self


PROMPT_COMPRESSION = PluginSpec(
    id="prompt_compression",
    name="Prompt compression",
    category="transformation",
    description=(
        "Losslessly shrinks prompts: minifies JSON, normalizes whitespace and strips ANSI "
        "escapes, keeping output deterministic for provider prompt caches."
    ),
    stages=("pre_request",),
    mandatory_stages=(),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=PromptCompressionSettings,
    mutates=frozenset({"request_body"}),
)

# --------------------------------------------------------------------------- tool_injection


class FunctionDefinition(PluginSettings):
    name: NonBlankStr
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON Schema of the arguments.")


class InjectedTool(PluginSettings):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolInjectionSettings(PluginSettings):
    scope: Scope | None = None
    inject_tools: list[InjectedTool] = Field(min_length=1)
    on_conflict: Literal["gateway_wins", "client_wins", "reject"] = "gateway_wins"


TOOL_INJECTION = PluginSpec(
    id="tool_injection",
    name="Tool injection",
    category="transformation",
    description="Adds gateway-defined function tools to every request.",
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce",),
    settings_model=ToolInjectionSettings,
    mutates=frozenset({"request_body"}),
)

# --------------------------------------------------------------------------- regex_replace


class RegexRule(PluginSettings):
    pattern: NonBlankStr
    replacement: str = ""
    case_insensitive: bool = False
    multiline: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> RegexRule:
        flags = (re.IGNORECASE if self.case_insensitive else 0) | (
            re.MULTILINE if self.multiline else 0
        )
        try:
            re.compile(self.pattern, flags)
        except re.error as exc:
            raise SettingsError("pattern", f"invalid regular expression: {exc}") from None
        return self


class RegexReplaceSettings(PluginSettings):
    target: Literal["request", "response"]
    rules: list[RegexRule] = Field(min_length=1)


def _regex_replace_stages(settings: PluginSettings) -> tuple[Stage, ...]:
    assert isinstance(settings, RegexReplaceSettings)
    return ("pre_request",) if settings.target == "request" else ("pre_response",)


REGEX_REPLACE = PluginSpec(
    id="regex_replace",
    name="Regex replace",
    category="transformation",
    description="Rewrites request or response text with regular-expression rules (masking).",
    stages=("pre_request", "pre_response"),
    mandatory_stages=(),
    default_stages=("pre_request",),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=RegexReplaceSettings,
    mutates=frozenset({"request_body", "response_body"}),
    stages_for_settings=_regex_replace_stages,
)
