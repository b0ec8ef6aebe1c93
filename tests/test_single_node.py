"""`trustgate run` (the README's first command) as a user runs it: one process with the
admin, the proxy and the MCP plane, an embedded Postgres; the README's first-request
walkthrough, then a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import AsyncOpenAI

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, serve_mock

pytestmark = pytest.mark.slow

SECRET = "single-node-test-secret-key-0123456789abcdef"


async def test_trustgate_run_serves_the_readme_walkthrough_and_stops_cleanly(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    admin_port, proxy_port = free_port(), free_port()
    admin_ops_port, proxy_ops_port = free_port(), free_port()
    mcp_port, mcp_ops_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "KAFKA_BROKERS", "TELEMETRY_SINK_FILE"))
    } | {
        "NATS_URL": nats_server.url,
        "SERVER_SECRET_KEY": SECRET,
        "SERVER_ADMIN_PORT": str(admin_port),
        "SERVER_PROXY_PORT": str(proxy_port),
        "SERVER_ADMIN_METRICS_PORT": str(admin_ops_port),
        "SERVER_PROXY_METRICS_PORT": str(proxy_ops_port),
        "SERVER_MCP_PORT": str(mcp_port),
        "SERVER_MCP_METRICS_PORT": str(mcp_ops_port),
        "SERVER_POLICY_CACHE_PORT": str(free_port()),
        "TELEMETRY_PORT": str(free_port()),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trustgate.cli",
        "run",
        "--data-dir",
        str(tmp_path / "data"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    admin, proxy = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{proxy_port}"
    try:
        async with httpx.AsyncClient(timeout=5) as http, serve_mock() as upstream:

            async def up(url: str) -> bool:
                try:
                    return (await http.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(lambda: up(f"{admin}/readyz"), timeout=90, message="admin not ready")
            await wait_for(lambda: up(f"{proxy}/readyz"), timeout=30, message="proxy not ready")
            mcp = f"http://127.0.0.1:{mcp_port}"
            await wait_for(lambda: up(f"{mcp}/readyz"), timeout=30, message="mcp not ready")
            planes = ((admin, admin_ops_port), (proxy, proxy_ops_port), (mcp, mcp_ops_port))
            for traffic, ops_port in planes:
                assert (await http.get(f"{traffic}/metrics")).status_code == 404
                scraped = await http.get(f"http://127.0.0.1:{ops_port}/metrics")
                assert scraped.status_code == 200 and "trustgate_" in scraped.text

            minted = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "trustgate.cli",
                "admin",
                "token",
                env=env,
                stdout=subprocess.PIPE,
            )
            token = (await minted.communicate())[0].decode().strip()
            h = {"Authorization": f"Bearer {token}"}

            async def post(path: str, body: dict[str, Any] | None = None) -> Any:
                r = await http.post(f"{admin}{path}", headers=h, json=body)
                assert r.status_code in (201, 204), r.text
                return r.json() if r.status_code == 201 else None

            gw = await post("/v1/gateways", {"name": "My Gateway", "slug": "demo"})
            reg = await post(
                f"/v1/gateways/{gw['id']}/registries",
                {
                    "name": "openai-primary",
                    "provider": "openai_compatible",
                    "provider_options": {"base_url": upstream.url},
                    "auth": {"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
                },
            )
            con = await post(
                f"/v1/gateways/{gw['id']}/consumers",
                {"name": "my-app", "registries": [{"id": reg["id"]}]},
            )
            auth = await post(
                f"/v1/gateways/{gw['id']}/auths", {"name": "my-app-key", "type": "api_key"}
            )
            await post(f"/v1/gateways/{gw['id']}/consumers/{con['id']}/auths/{auth['id']}")

            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
            headers = {"X-AG-Gateway-Slug": gw["slug"], "X-AG-API-Key": auth["api_key"]}

            async def completed() -> bool:
                r = await http.post(
                    f"{proxy}/{con['slug']}/v1/chat/completions", json=body, headers=headers
                )
                return r.status_code == 200 and bool(r.json()["choices"])

            await wait_for(completed, timeout=5, message="the walkthrough's call failed")
            client = AsyncOpenAI(
                base_url=f"{proxy}/{con['slug']}/v1", api_key="unused", default_headers=headers
            )
            raw = await client.chat.completions.with_raw_response.create(**body)
            assert raw.parse().choices[0].message.content

            # no KAFKA_BROKERS: telemetry writes the exported events to the data dir
            events = tmp_path / "data" / "telemetry" / "events.jsonl"
            trace_id = raw.headers["x-ag-trace-id"]

            def exported() -> bool:
                if not events.is_file():
                    return False
                lines = events.read_text(encoding="utf-8").splitlines()
                return any(orjson.loads(line)["trace_id"] == trace_id for line in lines if line)

            await wait_for(exported, timeout=30, message="the call's event not in events.jsonl")
            doc = next(
                d
                for d in map(orjson.loads, events.read_text(encoding="utf-8").splitlines())
                if d["trace_id"] == trace_id
            )
            assert doc["gateway_id"] == gw["id"] and doc["schema_version"] == 1

            # the proxy keeps its sealed config snapshot in the data dir, not the user's home
            snapshot = tmp_path / "data" / "proxy-config.snapshot"
            await wait_for(snapshot.is_file, timeout=10, message="no config snapshot written")
            assert con["slug"].encode() not in snapshot.read_bytes()
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
