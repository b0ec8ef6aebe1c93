"""The proxy's settings: the core ones plus its own, from the environment."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from trustgate_core.settings import CoreSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration (`250ms`, `60s`, `5m`, `1h`)."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


class ProxySettings(CoreSettings):
    host: str = Field("0.0.0.0", alias="SERVER_PROXY_HOST")
    port: int = Field(8081, alias="SERVER_PROXY_PORT")
    discovery_mode: Literal["header", "subdomain"] = Field("header", alias="GATEWAY_DISCOVERY_MODE")
    max_body_bytes: int = Field(8 << 20, alias="PROXY_MAX_BODY_BYTES")
    provider_request_timeout: float = Field(60.0, alias="PROVIDER_REQUEST_TIMEOUT")
    provider_connect_timeout: float = Field(10.0, alias="PROVIDER_CONNECT_TIMEOUT")
    upstream_pool_size: int = Field(1024, alias="PROXY_UPSTREAM_POOL_SIZE")
    upstream_keepalive: float = Field(60.0, alias="PROXY_UPSTREAM_KEEPALIVE")
    event_queue_size: int = Field(10_000, alias="METRICS_QUEUE_SIZE")
    idle_timeout: float = Field(120.0, alias="SERVER_IDLE_TIMEOUT")
    telemetry_enabled: bool = Field(True, alias="TELEMETRY_ENABLED")

    @field_validator(
        "provider_request_timeout",
        "provider_connect_timeout",
        "upstream_keepalive",
        "idle_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)
