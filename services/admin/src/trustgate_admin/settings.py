from __future__ import annotations

from pydantic import Field

from trustgate_core.settings import DEFAULT_HOST, CoreSettings, DatabaseSettings


class AdminSettings(CoreSettings, DatabaseSettings):
    host: str = Field(DEFAULT_HOST, alias="SERVER_HOST")
    port: int = Field(8080, alias="SERVER_ADMIN_PORT")
    metrics_port: int = Field(9080, alias="SERVER_ADMIN_METRICS_PORT")
    outbox_poll_interval: float = Field(2.0, alias="OUTBOX_POLL_INTERVAL")
    outbox_batch_size: int = Field(200, alias="OUTBOX_BATCH_SIZE")
    publish_timeout: float = Field(5.0, alias="OUTBOX_PUBLISH_TIMEOUT")
    docs_enabled: bool = Field(True, alias="ADMIN_DOCS_ENABLED")
    platform_claim_required: bool = Field(False, alias="ADMIN_PLATFORM_CLAIM_REQUIRED")
