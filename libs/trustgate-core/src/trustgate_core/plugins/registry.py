"""The plugin registry: lookup by id or alias, policy validation and the policies catalog."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from trustgate_core.errors import ValidationFailed
from trustgate_core.models.policy import Mode, Stage
from trustgate_core.plugins.base import (
    CATEGORIES,
    MODES,
    PLANES,
    STAGES,
    Plane,
    PluginSettings,
    PluginSpec,
    SettingsError,
    ValidatedPolicy,
)
from trustgate_core.plugins.cache import SEMANTIC_CACHE
from trustgate_core.plugins.cors import CORS
from trustgate_core.plugins.guards import (
    AZURE_CONTENT_SAFETY,
    BEDROCK_GUARDRAIL,
    MODEL_ALLOWLIST,
    OPENAI_MODERATION,
    TOOL_ALLOWLIST,
    TRUSTGUARD,
)
from trustgate_core.plugins.pii import PII
from trustgate_core.plugins.ratelimit import PER_TOOL_RATE_LIMITER, RATE_LIMITER
from trustgate_core.plugins.size import REQUEST_SIZE_LIMITER
from trustgate_core.plugins.tokens import TOKEN_RATE_LIMITER
from trustgate_core.plugins.transform import (
    PROMPT_COMPRESSION,
    PROMPT_TEMPLATE,
    REGEX_REPLACE,
    TOOL_INJECTION,
)

#: Every plugin, in catalog order within its group.
PLUGINS: Final[tuple[PluginSpec, ...]] = (
    RATE_LIMITER,
    PER_TOOL_RATE_LIMITER,
    REQUEST_SIZE_LIMITER,
    TOKEN_RATE_LIMITER,
    SEMANTIC_CACHE,
    MODEL_ALLOWLIST,
    TOOL_ALLOWLIST,
    CORS,
    TRUSTGUARD,
    OPENAI_MODERATION,
    AZURE_CONTENT_SAFETY,
    BEDROCK_GUARDRAIL,
    PII,
    PROMPT_TEMPLATE,
    PROMPT_COMPRESSION,
    TOOL_INJECTION,
    REGEX_REPLACE,
)

_BY_SLUG: Final[dict[str, PluginSpec]] = {
    slug: spec for spec in PLUGINS for slug in (spec.id, *spec.aliases)
}


def resolve_plugin(slug: str) -> PluginSpec | None:
    """The plugin a policy slug names (its id or one of its aliases), or ``None``."""
    return _BY_SLUG.get(slug)


def validate_policy(
    slug: str,
    stages: list[str] | None,
    mode: str | None,
    settings: dict[str, Any] | None,
    protocol: str = "LLM",
) -> ValidatedPolicy:
    """Check a policy against its plugin and return what it will run with.

    Raises :class:`ValidationFailed` whose message names the offending field
    (``slug``, ``stages``, ``mode``, ``protocol`` or ``settings.<path>``).
    """
    spec = resolve_plugin(slug)
    if spec is None:
        raise ValidationFailed(f"slug: unknown plugin {slug!r}")
    wire_protocol = _check_protocol(spec, protocol)
    effective_mode = _check_mode(spec, mode)
    selected = _check_stages(spec, stages)
    model = _check_settings(spec, settings)
    if spec.protocol_check is not None:
        try:
            spec.protocol_check(model, wire_protocol)
        except SettingsError as exc:
            raise ValidationFailed(f"settings.{exc.field}: {exc}") from None
    effective_stages = _effective_stages(spec, selected, model)
    return ValidatedPolicy(
        slug=slug,
        plugin=spec.id,
        stages=effective_stages,
        mode=effective_mode,
        settings=model.model_dump(mode="json", exclude_none=True),
    )


def policies_catalog() -> dict[str, Any]:
    """``{"groups": [{"type": <category>, "items": [entry, ...]}, ...]}`` (a fresh copy)."""
    return copy.deepcopy(_catalog())


# --------------------------------------------------------------------------- internals


def _check_protocol(spec: PluginSpec, protocol: str) -> Plane:
    wire = protocol.upper()
    if wire not in PLANES:
        raise ValidationFailed(f"protocol: must be one of {', '.join(PLANES)}")
    if wire not in spec.protocols:
        raise ValidationFailed(
            f"slug: plugin {spec.id!r} does not support {wire} consumers "
            f"(supported: {', '.join(spec.protocols)})"
        )
    return wire


def _check_mode(spec: PluginSpec, mode: str | None) -> Mode:
    if mode is None or mode == "":
        return "enforce"
    if mode not in MODES:
        raise ValidationFailed(f"mode: must be one of {', '.join(MODES)}")
    if mode not in spec.modes:
        raise ValidationFailed(
            f"mode: plugin {spec.id!r} does not support mode {mode!r} "
            f"(allowed: {', '.join(spec.modes)})"
        )
    return mode


def _check_settings(spec: PluginSpec, settings: dict[str, Any] | None) -> PluginSettings:
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise ValidationFailed("settings: must be an object")
    try:
        return spec.settings_model.model_validate(dict(settings))
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc.errors(include_url=False))) from None


def _check_stages(spec: PluginSpec, selected: list[str] | None) -> set[Stage]:
    if selected is not None and not isinstance(selected, list | tuple):
        raise ValidationFailed("stages: must be a list")
    chosen: set[Stage] = set()
    for stage in selected or ():
        if stage not in STAGES:
            raise ValidationFailed(f"stages: unknown stage {stage!r} (stages: {', '.join(STAGES)})")
        if stage not in spec.stages:
            raise ValidationFailed(
                f"stages: plugin {spec.id!r} does not support stage {stage!r} "
                f"(supported: {', '.join(spec.stages)})"
            )
        chosen.add(stage)
    return chosen


def _effective_stages(
    spec: PluginSpec, selected: set[Stage], settings: PluginSettings
) -> tuple[Stage, ...]:
    chosen = set(selected)
    if not chosen:
        defaults = (
            spec.stages_for_settings(settings)
            if spec.stages_for_settings is not None
            else spec.default_stages
        )
        chosen.update(defaults)
    chosen.update(spec.mandatory_stages)
    effective = tuple(stage for stage in STAGES if stage in chosen)
    if not effective:
        raise ValidationFailed(f"stages: plugin {spec.id!r} would run at no stage")
    return effective


def _describe(errors: Iterable[ErrorDetails]) -> str:
    return "; ".join(_describe_one(error) for error in errors)


def _describe_one(error: ErrorDetails) -> str:
    path = _path(error["loc"])
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, SettingsError):
        path = _join(path, cause.field)
        return f"settings{_dot(path)}: {cause}"
    return f"settings{_dot(path)}: {_message(error)}"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic marks an invalid mapping key this way
            continue
        else:
            out = _join(out, part)
    return out


def _join(path: str, name: str) -> str:
    if not path:
        return name
    return path + name if name.startswith("[") else f"{path}.{name}"


def _dot(path: str) -> str:
    return f".{path}" if path else ""


_MESSAGES: Final[dict[str, str]] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_short": "must not be empty",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(options)}"
    if kind == "enum":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    bounds = {
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "less_than_equal": ("<=", "le"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        bound = ctx.get(key)
        return (
            f"must be {op} {bound:g}" if isinstance(bound, int | float) else f"must be {op} {bound}"
        )
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return str(error["msg"])


def _catalog_entry(spec: PluginSpec) -> dict[str, Any]:
    return {
        "slug": spec.id,
        "name": spec.name,
        "category": spec.category,
        "description": spec.description,
        "stages": list(spec.stages),
        "mandatory_stages": list(spec.mandatory_stages),
        "default_stages": list(spec.default_stages),
        "protocols": list(spec.protocols),
        "modes": list(spec.modes),
        "aliases": list(spec.aliases),
        "settings_schema": spec.settings_model.model_json_schema(),
    }


@functools.cache
def _catalog() -> dict[str, Any]:
    return {
        "groups": [
            {
                "type": category,
                "items": [_catalog_entry(spec) for spec in PLUGINS if spec.category == category],
            }
            for category in CATEGORIES
            if any(spec.category == category for spec in PLUGINS)
        ]
    }
