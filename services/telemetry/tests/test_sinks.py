"""The sinks on their own: the Kafka sink against the shared broker (tansu refuses an
idempotent producer at start: the sink still starts, says so once, and delivers), and the
JSON-lines file sink that `trustgate run` uses when there is no Kafka."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from trustgate_telemetry.adapters.file import FileSink
from trustgate_telemetry.adapters.kafka import KafkaSink
from trustgate_telemetry.ports import Record
from trustgate_testkit import wait_for
from trustgate_testkit.telemetry import read_topic


def _records(n: int, topic: str | None = None) -> list[Record]:
    return [
        Record(b"gw", orjson.dumps({"trace_id": uuid.uuid4().hex, "n": i}), [], topic)
        for i in range(n)
    ]


async def _deliver(sink: KafkaSink, records: list[Record]) -> None:
    """Sent again until each one is taken, as the telemetry consumer redelivers what a
    batch failed: a topic the broker has just created can answer NotLeaderForPartition
    at first."""
    pending = records

    async def taken() -> bool:
        nonlocal pending
        results = await sink.send_batch(pending)
        pending = [r for r, error in zip(pending, results, strict=True) if error is not None]
        return not pending

    await wait_for(taken, timeout=20, message="the broker never took the records")


def _values(records: list[Any]) -> list[bytes]:
    return sorted(r.value for r in records)


async def test_the_kafka_sink_starts_even_when_the_broker_refuses_an_idempotent_producer(
    infra: Any, kafka: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = KafkaSink([kafka], topic, timeout=10)
    with caplog.at_level(logging.WARNING, logger="trustgate_telemetry.adapters.kafka"):
        try:
            await sink.start()  # tansu answers InitProducerId with UnknownError here
            assert sink.ready
            records = _records(3)
            async with read_topic(kafka, topic) as seen:
                await _deliver(sink, records)
                await wait_for(lambda: len(seen.records) >= 3, timeout=20)
            assert _values(seen.records) == _values(records)
            await sink.stop()
            await sink.start()  # a restart does not ask for idempotence again
            assert await sink.send_batch(_records(1)) == [None]
        finally:
            await sink.stop()
    refusals = [r for r in caplog.records if "refused an idempotent producer" in r.message]
    if infra.source == "local":  # tansu: the start-time refusal path, logged once
        assert not sink.idempotent
        assert len(refusals) == 1
    else:  # a real Kafka grants idempotence
        assert sink.idempotent and not refusals


async def test_the_kafka_sink_sends_a_record_to_its_own_topic_when_it_names_one(
    kafka: str, topic: str
) -> None:
    other = f"{topic}-own"
    sink = KafkaSink([kafka], topic, timeout=10)
    try:
        default, own = _records(2), _records(2, other)
        async with read_topic(kafka, topic) as on_default, read_topic(kafka, other) as on_own:
            await _deliver(sink, default + own)
            await wait_for(lambda: len(on_default.records) >= 2, timeout=20)
            await wait_for(lambda: len(on_own.records) >= 2, timeout=20)
        assert _values(on_default.records) == _values(default)
        assert _values(on_own.records) == _values(own)
    finally:
        await sink.stop()


async def test_the_file_sink_appends_one_json_line_per_event_and_creates_its_folder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "telemetry" / "events.jsonl"
    sink = FileSink(str(path))
    assert not sink.ready
    first, second = _records(2), _records(1)
    assert await sink.send_batch(first) == [None, None]  # starts itself on first use
    assert sink.ready
    await sink.stop()
    sink = FileSink(str(path))
    await sink.start()
    assert await sink.send_batch(second) == [None]
    await sink.stop()
    assert not sink.ready
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [orjson.loads(line) for line in lines] == [orjson.loads(r.value) for r in first + second]


async def test_the_file_sink_refuses_to_start_on_a_path_it_cannot_write(
    tmp_path: Path,
) -> None:
    sink = FileSink(str(tmp_path))  # a folder: the runtime logs it and retries the start
    with pytest.raises(OSError):
        await sink.start()
    assert not sink.ready
