"""The telemetry service's settings: the core ones plus its own, from the environment.

Kafka's security (an external, production Kafka): ``KAFKA_SECURITY_PROTOCOL`` is one of
``PLAINTEXT`` (the default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``. SASL takes
``KAFKA_SASL_MECHANISM`` (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``),
``KAFKA_SASL_USERNAME`` and ``KAFKA_SASL_PASSWORD`` (a secret); TLS verifies the brokers
against ``KAFKA_SSL_CAFILE`` (else the system's CAs) and may present a client certificate
(``KAFKA_SSL_CERTFILE``, ``KAFKA_SSL_KEYFILE``, ``KAFKA_SSL_KEY_PASSWORD``). A combination
that would be ignored or cannot connect is refused at start, naming the variables; input
values never appear in the message (``hide_input_in_errors``).
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from trustgate_core.settings import DEFAULT_HOST, CoreSettings
from trustgate_core.telemetry.settings import DEFAULT_KAFKA_TOPIC

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_TLS = {"SSL", "SASL_SSL"}
_SASL = {"SASL_PLAINTEXT", "SASL_SSL"}


class TelemetrySettings(CoreSettings):
    # a refused setting's message never repeats the environment (KAFKA_SASL_PASSWORD, ...)
    model_config = SettingsConfigDict(hide_input_in_errors=True)  # merged with the core's

    host: str = Field(DEFAULT_HOST, alias="SERVER_TELEMETRY_HOST")
    port: int = Field(
        8083, validation_alias=AliasChoices("TELEMETRY_PORT", "SERVER_TELEMETRY_PORT")
    )
    enabled: bool = Field(True, alias="TELEMETRY_ENABLED")
    kafka_brokers: str = Field("localhost:9092", alias="KAFKA_BROKERS")
    kafka_topic: str = Field(DEFAULT_KAFKA_TOPIC, alias="TELEMETRY_KAFKA_TOPIC")
    kafka_timeout: float = Field(10.0, alias="TELEMETRY_KAFKA_TIMEOUT")
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(None, alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="KAFKA_SASL_PASSWORD", repr=False)
    kafka_ssl_cafile: str | None = Field(None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(None, alias="KAFKA_SSL_KEYFILE")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, alias="KAFKA_SSL_KEY_PASSWORD", repr=False
    )
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

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol(cls, v: object) -> object:
        return (v.strip().upper() or "PLAINTEXT") if isinstance(v, str) else v

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism(cls, v: object) -> object:
        return (v.strip().upper() or None) if isinstance(v, str) else v

    @field_validator(
        "kafka_sasl_username",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        return (v.strip() or None) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _kafka_security(self) -> TelemetrySettings:
        protocol = self.kafka_security_protocol
        sasl = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        tls = {
            "KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
            "KAFKA_SSL_KEY_PASSWORD": self.kafka_ssl_key_password,
        }
        if protocol in _SASL:
            missing = [name for name, value in sasl.items() if not value]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        else:
            ignored = [name for name, value in sasl.items() if value]
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} set but KAFKA_SECURITY_PROTOCOL={protocol} does no"
                    " SASL: use SASL_SSL (or SASL_PLAINTEXT)"
                )
        if protocol not in _TLS:
            ignored = [name for name, value in tls.items() if value]
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} set but KAFKA_SECURITY_PROTOCOL={protocol} does no"
                    " TLS: use SSL or SASL_SSL"
                )
            return self
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate)")
        if self.kafka_ssl_key_password and not self.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEY_PASSWORD needs KAFKA_SSL_CERTFILE")
        for name, path in (
            ("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
        ):
            if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                raise ValueError(f"{name}: {path} is not a readable file")
        self.kafka_ssl_context()  # a bad certificate or key is refused now, not at connect
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        return [b for b in self.kafka_brokers.split(",") if b]

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (hostnames checked); None without TLS."""
        if self.kafka_security_protocol not in _TLS:
            return None
        from aiokafka.helpers import create_ssl_context  # imported only when TLS is used

        password = self.kafka_ssl_key_password
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.kafka_ssl_cafile,
                certfile=self.kafka_ssl_certfile,
                keyfile=self.kafka_ssl_keyfile,
                password=password.get_secret_value() if password else None,
            )
        except (OSError, ssl.SSLError) as exc:
            # the reason (no PEM, key mismatch, bad password), never the password
            raise ValueError(
                "KAFKA_SSL_CAFILE/CERTFILE/KEYFILE could not be loaded:"
                f" {type(exc).__name__}: {exc.strerror or exc}"
            ) from None
        return context

    def kafka_client_options(self) -> dict[str, Any]:
        """The aiokafka client arguments for the brokers' security."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in _TLS:
            options["ssl_context"] = self.kafka_ssl_context()
        if self.kafka_security_protocol in _SASL:
            assert self.kafka_sasl_password is not None  # the validator made sure
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options
