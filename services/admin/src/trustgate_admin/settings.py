from __future__ import annotations

from pydantic import Field, field_validator

from trustgate_core.durations import parse_duration
from trustgate_core.settings import DEFAULT_HOST, CoreSettings, DatabaseSettings

#: How much longer than the requests stream keeps an event its trace id is remembered at
#: least (clock skew between NATS and Postgres, the ledger's pruning cadence).
LEDGER_DEDUPE_MARGIN = 3600.0


class AdminSettings(CoreSettings, DatabaseSettings):
    host: str = Field(DEFAULT_HOST, alias="SERVER_HOST")
    port: int = Field(8080, alias="SERVER_ADMIN_PORT")
    metrics_port: int = Field(9080, alias="SERVER_ADMIN_METRICS_PORT")
    outbox_poll_interval: float = Field(2.0, alias="OUTBOX_POLL_INTERVAL")
    outbox_batch_size: int = Field(200, alias="OUTBOX_BATCH_SIZE")
    publish_timeout: float = Field(5.0, alias="OUTBOX_PUBLISH_TIMEOUT")
    docs_enabled: bool = Field(True, alias="ADMIN_DOCS_ENABLED")
    # A token without tenant_id is a platform token only with platform_admin: true
    # (docs/admin-access.md); false restores the old "no tenant means platform".
    platform_claim_required: bool = Field(True, alias="ADMIN_PLATFORM_CLAIM_REQUIRED")
    jwks_url: str | None = Field(None, alias="ADMIN_JWKS_URL")
    jwks_cache_ttl: float = Field(300.0, alias="ADMIN_JWKS_CACHE_TTL", gt=0)
    jwks_min_refresh: float = Field(30.0, alias="ADMIN_JWKS_MIN_REFRESH", ge=0)
    m2m_issuer: str | None = Field(None, alias="ADMIN_M2M_ISSUER")
    m2m_audience: str = Field("trustgate-admin", alias="ADMIN_M2M_AUDIENCE")
    max_token_ttl: float = Field(24 * 3600.0, alias="ADMIN_M2M_MAX_TOKEN_TTL", gt=0)
    # -- governance (docs/governance.md): all of it runs off the request path -----------
    # the usage ledger: a durable consumer of the request events, rolled up per hour
    ledger_enabled: bool = Field(True, alias="LEDGER_ENABLED")
    ledger_durable: str = Field("admin-ledger", alias="LEDGER_DURABLE")
    ledger_batch_size: int = Field(500, alias="LEDGER_BATCH_SIZE", gt=0, le=10_000)
    ledger_fetch_wait: float = Field(1.0, alias="LEDGER_FETCH_WAIT", gt=0)
    ledger_ack_wait: float = Field(60.0, alias="LEDGER_ACK_WAIT", gt=0)
    # how long a counted trace id is remembered: at least REQUESTS_STREAM_MAX_AGE plus
    # LEDGER_DEDUPE_MARGIN, or the admin refuses to start (`dedupe_retention_problem`);
    # twice the stream's default age by default (docs/governance-usage.md: the table's size)
    ledger_dedupe_retention: float = Field(48 * 3600.0, alias="LEDGER_DEDUPE_RETENTION", gt=0)
    # budget alerts: rules evaluated after each ledger batch and at this interval
    alert_eval_interval: float = Field(60.0, alias="ALERT_EVAL_INTERVAL", gt=0)
    alert_delivery_timeout: float = Field(10.0, alias="ALERT_DELIVERY_TIMEOUT", gt=0)
    alert_retry_max_backoff: float = Field(600.0, alias="ALERT_RETRY_MAX_BACKOFF", gt=0)
    alert_delivery_max_age: float = Field(24 * 3600.0, alias="ALERT_DELIVERY_MAX_AGE", gt=0)
    # alert receivers on loopback or private addresses (link-local and cloud metadata ones
    # are always refused); false in production unless a receiver is on the private network
    alert_webhook_allow_private: bool = Field(True, alias="ALERT_WEBHOOK_ALLOW_PRIVATE")
    # the audit chain's head, published on the bus at this interval when it moved
    audit_head_interval: float = Field(60.0, alias="AUDIT_HEAD_INTERVAL", gt=0)

    @field_validator(
        "jwks_cache_ttl",
        "jwks_min_refresh",
        "max_token_ttl",
        "ledger_fetch_wait",
        "ledger_ack_wait",
        "ledger_dedupe_retention",
        "alert_eval_interval",
        "alert_delivery_timeout",
        "alert_retry_max_backoff",
        "alert_delivery_max_age",
        "audit_head_interval",
        mode="before",
    )
    @classmethod
    def _admin_duration(cls, v: str | float) -> float:
        """Seconds (``3600``) or a Go-style duration (``24h``)."""
        return parse_duration(v, bare="s")

    def dedupe_retention_problem(self) -> str | None:
        """Why the usage ledger could count a redelivered event twice with these settings
        (None: it cannot). The stream may redeliver an event until ``REQUESTS_STREAM_MAX_AGE``
        after it was published, so its trace id must be remembered at least that long, plus
        a margin for the clocks of NATS and Postgres and the pruning cadence. (Checked at
        the admin's start, not here: a settings error would print every input, secrets too.)"""
        if not self.ledger_enabled:
            return None
        age = self.requests_max_age_seconds
        if age <= 0:
            return (
                "REQUESTS_STREAM_MAX_AGE is unlimited (0): the usage ledger cannot remember "
                "counted events for ever; set a finite REQUESTS_STREAM_MAX_AGE, or "
                "LEDGER_ENABLED=false"
            )
        if self.ledger_dedupe_retention < age + LEDGER_DEDUPE_MARGIN:
            return (
                f"LEDGER_DEDUPE_RETENTION ({self.ledger_dedupe_retention:g}s) must be at least "
                f"REQUESTS_STREAM_MAX_AGE ({age:g}s) plus {LEDGER_DEDUPE_MARGIN:g}s: a request "
                "event redelivered after its trace id was forgotten would be counted twice"
            )
        return None
