"""A proxy that starts while NATS is unreachable serves the last config it applied, from a
sealed snapshot on disk, instead of answering 503 to everything until NATS returns.

Each proxy here is a process of its own (``trustgate proxy``), as in production: the first
one follows the real NATS and writes the snapshot; the next ones start with NATS pointed
at a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import requests_stream
from trustgate_core.replica.snapshot import SnapshotFile
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream
from trustgate_testkit.proxy.sdk_clients import gateway_headers
from trustgate_testkit.proxy.tenant import Tenant, new_tenant


@dataclass
class ProxyProcess:
    url: str
    proc: asyncio.subprocess.Process
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


@asynccontextmanager
async def proxy_process(
    nats_url: str, snapshot: Path, logs: Path, **env: str
) -> AsyncIterator[ProxyProcess]:
    """``trustgate proxy`` on a free port; stopped with SIGTERM (a graceful shutdown)."""
    port = free_port()
    stderr = logs / f"proxy-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROXY_"))}
    environ |= {
        "NATS_URL": nats_url,
        "SERVER_SECRET_KEY": DEV_SECRET_KEY,
        "SERVER_PROXY_HOST": "127.0.0.1",
        "SERVER_PROXY_PORT": str(port),
        "SERVER_PROXY_METRICS_PORT": str(free_port()),
        "GATEWAY_BASE_DOMAIN": "gw.test",
        "TELEMETRY_ENABLED": "false",
        "PROXY_CONFIG_SNAPSHOT": str(snapshot),
        **env,
    }
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "trustgate.cli",
            "proxy",
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    running = ProxyProcess(f"http://127.0.0.1:{port}", proc, stderr)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def readyz(http: httpx.AsyncClient, proxy: ProxyProcess) -> httpx.Response | None:
    try:
        return await http.get(f"{proxy.url}/readyz")
    except httpx.TransportError:
        return None


async def until_ready(http: httpx.AsyncClient, proxy: ProxyProcess) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        resp = await readyz(http, proxy)
        return resp.json() if resp is not None and resp.status_code == 200 else None

    try:
        doc: dict[str, Any] = await wait_for(ready, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"the proxy is not ready; its log:\n{proxy.log()}") from exc
    return doc


async def chat(
    http: httpx.AsyncClient, proxy: ProxyProcess, tenant: Tenant, consumer: str = "app"
) -> httpx.Response:
    return await http.post(
        f"{proxy.url}/{tenant.consumers[consumer].slug}/v1/chat/completions",
        json={"model": "mock-1", "messages": [{"role": "user", "content": "Hi"}]},
        headers=gateway_headers(tenant, consumer),
    )


def unreachable_nats() -> str:
    return f"nats://127.0.0.1:{free_port()}"


async def routed(tenant: Tenant, upstream: MockUpstream) -> None:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])


async def test_a_proxy_starting_without_nats_serves_from_the_snapshot_of_the_last_one(
    nats_url: str, tenant: Tenant, upstream: MockUpstream, tmp_path: Path
) -> None:
    snapshot = tmp_path / "state" / "proxy-config.snapshot"
    await routed(tenant, upstream)
    async with httpx.AsyncClient(timeout=10) as http:
        async with proxy_process(nats_url, snapshot, tmp_path) as first:
            await until_ready(http, first)
            assert (await chat(http, first, tenant)).status_code == 200
            await wait_for(snapshot.exists, timeout=30, message="no snapshot written")

        async with proxy_process(unreachable_nats(), snapshot, tmp_path) as second:
            doc = await until_ready(http, second)
            assert doc["dependencies"] == {"nats": "unavailable", "config": "snapshot"}
            resp = await chat(http, second, tenant)
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"]
            assert "serving the config snapshot" in second.log()

    raw = snapshot.read_bytes()
    for clear in (
        tenant.keys["app"],
        tenant.auths["app"].key_hash or "",
        UPSTREAM_KEY,
        upstream.url,
        tenant.slug,
    ):
        assert clear.encode() not in raw


async def test_a_corrupt_snapshot_is_ignored_and_the_proxy_stays_not_ready(
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "proxy-config.snapshot"
    snapshot.write_bytes(b"tgs1:this-is-not-a-sealed-snapshot")
    async with httpx.AsyncClient(timeout=10) as http:
        async with proxy_process(unreachable_nats(), snapshot, tmp_path) as proxy:
            await wait_for(
                lambda: "corrupt or sealed under another secret key; ignored" in proxy.log(),
                timeout=30,
                message="the corrupt snapshot was not reported",
            )
            resp = await readyz(http, proxy)
            assert resp is not None and resp.status_code == 503
            assert resp.json()["dependencies"]["config"] == "unavailable"
            assert proxy.proc.returncode is None  # still running, waiting for NATS
            assert "Traceback" not in proxy.log()


async def test_a_proxy_serving_the_snapshot_catches_up_when_nats_returns(
    nats_server: NatsServer, upstream: MockUpstream, tmp_path: Path
) -> None:
    snapshot = tmp_path / "proxy-config.snapshot"
    file = SnapshotFile(snapshot, SecretBox(DEV_SECRET_KEY))
    nc = await connect(nats_server.url, name="snapshot-test-admin")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    tenant = await new_tenant(nc)
    await routed(tenant, upstream)
    await nc.close()
    async with httpx.AsyncClient(timeout=10) as http:
        async with proxy_process(nats_server.url, snapshot, tmp_path) as first:
            await until_ready(http, first)
            await wait_for(lambda: file.load() is not None, timeout=30, message="no snapshot")
        taken = file.load()
        assert taken is not None and taken.seq > 0

        await asyncio.to_thread(nats_server.stop)
        async with proxy_process(nats_server.url, snapshot, tmp_path) as proxy:
            doc = await until_ready(http, proxy)
            assert doc["dependencies"]["config"] == "snapshot"
            assert (await chat(http, proxy, tenant)).status_code == 200

            await asyncio.to_thread(nats_server.start)  # NATS is back, with its stream
            tenant.nc = await connect(nats_server.url, name="snapshot-test-admin")
            try:
                await tenant.delete_auth("app")  # revoked while the proxy was on its snapshot
                await tenant.add_consumer("late", ["primary"])
            finally:
                await tenant.nc.close()

            async def caught_up() -> bool:
                resp = await readyz(http, proxy)
                return resp is not None and resp.json()["dependencies"]["config"] == "ok"

            try:
                await wait_for(caught_up, timeout=30)
            except AssertionError as exc:
                raise AssertionError(f"no catch-up; the proxy's log:\n{proxy.log()}") from exc
            assert (await chat(http, proxy, tenant, "late")).status_code == 200
            assert (await chat(http, proxy, tenant)).status_code == 401

            def rewritten() -> bool:
                now = file.load()
                return now is not None and now.seq > taken.seq

            await wait_for(rewritten, timeout=10, message="the snapshot was not written again")
