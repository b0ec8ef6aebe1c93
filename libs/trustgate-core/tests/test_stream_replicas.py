"""How many copies a stream keeps in a JetStream cluster (``NATS_STREAM_REPLICAS``): set
when given, and kept when not — every plane ensures the streams at every boot, so a
count set by an operator (or by another plane's setting) must survive a plane that sets
none. Against a real three-node JetStream cluster of nats-server processes."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.embedded import find_nats_server, free_port, wait_port
from trustgate_core.events import CONFIG_STREAM, requests_stream
from trustgate_testkit.fixtures import wait_for

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def cluster(where: Path, size: int = 3) -> Iterator[str]:
    """``size`` nats-server processes forming one JetStream cluster; a client URL."""
    clients = [free_port() for _ in range(size)]
    routes = [free_port() for _ in range(size)]
    mesh = ",".join(f"nats://127.0.0.1:{port}" for port in routes)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(size):
            store = where / f"n{i}"
            store.mkdir()
            command = [
                find_nats_server(),
                "-a", "127.0.0.1", "-p", str(clients[i]), "-js", "-sd", str(store),
                "-n", f"n{i}", "--cluster_name", "tg",
                "--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes", mesh,
            ]  # fmt: skip
            log = (where / f"n{i}.log").open("wb")
            procs.append(subprocess.Popen(command, stdout=log, stderr=log))
        for port in clients:
            wait_port("127.0.0.1", port, timeout=20)
        yield f"nats://127.0.0.1:{clients[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


async def test_streams_get_the_replicas_asked_for_and_keep_them_when_none_is_asked(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as url:
        nc = await connect(url, name="replicas")
        js = nc.jetstream()
        streams = [CONFIG_STREAM, requests_stream()]

        async def created() -> bool:  # the cluster has elected its meta leader
            try:
                await ensure_streams(js, streams, replicas=3)
            except Exception:
                return False
            return True

        await wait_for(created, timeout=30, interval=0.2)
        for spec in streams:
            assert (await js.stream_info(spec.name)).config.num_replicas == 3

        await ensure_streams(js, streams)  # a plane without NATS_STREAM_REPLICAS
        for spec in streams:
            assert (await js.stream_info(spec.name)).config.num_replicas == 3

        await ensure_streams(js, [CONFIG_STREAM], replicas=1)
        assert (await js.stream_info(CONFIG_STREAM.name)).config.num_replicas == 1
        await nc.close()
