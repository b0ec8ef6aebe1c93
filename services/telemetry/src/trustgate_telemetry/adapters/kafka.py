"""Kafka: the default exporter (at-least-once), an `ExportSink`.

The producer uses ``acks="all"`` and idempotence when the broker supports it. Some
Kafka-protocol brokers (tansu) answer ``InitProducerId`` with an error, which aiokafka
raises from ``start()`` (older brokers: from the first send): either way the sink says so
once in the log and goes on with a non-idempotent producer (still ``acks="all"``; the bus
redelivers what was not acknowledged, so duplicates are possible either way and readers
dedupe on ``trace_id``).

A record goes to its own ``topic`` when it names one (a gateway's ``kafka`` exporter
setting), else to the sink's (``TELEMETRY_KAFKA_TOPIC``); one producer serves them all.

``client_options`` carry the brokers' security (TLS context, SASL mechanism and
credentials: ``TelemetrySettings.kafka_client_options``) to the producer; nothing here logs
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from trustgate_telemetry.ports import Record

log = logging.getLogger(__name__)


class KafkaSink:
    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        *,
        timeout: float = 10.0,
        client_id: str = "trustgate-telemetry",
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_options = dict(client_options or {})
        self.topic = topic
        self.timeout = timeout
        self.client_id = client_id
        self.idempotent = True
        self._producer: object | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._producer is not None

    def producer_options(self) -> dict[str, Any]:
        """The AIOKafkaProducer's arguments."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "acks": "all",
            "enable_idempotence": self.idempotent,
            "request_timeout_ms": int(self.timeout * 1000),
            "retry_backoff_ms": 200,
            "linger_ms": 5,
            "metadata_max_age_ms": 30_000,
            **self.client_options,
        }

    def _make(self) -> object:
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(**self.producer_options())

    async def start(self) -> None:
        """Connect (raises when no broker answers; the caller retries)."""
        async with self._lock:
            if self._producer is None:
                try:
                    self._producer = await self._started()
                except Exception as exc:
                    if not (self.idempotent and _idempotence_refused(exc)):
                        raise
                    self._refuse_idempotence()
                    self._producer = await self._started()

    def _refuse_idempotence(self) -> None:
        log.warning(
            "kafka: the broker refused an idempotent producer (InitProducerId); "
            "continuing with acks=all without idempotence"
        )
        self.idempotent = False

    async def _started(self) -> object:
        producer = self._make()
        try:
            await asyncio.wait_for(producer.start(), self.timeout)  # type: ignore[attr-defined]
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()  # type: ignore[attr-defined]
            raise
        return producer

    async def stop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.timeout)  # type: ignore[attr-defined]

    async def send_batch(self, records: Sequence[Record]) -> list[BaseException | None]:
        if self._producer is None:
            await self.start()
        results = await self._send(records)
        if self.idempotent and any(_idempotence_refused(r) for r in results):
            self._refuse_idempotence()
            await self.stop()
            await self.start()
            results = await self._send(records)
        return results

    async def _send(self, records: Sequence[Record]) -> list[BaseException | None]:
        producer = self._producer
        assert producer is not None
        futures: list[asyncio.Future[object] | BaseException] = []
        for key, value, headers, topic in records:
            try:
                fut = await asyncio.wait_for(
                    producer.send(  # type: ignore[attr-defined]
                        topic or self.topic, value, key=key, headers=headers or None
                    ),
                    self.timeout,
                )
                futures.append(fut)
            except Exception as exc:
                futures.append(exc)
        results: list[BaseException | None] = []
        for fut in futures:
            if isinstance(fut, BaseException):
                results.append(fut)
                continue
            try:
                await asyncio.wait_for(fut, self.timeout)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results


def _idempotence_refused(error: BaseException | None) -> bool:
    if error is None:
        return False
    from aiokafka import errors

    return isinstance(
        error,
        errors.UnknownError
        | errors.UnsupportedVersionError
        | errors.ClusterAuthorizationFailedError
        | errors.TransactionalIdAuthorizationFailed,
    )
