"""``GET /v1/gateways/{gw}/registries/{id}/tools``: an MCP registry's live tool list,
fetched through the official MCP client from real SDK servers (every page, the registry's
headers and credentials sent); a dead or silent server is a 502 or 504 that repeats no
secret."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import mcp.types as types
import pytest
import uvicorn
from aiohttp import web
from mcp.server.lowlevel import Server

from trustgate_admin.api.security import mint_admin_token
from trustgate_core.embedded import free_port
from trustgate_testkit.admin import RunningAdmin
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.proxy.mock_base import serve_app

SECRET_HEADER = "Bearer upstream-secret-0001-abcd"
CLIENT_SECRET = "client-secret-0002-efgh"
ISSUED_TOKEN = "issued-token-0003-ijkl"


# The upstreams answer JSON rather than SSE: sse-starlette ends every SSE stream of the
# process once the SIGTERM handler left installed by an earlier test's uvicorn server
# belongs to a server that has exited (see the report on running_admin's shutdown order).
@pytest.fixture(scope="module")
def weather() -> Iterator[str]:
    with UpstreamThread("weather", free_port(), json_response=True) as url:
        yield url


@pytest.fixture(scope="module")
def docs() -> Iterator[str]:
    with UpstreamThread("docs", free_port(), json_response=True) as url:
        yield url


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"tools-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _mcp_registry(api: httpx.AsyncClient, gw: str, target: dict[str, Any]) -> str:
    r = await api.post(
        f"/v1/gateways/{gw}/registries",
        json={"name": f"mcp-{uuid.uuid4().hex[:6]}", "type": "MCP", "mcp_target": target},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _paged_server() -> Server[Any]:
    """Seven tools served three a page, the cursor being the next index."""
    tools = [
        types.Tool(name=f"tool_{i}", description=f"tool {i}", input_schema={"type": "object"})
        for i in range(7)
    ]

    async def on_list_tools(
        _ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        start = int(params.cursor) if params and params.cursor else 0
        nxt = str(start + 3) if start + 3 < len(tools) else None
        return types.ListToolsResult(tools=tools[start : start + 3], next_cursor=nxt)

    return Server("paged", on_list_tools=on_list_tools)


def _guarded(app: Any, header: str, value: str) -> Any:
    """``app`` answering 401 to a request without ``header: value``."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            sent = dict(scope["headers"]).get(header.lower().encode())
            if sent != value.encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await app(scope, receive, send)

    return guarded


@asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout=10, message="upstream did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_each_registry_lists_its_own_servers_live_tools(
    api: httpx.AsyncClient, weather: str, docs: str
) -> None:
    gw = await _gateway(api)
    listed = {}
    for url in (weather, docs):
        reg = await _mcp_registry(api, gw, {"url": url})
        r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["registry_id"] == reg
        assert body["count"] == len(body["tools"])
        assert isinstance(body["latency_ms"], int)
        listed[url] = {t["name"]: t for t in body["tools"]}
    assert set(listed[weather]) == {"forecast", "search", "slow"}
    assert set(listed[docs]) == {"search", "echo", "fail"}
    forecast = listed[weather]["forecast"]
    assert forecast["description"] == "The forecast for a city."
    assert forecast["inputSchema"]["required"] == ["city"]


async def test_every_page_is_followed_and_the_static_header_sent(api: httpx.AsyncClient) -> None:
    app = _guarded(
        _paged_server().streamable_http_app(json_response=True), "X-Upstream-Key", SECRET_HEADER
    )
    async with _serving(app) as url:
        gw = await _gateway(api)
        auth = {"mode": "static", "header": "X-Upstream-Key", "value": SECRET_HEADER}
        reg = await _mcp_registry(api, gw, {"url": url, "auth": auth})
        r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools")
        assert r.status_code == 200, r.text
        assert [t["name"] for t in r.json()["tools"]] == [f"tool_{i}" for i in range(7)]

        wrong = await _mcp_registry(api, gw, {"url": url, "headers": {"X-Other": "x"}})
        r = await api.get(f"/v1/gateways/{gw}/registries/{wrong}/tools")
        assert r.status_code == 502
        assert r.json()["error"] == "upstream_unavailable"
        assert "401" in r.json()["message"]


async def test_client_credentials_obtain_a_token_first_and_send_it(
    api: httpx.AsyncClient,
) -> None:
    grants: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        grants.append(
            {
                "authorization": request.headers.get("Authorization", ""),
                "upstream_key": request.headers.get("X-Upstream-Key", ""),
                **form,  # type: ignore[dict-item]
            }
        )
        return web.json_response({"access_token": ISSUED_TOKEN, "token_type": "Bearer"})

    idp = web.Application()
    idp.router.add_post("/token", token)
    app = _guarded(
        _paged_server().streamable_http_app(json_response=True),
        "Authorization",
        f"Bearer {ISSUED_TOKEN}",
    )
    async with serve_app(idp) as idp_url, _serving(app) as url:
        gw = await _gateway(api)
        auth = {
            "mode": "client_credentials",
            "token_url": f"{idp_url}/token",
            "client_id": "gateway",
            "client_secret": CLIENT_SECRET,
            "scopes": ["tools.read"],
        }
        headers = {"X-Upstream-Key": SECRET_HEADER}
        reg = await _mcp_registry(api, gw, {"url": url, "headers": headers, "auth": auth})
        r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools")
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 7
    basic = base64.b64encode(f"gateway:{CLIENT_SECRET}".encode()).decode()
    assert grants[0]["authorization"] == f"Basic {basic}"
    assert grants[0]["grant_type"] == "client_credentials"
    assert grants[0]["scope"] == "tools.read"
    assert grants[0]["upstream_key"] == ""  # the server's headers are not the IdP's


async def test_a_dead_server_is_a_502_that_repeats_no_secret(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    reg = await _mcp_registry(api, gw, {"url": dead, "headers": {"Authorization": SECRET_HEADER}})
    r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools")
    assert r.status_code == 502
    assert r.json()["error"] == "upstream_unavailable"
    assert r.json()["message"]
    assert "upstream-secret" not in r.text


async def test_a_silent_server_is_a_504_after_the_timeout(api: httpx.AsyncClient) -> None:
    hold = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gw = await _gateway(api)
        reg = await _mcp_registry(api, gw, {"url": f"http://127.0.0.1:{port}/mcp"})
        r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools", params={"timeout": 0.5})
        assert r.status_code == 504, r.text
        assert r.json()["error"] == "upstream_timeout"
    finally:
        hold.set()
        server.close()
        await server.wait_closed()


async def test_what_cannot_be_listed_is_refused(api: httpx.AsyncClient, weather: str) -> None:
    gw = await _gateway(api)
    llm = await api.post(
        f"/v1/gateways/{gw}/registries",
        json={"name": "llm", "provider": "openai", "auth": {"type": "api_key", "api_key": "sk-1"}},
    )
    r = await api.get(f"/v1/gateways/{gw}/registries/{llm.json()['id']}/tools")
    assert r.status_code == 422 and "MCP" in r.json()["message"]

    r = await api.get(f"/v1/gateways/{gw}/registries/{uuid.uuid4()}/tools")
    assert r.status_code == 404

    auth = {"mode": "passthrough", "expected_audience": "https://tools.example.com"}
    reg = await _mcp_registry(api, gw, {"url": weather, "auth": auth})
    r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools")
    assert r.status_code == 422
    assert "agent's token" in r.json()["message"]

    reg = await _mcp_registry(api, gw, {"url": weather})
    for bad in ("0", "-1", "61", "soon"):
        r = await api.get(f"/v1/gateways/{gw}/registries/{reg}/tools", params={"timeout": bad})
        assert r.status_code == 422, bad


async def test_a_read_only_tenant_lists_its_own_and_not_anothers(
    admin: RunningAdmin, weather: str
) -> None:
    secret = admin.settings.server_secret_key
    owner = admin.client(mint_admin_token(secret, tenant_id="tools-a"))
    reader = admin.client(mint_admin_token(secret, tenant_id="tools-a", read_only=True))
    stranger = admin.client(mint_admin_token(secret, tenant_id="tools-b", read_only=True))
    async with owner, reader, stranger:
        gw = await _gateway(owner)
        reg = await _mcp_registry(owner, gw, {"url": weather})
        path = f"/v1/gateways/{gw}/registries/{reg}/tools"
        assert (await reader.get(path)).status_code == 200
        assert (await stranger.get(path)).status_code == 404
