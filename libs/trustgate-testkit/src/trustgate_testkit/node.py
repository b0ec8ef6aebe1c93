"""``trustgate run`` (the README's first command) in a subprocess, for end-to-end tests:
every plane on free ports, its data under a test's directory, NATS from the test; and the
README quick start's walkthrough through the admin API, as a user types it."""

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

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY

#: what the node must not inherit from the test's environment: it embeds Postgres and
#: writes exported events to its data dir
_NOT_INHERITED = ("DB_", "DATABASE_URL", "KAFKA_BROKERS", "TELEMETRY_SINK_FILE")


@dataclass(frozen=True)
class Walkthrough:
    """The quick start's gateway, consumer and API key, and how to call the proxy."""

    gateway: dict[str, Any]
    consumer: dict[str, Any]
    api_key: str
    headers: dict[str, str]  # X-AG-Gateway-Slug and X-AG-API-Key
    base_url: str  # the consumer's OpenAI base URL on the proxy


@dataclass
class Node:
    admin: str
    proxy: str
    mcp: str
    operations: dict[str, str]  # plane name -> its operations (metrics) URL
    data_dir: Path
    env: dict[str, str]
    http: httpx.AsyncClient

    @property
    def events_file(self) -> Path:
        """Where telemetry writes the exported events (no ``KAFKA_BROKERS``)."""
        return self.data_dir / "telemetry" / "events.jsonl"

    async def token(self) -> str:
        """An admin token, minted as a user does: ``trustgate admin token``."""
        minted = await asyncio.create_subprocess_exec(
            *_trustgate("admin", "token"), env=self.env, stdout=subprocess.PIPE
        )
        return (await minted.communicate())[0].decode().strip()

    async def walkthrough(self, upstream_url: str, **gateway: Any) -> Walkthrough:
        """The README's steps 1-5: a gateway (``gateway`` as its body), an
        ``openai_compatible`` registry on ``upstream_url``, a consumer, an API key."""
        headers = {"Authorization": f"Bearer {await self.token()}"}

        async def post(path: str, body: dict[str, Any] | None = None) -> Any:
            r = await self.http.post(f"{self.admin}{path}", headers=headers, json=body)
            assert r.status_code in (201, 204), r.text
            return r.json() if r.status_code == 201 else None

        gw = await post("/v1/gateways", gateway)
        base = f"/v1/gateways/{gw['id']}"
        registry = await post(
            f"{base}/registries",
            {
                "name": "openai-primary",
                "provider": "openai_compatible",
                "provider_options": {"base_url": upstream_url},
                "auth": {"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
            },
        )
        consumer = await post(
            f"{base}/consumers", {"name": "my-app", "registries": [{"id": registry["id"]}]}
        )
        auth = await post(f"{base}/auths", {"name": "my-app-key", "type": "api_key"})
        await post(f"{base}/consumers/{consumer['id']}/auths/{auth['id']}")
        return Walkthrough(
            gw,
            consumer,
            auth["api_key"],
            {"X-AG-Gateway-Slug": gw["slug"], "X-AG-API-Key": auth["api_key"]},
            f"{self.proxy}/{consumer['slug']}/v1",
        )


def _trustgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "trustgate.cli", *args]


@asynccontextmanager
async def single_node(data_dir: Path, nats_url: str, secret: str) -> AsyncIterator[Node]:
    """``trustgate run --data-dir data_dir`` until every plane answers ``/readyz``; on
    exit, Ctrl-C, and the node must stop cleanly (no traceback)."""
    ports = {name: free_port() for name in ("admin", "proxy", "mcp")}
    operations = {name: free_port() for name in ("admin", "proxy", "mcp")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)} | {
        "NATS_URL": nats_url,
        "SERVER_SECRET_KEY": secret,
        "SERVER_ADMIN_PORT": str(ports["admin"]),
        "SERVER_PROXY_PORT": str(ports["proxy"]),
        "SERVER_MCP_PORT": str(ports["mcp"]),
        "SERVER_ADMIN_METRICS_PORT": str(operations["admin"]),
        "SERVER_PROXY_METRICS_PORT": str(operations["proxy"]),
        "SERVER_MCP_METRICS_PORT": str(operations["mcp"]),
        "SERVER_POLICY_CACHE_PORT": str(free_port()),
        "TELEMETRY_PORT": str(free_port()),
    }
    proc = await asyncio.create_subprocess_exec(
        *_trustgate("run", "--data-dir", str(data_dir)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def up(base: str) -> bool:
                try:
                    return (await http.get(f"{base}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            for name, timeout in (("admin", 90), ("proxy", 30), ("mcp", 30)):

                async def ready(base: str = url[name]) -> bool:
                    return await up(base)

                await wait_for(ready, timeout=timeout, message=f"{name} not ready")
            yield Node(
                url["admin"],
                url["proxy"],
                url["mcp"],
                {name: f"http://127.0.0.1:{port}" for name, port in operations.items()},
                data_dir,
                env,
                http,
            )
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode in (0, 130), err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-3000:]
