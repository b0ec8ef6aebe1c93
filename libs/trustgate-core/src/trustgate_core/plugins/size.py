"""``request_size_limiter``: refuses request bodies above a byte or character limit."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from trustgate_core.plugins.base import PluginSettings, PluginSpec, PositiveInt, PositiveNumber

SIZE_UNIT_BYTES: Final[dict[str, int]] = {
    "bytes": 1,
    "kilobytes": 1024,
    "megabytes": 1024 * 1024,
}


class RequestSizeLimiterSettings(PluginSettings):
    allowed_payload_size: PositiveNumber = Field(10, description="Maximum body size in size_unit.")
    size_unit: Literal["bytes", "kilobytes", "megabytes"] = "megabytes"
    max_chars_per_request: PositiveInt = 100_000
    require_content_length: bool = Field(
        False, description="Refuse requests without Content-Length (411)."
    )

    def limit_bytes(self) -> int:
        return int(self.allowed_payload_size * SIZE_UNIT_BYTES[self.size_unit])


REQUEST_SIZE_LIMITER = PluginSpec(
    id="request_size_limiter",
    name="Request size limiter",
    category="traffic",
    description=(
        "Rejects request bodies larger than a byte or character limit (413), and "
        "optionally requests without Content-Length (411)."
    ),
    stages=("pre_request",),
    mandatory_stages=("pre_request",),
    default_stages=("pre_request",),
    protocols=("LLM", "MCP"),
    modes=("enforce", "observe"),
    settings_model=RequestSizeLimiterSettings,
    aliases=("requestsize",),
)
