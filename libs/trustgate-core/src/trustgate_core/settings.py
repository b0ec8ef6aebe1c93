"""Settings from environment variables, named as in the Go TrustGate's `.env`."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trustgate_core.durations import parse_duration

DEV_SECRET_KEY = "trustgate-dev-secret-key-change-me-0123456789"
#: Where a plane listens unless told otherwise: this host only. Containers say 0.0.0.0.
DEFAULT_HOST = "127.0.0.1"


class CoreSettings(BaseSettings):
    """What every service reads. Services subclass it with their own fields."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    app_env: str = Field("dev", alias="APP_ENV")
    server_secret_key: str = Field(DEV_SECRET_KEY, alias="SERVER_SECRET_KEY")
    secrets_key: str | None = Field(None, alias="TRUSTGATE_SECRETS_KEY")
    nats_url: str = Field("nats://127.0.0.1:4222", alias="NATS_URL")
    # copies of each stream in a JetStream cluster (3 in production); unset keeps what the
    # streams have (one for a stream this plane creates)
    stream_replicas: int | None = Field(None, alias="NATS_STREAM_REPLICAS", ge=1, le=5)
    gateway_base_domain: str = Field("llm.neuraltrust.ai", alias="GATEWAY_BASE_DOMAIN")
    mcp_base_domain: str = Field("mcp.neuraltrust.ai", alias="MCP_BASE_DOMAIN")
    requests_max_age_seconds: float = Field(24 * 3600, alias="REQUESTS_STREAM_MAX_AGE")
    requests_max_bytes: int = Field(1 << 30, alias="REQUESTS_STREAM_MAX_BYTES")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # What one client may hold of an HTTP server (`trustgate_core.service.connections`).
    # No read waits longer than nginx's 60 s by default.
    max_header_bytes: int = Field(32 * 1024, alias="SERVER_MAX_HEADER_BYTES", ge=1024)
    header_timeout: float = Field(10.0, alias="SERVER_HEADER_TIMEOUT", gt=0)
    body_timeout: float = Field(30.0, alias="SERVER_BODY_TIMEOUT", gt=0)
    idle_timeout: float = Field(60.0, alias="SERVER_IDLE_TIMEOUT", gt=0)
    # None: as many as the open-file limit leaves room for (see `connection_cap`).
    max_connections: int | None = Field(None, alias="SERVER_MAX_CONNECTIONS", gt=0)
    # The operations port (/metrics, /healthz, /readyz) listens here, never on the traffic
    # ports; each plane names its own port.
    metrics_host: str = Field(DEFAULT_HOST, alias="SERVER_METRICS_HOST")

    @field_validator("header_timeout", "body_timeout", "idle_timeout", mode="before")
    @classmethod
    def _server_duration(cls, v: str | float) -> float:
        """A number of seconds (``10``) or a Go-style duration (``500ms``, ``1m``). (Named
        apart from the subclasses' ``_duration``, which would replace it.)"""
        return parse_duration(v, bare="s")

    @field_validator("server_secret_key")
    @classmethod
    def _long_enough(cls, v: str) -> str:
        if len(v.encode()) < 32:
            raise ValueError("SERVER_SECRET_KEY must be at least 32 bytes")
        return v

    @property
    def secrets_material(self) -> str:
        """The key that seals provider credentials: a dedicated one, or the server secret."""
        return self.secrets_key or self.server_secret_key


class DatabaseSettings(BaseSettings):
    """Postgres: `DATABASE_URL`, or the `DB_*` parts of seed 000."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    database_url: str | None = Field(None, alias="DATABASE_URL")
    db_host: str = Field("localhost", alias="DB_HOST")
    db_port: int = Field(5432, alias="DB_PORT")
    db_user: str = Field("trustgate", alias="DB_USER")
    db_password: str = Field("postgres", alias="DB_PASSWORD")
    db_name: str = Field("trustgate", alias="DB_NAME")
    db_ssl_mode: str = Field("disable", alias="DB_SSL_MODE")
    db_min_conns: int = Field(1, alias="DB_MIN_CONNS")
    db_max_conns: int = Field(10, alias="DB_MAX_CONNS")
    db_connect_timeout: float = Field(5.0, alias="DB_CONNECT_TIMEOUT")

    @property
    def dsn(self) -> str:
        """A `postgresql://` DSN (driver-neutral)."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgresql+asyncpg://", "postgres://"):
                if url.startswith(prefix):
                    url = "postgresql://" + url[len(prefix) :]
            return url
        auth = quote(self.db_user, safe="")
        if self.db_password:
            auth += ":" + quote(self.db_password, safe="")
        dsn = f"postgresql://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"
        if self.db_ssl_mode and self.db_ssl_mode != "disable":
            dsn += f"?sslmode={self.db_ssl_mode}"
        return dsn
