"""The MCP plane's settings: the core ones plus its own, from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from trustgate_core.access.listener import TrafficTls
from trustgate_core.access.mtls import ClientCertificates
from trustgate_core.counters import RedisSettings
from trustgate_core.durations import parse_duration
from trustgate_core.serving import ListenerTls
from trustgate_core.settings import DEFAULT_HOST, CoreSettings
from trustgate_mcp.oauth.settings import OAuthSettings


class McpSettings(CoreSettings, RedisSettings, OAuthSettings):
    """``REDIS_*`` (``RedisSettings``): limit counters and upstream-session replacements
    shared with the other replicas; none → kept in this process."""

    host: str = Field(DEFAULT_HOST, alias="SERVER_MCP_HOST")
    port: int = Field(8082, alias="SERVER_MCP_PORT")
    metrics_port: int = Field(9082, alias="SERVER_MCP_METRICS_PORT")
    discovery_mode: Literal["header", "subdomain"] = Field("header", alias="GATEWAY_DISCOVERY_MODE")
    max_body_bytes: int = Field(4 << 20, alias="MCP_MAX_BODY_BYTES", gt=0)
    # how long a session the plane hands out stays valid, seconds
    session_ttl: float = Field(24 * 3600.0, alias="MCP_SESSION_TTL", gt=0)
    # earlier secrets keys (comma-separated) whose sessions are still accepted after a key
    # rotation; new sessions are sealed with the current key only
    session_previous_keys: str = Field("", alias="MCP_SESSION_PREVIOUS_KEYS", repr=False)
    # how long an upstream's tools/resources/prompts lists are kept before they are asked
    # again (a listChanged notification drops them sooner)
    list_ttl: float = Field(300.0, alias="MCP_LIST_TTL", ge=0)
    # the deadline of a server's handshake and of fetching all its lists; past it the
    # server counts as failing (skipped under fail_mode open, -32005 under closed)
    list_timeout: float = Field(5.0, alias="MCP_LIST_TIMEOUT", gt=0)
    # how long a failing server is not asked again (then it is asked in the background)
    list_backoff: float = Field(2.0, alias="MCP_LIST_BACKOFF", gt=0)
    # read each upstream's standalone stream (a GET, per replica and server) for the
    # list_changed notifications that belong to no request
    list_changed_stream: bool = Field(True, alias="MCP_LIST_CHANGED_STREAM")
    upstream_connect_timeout: float = Field(10.0, alias="MCP_UPSTREAM_CONNECT_TIMEOUT", gt=0)
    upstream_timeout: float = Field(60.0, alias="MCP_UPSTREAM_TIMEOUT", gt=0)
    upstream_pool_size: int = Field(512, alias="MCP_UPSTREAM_POOL_SIZE", gt=0)
    event_queue_size: int = Field(10_000, alias="METRICS_QUEUE_SIZE")
    telemetry_enabled: bool = Field(True, alias="TELEMETRY_ENABLED")
    # the traffic port speaks TLS with this certificate chain and key (PEM files); with a
    # client CA bundle it asks for client certificates (consumers with mtls auths)
    tls_cert: str = Field("", alias="SERVER_MCP_TLS_CERT")
    tls_key: str = Field("", alias="SERVER_MCP_TLS_KEY")
    tls_client_ca: str = Field("", alias="SERVER_MCP_TLS_CLIENT_CA")
    # peers whose X-Forwarded-Client-Cert is believed (Envoy in front), as CIDRs,
    # comma-separated; from any other peer the header is ignored
    trust_xfcc_from: str = Field("", alias="TRUST_XFCC_FROM")

    @field_validator(
        "session_ttl",
        "list_ttl",
        "list_timeout",
        "list_backoff",
        "upstream_connect_timeout",
        "upstream_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: str | float) -> float:
        """A number of seconds (``120``) or a Go-style duration (``250ms``, ``2m``)."""
        return parse_duration(value, bare="s")

    @model_validator(mode="after")
    def _tls_and_trust(self) -> McpSettings:
        self.traffic_tls().check()
        return self

    def traffic_tls(self) -> TrafficTls:
        """``SERVER_MCP_TLS_*`` and ``TRUST_XFCC_FROM``."""
        return TrafficTls(
            "SERVER_MCP_TLS", self.tls_cert, self.tls_key, self.tls_client_ca, self.trust_xfcc_from
        )

    def listener_tls(self) -> ListenerTls | None:
        """The traffic port's TLS, if ``SERVER_MCP_TLS_CERT`` is set."""
        return self.traffic_tls().listener()

    def client_certificates(self) -> ClientCertificates:
        """Which client certificate a request presents (the traffic app's
        ``certificates``)."""
        return self.traffic_tls().client_certificates()

    def previous_keys(self) -> list[str]:
        return [k.strip() for k in self.session_previous_keys.split(",") if k.strip()]
