"""The proxy's settings: the core ones plus its own, from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from trustgate_core.access.listener import TrafficTls
from trustgate_core.access.mtls import ClientCertificates
from trustgate_core.counters import RedisSettings
from trustgate_core.durations import parse_duration
from trustgate_core.replica.snapshot import state_path
from trustgate_core.serving import ListenerTls
from trustgate_core.settings import DEFAULT_HOST, CoreSettings


class ProxySettings(CoreSettings, RedisSettings):
    """``REDIS_*`` (``RedisSettings``): where limit counters are shared with the other
    replicas; none → kept in this process."""

    host: str = Field(DEFAULT_HOST, alias="SERVER_PROXY_HOST")
    port: int = Field(8081, alias="SERVER_PROXY_PORT")
    metrics_port: int = Field(9081, alias="SERVER_PROXY_METRICS_PORT")
    discovery_mode: Literal["header", "subdomain"] = Field("header", alias="GATEWAY_DISCOVERY_MODE")
    max_body_bytes: int = Field(8 << 20, alias="PROXY_MAX_BODY_BYTES")
    provider_request_timeout: float = Field(60.0, alias="PROVIDER_REQUEST_TIMEOUT")
    provider_connect_timeout: float = Field(10.0, alias="PROVIDER_CONNECT_TIMEOUT")
    # what the first byte of an answer may take (default: the request timeout)
    provider_response_header_timeout: float | None = Field(
        None, alias="PROVIDER_RESPONSE_HEADER_TIMEOUT"
    )
    # attempts on one route after a retryable failure, before the next route
    provider_max_retries: int = Field(2, alias="PROVIDER_MAX_RETRIES", ge=0, le=10)
    # proxies whose X-Forwarded-For is believed (ip-hash), as CIDRs, comma-separated
    trusted_proxies: str = Field("", alias="PROXY_TRUSTED_PROXIES")
    # how long the gateway keeps a Responses answer for previous_response_id
    session_store_ttl: float = Field(3600.0, alias="SESSION_STORE_TTL")
    # seconds the semantic cache's lookup may take (the embedding call aside) before the
    # call is served uncached
    semantic_cache_lookup_timeout: float = Field(0.05, gt=0, alias="SEMANTIC_CACHE_LOOKUP_TIMEOUT")
    # the traffic port speaks TLS with this certificate chain and key (PEM files); with a
    # client CA bundle it asks for client certificates (mtls consumers)
    tls_cert: str = Field("", alias="SERVER_PROXY_TLS_CERT")
    tls_key: str = Field("", alias="SERVER_PROXY_TLS_KEY")
    tls_client_ca: str = Field("", alias="SERVER_PROXY_TLS_CLIENT_CA")
    # peers whose X-Forwarded-Client-Cert is believed (Envoy in front), as CIDRs,
    # comma-separated; from any other peer the header is ignored
    trust_xfcc_from: str = Field("", alias="TRUST_XFCC_FROM")
    upstream_pool_size: int = Field(1024, alias="PROXY_UPSTREAM_POOL_SIZE")
    upstream_keepalive: float = Field(60.0, alias="PROXY_UPSTREAM_KEEPALIVE")
    event_queue_size: int = Field(10_000, alias="METRICS_QUEUE_SIZE")
    telemetry_enabled: bool = Field(True, alias="TELEMETRY_ENABLED")
    # where the last applied config is kept, sealed, to serve from while NATS is down at
    # start; an empty value keeps none
    config_snapshot: str = Field(
        default_factory=lambda: state_path("proxy-config.snapshot"),
        alias="PROXY_CONFIG_SNAPSHOT",
    )

    @model_validator(mode="after")
    def _tls_and_trust(self) -> ProxySettings:
        self.traffic_tls().check()
        return self

    def traffic_tls(self) -> TrafficTls:
        """``SERVER_PROXY_TLS_*`` and ``TRUST_XFCC_FROM``."""
        return TrafficTls(
            "SERVER_PROXY_TLS",
            self.tls_cert,
            self.tls_key,
            self.tls_client_ca,
            self.trust_xfcc_from,
        )

    def listener_tls(self) -> ListenerTls | None:
        """The traffic port's TLS, if ``SERVER_PROXY_TLS_CERT`` is set."""
        return self.traffic_tls().listener()

    def client_certificates(self) -> ClientCertificates:
        """Which client certificate a request presents (the traffic app's
        ``certificates``)."""
        return self.traffic_tls().client_certificates()

    @field_validator(
        "provider_request_timeout",
        "provider_connect_timeout",
        "provider_response_header_timeout",
        "upstream_keepalive",
        "session_store_ttl",
        "semantic_cache_lookup_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, v: str | float | None) -> float | None:
        """A number of seconds (``120``) or a Go-style duration (``250ms``, ``2m``)."""
        if v is None or v == "":
            return None
        return parse_duration(v, bare="s")
