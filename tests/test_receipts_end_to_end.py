"""Receipts end to end, as a user runs them: ``trustgate run`` (admin, proxy, telemetry
writing exported events to a file), a gateway with receipts on, a call through the proxy;
``trustgate receipts verify`` passes the exported file against the admin's public keys,
and fails naming the line once a token count in it is edited."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, serve_mock

pytestmark = pytest.mark.slow

SECRET = "receipts-end-to-end-secret-key-0123456789ab"


async def verify(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trustgate.cli",
        "receipts",
        "verify",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def signed_lines(events: Path, gateway_id: str) -> list[dict[str, Any]]:
    if not events.is_file():
        return []
    docs = [json.loads(line) for line in events.read_text("utf-8").splitlines() if line]
    return [d for d in docs if d["gateway_id"] == gateway_id and d.get("receipt")]


async def test_exported_receipts_verify_against_the_admin_and_an_edited_count_fails(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    admin_port, proxy_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "KAFKA_BROKERS", "TELEMETRY_SINK_FILE"))
    } | {
        "NATS_URL": nats_server.url,
        "SERVER_SECRET_KEY": SECRET,
        "SERVER_ADMIN_PORT": str(admin_port),
        "SERVER_PROXY_PORT": str(proxy_port),
        "SERVER_ADMIN_METRICS_PORT": str(free_port()),
        "SERVER_PROXY_METRICS_PORT": str(free_port()),
        "SERVER_MCP_PORT": str(free_port()),
        "SERVER_MCP_METRICS_PORT": str(free_port()),
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

            async def post(path: str, body: dict[str, Any]) -> Any:
                r = await http.post(f"{admin}{path}", headers=h, json=body)
                assert r.status_code in (201, 204), r.text
                return r.json() if r.status_code == 201 else None

            gw = await post("/v1/gateways", {"slug": "receipts", "governance": {"receipts": True}})
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
            auth = await post(f"/v1/gateways/{gw['id']}/auths", {"name": "key", "type": "api_key"})
            await post(f"/v1/gateways/{gw['id']}/consumers/{con['id']}/auths/{auth['id']}", {})
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
            headers = {"X-AG-Gateway-Slug": gw["slug"], "X-AG-API-Key": auth["api_key"]}
            url = f"{proxy}/{con['slug']}/v1/chat/completions"

            async def answered() -> bool:
                r = await http.post(url, json=body, headers=headers)
                return r.status_code == 200

            await wait_for(answered, timeout=10, message="the call through the proxy failed")
            assert (await http.post(url, json=body, headers=headers)).status_code == 200

            events = tmp_path / "data" / "telemetry" / "events.jsonl"
            await wait_for(
                lambda: len(signed_lines(events, gw["id"])) >= 2,
                timeout=30,
                message="no signed events exported",
            )
            jwks = f"{admin}/.well-known/trustgate/receipts/{gw['id']}/jwks.json"

            code, out = await verify(str(events), "--jwks", jwks)
            assert code == 0, out
            assert "failed: 0" in out
            code, out = await verify(str(events), "--admin-url", admin, "--json")
            assert code == 0 and json.loads(out)["verified"] >= 2, out

            lines = events.read_text("utf-8").splitlines()
            number = next(
                i
                for i, line in enumerate(lines, start=1)
                if line and json.loads(line).get("receipt")
            )
            edited = json.loads(lines[number - 1])
            edited["usage"]["completion_tokens"] += 1000
            lines[number - 1] = json.dumps(edited)
            events.write_text("\n".join(lines) + "\n", "utf-8")
            code, out = await verify(str(events), "--jwks", jwks)
            assert code == 1, out
            assert f"line {number} " in out and "usage.completion_tokens" in out
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
