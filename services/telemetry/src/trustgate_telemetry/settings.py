"""The telemetry service's settings: the core ones plus its own, from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

from trustgate_core.settings import DEFAULT_HOST, CoreSettings
from trustgate_core.telemetry.settings import DEFAULT_KAFKA_TOPIC


class TelemetrySettings(CoreSettings):
    host: str = Field(DEFAULT_HOST, alias="SERVER_TELEMETRY_HOST")
    port: int = Field(
        8083, validation_alias=AliasChoices("TELEMETRY_PORT", "SERVER_TELEMETRY_PORT")
    )
    enabled: bool = Field(True, alias="TELEMETRY_ENABLED")
    kafka_brokers: str = Field("localhost:9092", alias="KAFKA_BROKERS")
    kafka_topic: str = Field(DEFAULT_KAFKA_TOPIC, alias="TELEMETRY_KAFKA_TOPIC")
    kafka_timeout: float = Field(10.0, alias="TELEMETRY_KAFKA_TIMEOUT")
    # No Kafka at all (``trustgate run`` without brokers): events go to this JSON-lines
    # file instead ("-" for the log), still acked only after they are written.
    sink_file: str | None = Field(None, alias="TELEMETRY_SINK_FILE")
    durable: str = Field("telemetry", alias="TELEMETRY_DURABLE")
    batch_size: int = Field(256, alias="TELEMETRY_BATCH_SIZE", gt=0)
    fetch_wait: float = Field(1.0, alias="TELEMETRY_FETCH_WAIT", gt=0)
    ack_wait: float = Field(60.0, alias="TELEMETRY_ACK_WAIT", gt=0)
    retry_delay: float = Field(2.0, alias="TELEMETRY_RETRY_DELAY", gt=0)
    otlp_queue_size: int = Field(2048, alias="TELEMETRY_OTLP_QUEUE_SIZE", gt=0)
    otlp_batch_size: int = Field(256, alias="TELEMETRY_OTLP_BATCH_SIZE", gt=0)

    @field_validator("kafka_brokers")
    @classmethod
    def _brokers(cls, v: str) -> str:
        return ",".join(part.strip() for part in v.split(",") if part.strip())

    @property
    def bootstrap_servers(self) -> list[str]:
        return [b for b in self.kafka_brokers.split(",") if b]
