"""Building blocks shared by every plugin: the spec, the validated policy, field types.

A plugin is described by a :class:`PluginSpec` (what it is, where it runs, what it
accepts) and a pydantic settings model that encodes its validation rules. Nothing here
performs I/O; the proxy attaches behaviour to a spec later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from trustgate_core.durations import DURATION_HINT, DURATION_PATTERN, parse_duration
from trustgate_core.models.policy import Mode, Stage

#: The traffic a policy or a plugin applies to: LLM calls or MCP tool calls.
Plane = Literal["LLM", "MCP"]
Category = Literal["traffic", "cost", "caching", "security", "transformation"]
Capability = Literal["request_body", "response_body", "metadata"]

#: Canonical stage order; effective stages are always reported in this order.
STAGES: Final[tuple[Stage, ...]] = ("pre_request", "post_request", "pre_response", "post_response")
MODES: Final[tuple[Mode, ...]] = ("enforce", "throttle", "observe")
PLANES: Final[tuple[Plane, ...]] = ("LLM", "MCP")
#: Catalog group order.
CATEGORIES: Final[tuple[Category, ...]] = (
    "traffic",
    "cost",
    "caching",
    "security",
    "transformation",
)


class SettingsError(ValueError):
    """A settings rule failed; ``field`` is the offending path relative to the model."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PluginSettings(BaseModel):
    """Base of every settings model: unknown keys are refused, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """Everything admin needs to validate a policy and the proxy needs to schedule it.

    ``mutates`` names the capabilities the plugin may rewrite; the proxy splits a
    parallel batch when two members mutate the same one.
    """

    id: str
    name: str
    category: Category
    description: str
    stages: tuple[Stage, ...]
    mandatory_stages: tuple[Stage, ...]
    default_stages: tuple[Stage, ...]
    protocols: tuple[Plane, ...]
    modes: tuple[Mode, ...]
    settings_model: type[PluginSettings]
    aliases: tuple[str, ...] = ()
    mutates: frozenset[Capability] = frozenset()
    #: Derives the default stages from validated settings (e.g. regex_replace's target).
    stages_for_settings: Callable[[PluginSettings], tuple[Stage, ...]] | None = field(
        default=None, compare=False
    )
    #: Extra checks that depend on the protocol the policy is used with.
    protocol_check: Callable[[PluginSettings, Plane], None] | None = field(
        default=None, compare=False
    )

    def supports_protocol(self, protocol: str) -> bool:
        return protocol.upper() in self.protocols


@dataclass(frozen=True, slots=True)
class ValidatedPolicy:
    """The outcome of :func:`validate_policy`: what a policy will actually run with."""

    slug: str
    plugin: str
    stages: tuple[Stage, ...]
    mode: Mode
    settings: dict[str, Any]


# --------------------------------------------------------------------------- durations


def require_duration(value: str, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    """Parse ``value`` (a unit is required) and check its bounds; the errors name no field
    (the caller does)."""
    seconds = parse_duration(value, bare=None)
    if seconds < minimum:
        raise ValueError(f"must be at least {_fmt_seconds(minimum)}")
    if maximum is not None and seconds > maximum:
        raise ValueError(f"must be at most {_fmt_seconds(maximum)}")
    return seconds


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- globs


def glob_match(pattern: str, value: str) -> bool:
    """Match with ``*`` as the only wildcard (any run of characters, ``/`` included)."""
    if "*" not in pattern:
        return pattern == value
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


# --------------------------------------------------------------------------- field types


def _positive_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be an integer > 0")
    return value


def _non_negative_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _positive_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError("must be a number > 0")
    return value


def _non_negative_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError("must be a number >= 0")
    return value


def _non_blank(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _duration(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(DURATION_HINT)
    parse_duration(value, bare=None)
    return value.strip()


PositiveInt = Annotated[int, Field(gt=0), BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_non_negative_int)]
PositiveNumber = Annotated[
    int | float,
    BeforeValidator(_positive_number),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
NonNegativeNumber = Annotated[
    int | float,
    BeforeValidator(_non_negative_number),
    WithJsonSchema({"type": "number", "minimum": 0}),
]
NonBlankStr = Annotated[str, Field(min_length=1), BeforeValidator(_non_blank)]
Duration = Annotated[
    str,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
Scope = Literal["consumer", "global"]
OnError = Literal["fail_open", "fail_closed"]
