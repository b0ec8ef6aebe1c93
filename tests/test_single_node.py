"""`trustgate run` (the README's first command) as a user runs it: one process with the
admin, the proxy and the MCP plane, an embedded Postgres; the README's first-request
walkthrough, then a clean stop."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from openai import AsyncOpenAI

from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.node import single_node
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.sdk_clients import tracked

pytestmark = pytest.mark.slow

SECRET = "single-node-test-secret-key-0123456789abcdef"


async def test_trustgate_run_serves_the_readme_walkthrough_and_stops_cleanly(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    async with (
        single_node(tmp_path / "data", nats_server.url, SECRET) as node,
        serve_mock() as upstream,
    ):
        http = node.http
        for traffic, operations in (
            (node.admin, node.operations["admin"]),
            (node.proxy, node.operations["proxy"]),
            (node.mcp, node.operations["mcp"]),
        ):
            assert (await http.get(f"{traffic}/metrics")).status_code == 404
            scraped = await http.get(f"{operations}/metrics")
            assert scraped.status_code == 200 and "trustgate_" in scraped.text

        walk = await node.walkthrough(upstream.url, name="My Gateway", slug="demo")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}

        async def completed() -> bool:
            r = await http.post(
                f"{walk.base_url}/chat/completions", json=body, headers=walk.headers
            )
            return r.status_code == 200 and bool(r.json()["choices"])

        await wait_for(completed, timeout=5, message="the walkthrough's call failed")
        client = tracked(
            AsyncOpenAI(base_url=walk.base_url, api_key="unused", default_headers=walk.headers)
        )
        raw = await client.chat.completions.with_raw_response.create(**body)
        assert raw.parse().choices[0].message.content

        # no KAFKA_BROKERS: telemetry writes the exported events to the data dir
        events = node.events_file
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
        assert doc["gateway_id"] == walk.gateway["id"] and doc["schema_version"] == 1

        # the admin's usage ledger counted the calls (from the same request events)
        usage_url = f"{node.admin}/v1/gateways/{walk.gateway['id']}/usage"
        admin_headers = {"Authorization": f"Bearer {await node.token()}"}

        async def counted() -> bool:
            r = await http.get(usage_url, headers=admin_headers)
            return r.status_code == 200 and r.json()["totals"]["requests"] >= 2

        await wait_for(counted, timeout=30, message="the usage ledger never counted the calls")

        # the proxy keeps its sealed config snapshot in the data dir, not the user's home
        snapshot = node.data_dir / "proxy-config.snapshot"
        await wait_for(snapshot.is_file, timeout=10, message="no config snapshot written")
        assert walk.consumer["slug"].encode() not in snapshot.read_bytes()
