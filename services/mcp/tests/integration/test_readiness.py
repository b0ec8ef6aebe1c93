"""The plane is ready once its config replica has caught up: before, ``/readyz`` answers
503 (``config: unavailable``) and the MCP endpoint 503 (nothing is served from a partial
configuration); after, ``/readyz`` is 200 and the endpoint serves the consumer."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import httpx

from trustgate_core.bus import connect as connect_nats
from trustgate_core.bus import ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.tenant import new_tenant

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams

MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]
ACCEPT = {"Accept": "application/json, text/event-stream"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}


async def test_not_ready_and_503_until_the_config_replica_caught_up(
    make_plane: MakePlane, upstreams: Upstreams
) -> None:
    nats = NatsServer()  # not started yet: the plane cannot read its configuration
    try:
        async with (
            make_plane(bus=True, NATS_URL=nats.url) as plane,
            httpx.AsyncClient(timeout=10) as http,
        ):
            endpoint = f"{plane.url}/some-agent/mcp"
            readyz = await http.get(f"{plane.operations_url}/readyz")
            assert readyz.status_code == 503
            assert readyz.json()["status"] == "not_ready"
            assert readyz.json()["dependencies"]["config"] == "unavailable"
            refused = await http.post(
                endpoint, json=LIST, headers={**ACCEPT, "X-AG-API-Key": "ag_x"}
            )
            assert refused.status_code == 503
            assert "configuration not loaded yet" in refused.text
            assert (await http.get(f"{plane.operations_url}/healthz")).status_code == 200

            nats.start()
            nc = await connect_nats(nats.url, name="readiness-test")
            try:
                await ensure_streams(nc.jetstream(), [CONFIG_STREAM])

                async def ready() -> bool:
                    return (await http.get(f"{plane.operations_url}/readyz")).status_code == 200

                await wait_for(ready, timeout=20, message="the plane became ready")
                tenant = await new_tenant(nc)
                await tenant.add_mcp_registry("weather", upstreams.weather)
                await tenant.add_consumer("agent", ["weather"], type="MCP")
                url = plane.mcp_url(tenant)
                headers = {**ACCEPT, "X-AG-API-Key": tenant.keys["agent"]}

                async def initialized() -> httpx.Response | None:
                    opened = await http.post(url, json=INIT, headers=headers)
                    return opened if opened.status_code == 200 else None

                opened = await wait_for(initialized, timeout=10, message="the consumer is served")
                session = {**headers, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
                tools = (await http.post(url, json=LIST, headers=session)).json()["result"]
                assert "forecast" in {t["name"] for t in tools["tools"]}
            finally:
                await nc.close()
    finally:
        nats.cleanup()
