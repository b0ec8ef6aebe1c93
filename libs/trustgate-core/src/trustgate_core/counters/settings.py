"""Where the counters live: Redis from the environment, named as in the Go TrustGate, or
this process when no Redis is configured."""

from __future__ import annotations

import logging
from urllib.parse import quote

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trustgate_core.counters.base import Counters
from trustgate_core.counters.local import LocalCounters
from trustgate_core.counters.redis_store import RedisCounters, redis_location
from trustgate_core.durations import parse_duration

log = logging.getLogger(__name__)

#: The database the Go TrustGate uses when it is given REDIS_HOST.
GO_TRUSTGATE_DB = 3
MAX_TIMEOUT_S = 5.0


class RedisSettings(BaseSettings):
    """`REDIS_URL`, or `REDIS_HOST` and its parts; neither means no Redis."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    redis_url_setting: str | None = Field(None, alias="REDIS_URL", repr=False)
    redis_host: str | None = Field(None, alias="REDIS_HOST")
    redis_port: int = Field(6379, alias="REDIS_PORT", gt=0, lt=65536)
    redis_username: str | None = Field(None, alias="REDIS_USERNAME")
    redis_password: str | None = Field(None, alias="REDIS_PASSWORD", repr=False)
    redis_db: int = Field(GO_TRUSTGATE_DB, alias="REDIS_DB", ge=0)
    redis_tls_enabled: bool = Field(False, alias="REDIS_TLS_ENABLED")
    # Seconds; "50ms" or a bare number of seconds, as the SERVER_* durations.
    redis_timeout: float = Field(0.05, alias="REDIS_TIMEOUT", gt=0, le=MAX_TIMEOUT_S)

    @field_validator("redis_timeout", mode="before")
    @classmethod
    def _redis_duration(cls, v: str | float) -> float:
        return parse_duration(v, bare="s")

    @field_validator("redis_url_setting", "redis_host", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: str | None) -> str | None:
        return v.strip() or None if isinstance(v, str) else v

    @property
    def redis_url(self) -> str | None:
        """The Redis to use: `REDIS_URL` as given, else one built from `REDIS_HOST`."""
        if self.redis_url_setting:
            return self.redis_url_setting
        if not self.redis_host:
            return None
        auth = ""
        if self.redis_password:
            auth = quote(self.redis_username or "", safe="") + ":"
            auth += quote(self.redis_password, safe="") + "@"
        scheme = "rediss" if self.redis_tls_enabled else "redis"
        return f"{scheme}://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"


def counters_from(settings: RedisSettings) -> Counters:
    """`RedisCounters` when Redis is configured, else `LocalCounters` (logged once)."""
    url = settings.redis_url
    if url is None:
        log.info("counters: no REDIS_URL or REDIS_HOST; limits are counted in this process")
        return LocalCounters()
    counters = RedisCounters(url, timeout=settings.redis_timeout)
    log.info(
        "counters: Redis at %s (timeout %.0f ms)",
        redis_location(url),
        settings.redis_timeout * 1000,
    )
    return counters
