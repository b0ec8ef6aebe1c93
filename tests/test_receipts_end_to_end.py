"""Receipts end to end, as a user runs them: ``trustgate run`` (admin, proxy, telemetry
writing exported events to a file), a gateway with receipts on, a call through the proxy;
``trustgate receipts verify`` passes the exported file against the admin's public keys,
and fails naming the line once a token count in it is edited."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.node import single_node
from trustgate_testkit.proxy.mock_upstream import serve_mock

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
    async with (
        single_node(tmp_path / "data", nats_server.url, SECRET) as node,
        serve_mock() as upstream,
    ):
        walk = await node.walkthrough(upstream.url, slug="receipts", governance={"receipts": True})
        gw = walk.gateway
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
        url = f"{walk.base_url}/chat/completions"

        async def answered() -> bool:
            r = await node.http.post(url, json=body, headers=walk.headers)
            return r.status_code == 200

        await wait_for(answered, timeout=10, message="the call through the proxy failed")
        assert (await node.http.post(url, json=body, headers=walk.headers)).status_code == 200

        events = node.events_file
        await wait_for(
            lambda: len(signed_lines(events, gw["id"])) >= 2,
            timeout=30,
            message="no signed events exported",
        )
        jwks = f"{node.admin}/.well-known/trustgate/receipts/{gw['id']}/jwks.json"

        code, out = await verify(str(events), "--jwks", jwks)
        assert code == 0, out
        assert "failed: 0" in out
        code, out = await verify(str(events), "--admin-url", node.admin, "--json")
        assert code == 0 and json.loads(out)["verified"] >= 2, out

        lines = events.read_text("utf-8").splitlines()
        number = next(  # an answered call's (a call refused before has no usage)
            i
            for i, line in enumerate(lines, start=1)
            if line and json.loads(line).get("receipt") and json.loads(line).get("usage")
        )
        edited = json.loads(lines[number - 1])
        edited["usage"]["completion_tokens"] += 1000
        lines[number - 1] = json.dumps(edited)
        events.write_text("\n".join(lines) + "\n", "utf-8")
        code, out = await verify(str(events), "--jwks", jwks)
        assert code == 1, out
        assert f"line {number} " in out and "usage.completion_tokens" in out
