"""``cors``: origin checks, CORS response headers and preflight answers for browsers."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from trustgate_core.durations import parse_duration
from trustgate_core.plugins.base import (
    NonBlankStr,
    PluginSettings,
    PluginSpec,
    SettingsError,
)

HTTP_METHODS: Final[tuple[str, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class CorsSettings(PluginSettings):
    allowed_origins: list[NonBlankStr] = Field(
        min_length=1, description='Origins such as "https://app.example.com", or ["*"].'
    )
    allowed_methods: list[NonBlankStr] = Field(
        default_factory=lambda: ["GET", "POST", "OPTIONS"], min_length=1
    )
    allowed_headers: list[NonBlankStr] = Field(
        default_factory=list,
        description=(
            "Request headers allowed beyond the gateway's and the SDKs' own (always allowed); "
            '"*" allows any.'
        ),
    )
    expose_headers: list[NonBlankStr] = Field(
        default_factory=list,
        description="Response headers a browser app may read beyond the gateway's own.",
    )
    allow_credentials: bool = False
    max_age: int | None = Field(
        None,
        ge=0,
        description='Preflight cache lifetime in seconds (or a duration like "1h"); 600 if unset.',
    )
    log_violations: bool = False

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"invalid origin {origin!r}: use scheme://host[:port] or *")
        return [origin.rstrip("/") for origin in value]

    @field_validator("allowed_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        methods = [method.upper() for method in value]
        for method in methods:
            if method not in HTTP_METHODS:
                raise ValueError(f"unknown HTTP method {method!r}")
        return methods

    @field_validator("max_age", mode="before")
    @classmethod
    def _max_age_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return int(parse_duration(value, bare=None))
            except ValueError:
                raise ValueError('must be seconds >= 0 or a duration such as "1h"') from None
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise ValueError("must be an integer >= 0")
        return value

    @model_validator(mode="after")
    def _no_credentials_with_wildcard(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allowed_origins:
            raise SettingsError(
                "allow_credentials", 'cannot be true when allowed_origins contains "*"'
            )
        return self


CORS = PluginSpec(
    id="cors",
    name="CORS",
    category="security",
    description=(
        "Cross-origin resource sharing for browser clients: checks the Origin, answers "
        "preflight requests and adds the CORS response headers."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM", "MCP"),
    modes=("enforce", "observe"),
    settings_model=CorsSettings,
)
