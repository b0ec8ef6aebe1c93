"""The endpoint's HTTP contract (streamable HTTP, reference §9), with a plain HTTP client:
what an agent sees before and around JSON-RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from trustgate_core.ids import new_api_key
from trustgate_mcp import __version__
from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane

BOTH = "application/json, text/event-stream"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


def rpc(method: str, params: dict[str, Any] | None = None, rid: Any = 2) -> dict[str, Any]:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        doc["params"] = params
    return doc


class Agent:
    """Raw HTTP on one consumer's MCP URL with its key."""

    def __init__(self, http: httpx.AsyncClient, url: str, key: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"X-AG-API-Key": key, "Accept": BOTH}
        self.session: str | None = None

    async def post(self, doc: Any, **headers: str) -> httpx.Response:
        sent = {**self.headers, **({"Mcp-Session-Id": self.session} if self.session else {})}
        return await self.http.post(
            self.url,
            content=orjson.dumps(doc),
            headers={**sent, "Content-Type": "application/json", **headers},
        )

    async def initialize(self) -> httpx.Response:
        response = await self.post(INIT)
        self.session = response.headers["mcp-session-id"]
        return response


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


@pytest.fixture
def user(http: httpx.AsyncClient, plane: LocalPlane, tenant: Tenant) -> Agent:
    return Agent(http, plane.mcp_url(tenant), tenant.keys["agent"])


async def test_initialize_negotiates_and_names_the_gateway_with_a_config_fingerprint(
    user: Agent,
) -> None:
    response = await user.initialize()
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 1
    info = body["result"]
    assert info["protocolVersion"] == "2025-06-18"
    assert info["serverInfo"]["name"] == "trustgate"
    version, fingerprint = info["serverInfo"]["version"].split("+")
    assert version == __version__
    assert len(fingerprint) == 8 and int(fingerprint, 16) >= 0
    for capability in ("tools", "resources", "prompts"):
        assert info["capabilities"][capability] == {"listChanged": False}
    assert response.headers["x-content-type-options"] == "nosniff"
    newest = await user.post(
        {**INIT, "params": {**INIT["params"], "protocolVersion": "2099-01-01"}}
    )
    assert newest.json()["result"]["protocolVersion"] == "2025-11-25"


async def test_a_request_without_a_session_is_400_and_a_tampered_one_404(user: Agent) -> None:
    missing = await user.post(rpc("tools/list"))
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == -32600
    await user.initialize()
    assert (await user.post(rpc("tools/list"))).status_code == 200
    assert user.session is not None
    user.session = user.session[:-3] + ("A" if user.session[-3] != "A" else "B") + user.session[-2:]
    tampered = await user.post(rpc("tools/list"))
    assert tampered.status_code == 404
    assert tampered.json()["error"]["code"] == -32600


async def test_a_session_ended_by_delete_is_refused_afterwards(user: Agent) -> None:
    await user.initialize()
    assert user.session is not None
    ended = await user.http.delete(
        user.url, headers={**user.headers, "Mcp-Session-Id": user.session}
    )
    assert ended.status_code == 200
    assert (await user.post(rpc("ping"))).status_code == 404


async def test_a_session_serves_only_the_credential_it_was_opened_with(
    plane: LocalPlane, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    second_key = new_api_key()
    await tenant.add_consumer("other", ["docs"], type="MCP", key=second_key)
    first = Agent(http, plane.mcp_url(tenant), tenant.keys["agent"])
    await first.initialize()
    other = Agent(http, plane.mcp_url(tenant, "other"), second_key)
    other.session = first.session
    assert (await other.post(rpc("ping"))).status_code == 404


async def test_answers_are_one_sse_event_when_the_client_accepts_only_sse(user: Agent) -> None:
    await user.initialize()
    response = await user.post(rpc("ping", rid="p"), Accept="text/event-stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    event, data, _ = response.text.split("\n", 2)
    assert event == "event: message"
    assert orjson.loads(data.removeprefix("data: ")) == {"jsonrpc": "2.0", "id": "p", "result": {}}


async def test_notifications_and_client_responses_are_accepted_without_a_body(
    user: Agent,
) -> None:
    await user.initialize()
    note = await user.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (note.status_code, note.content) == (202, b"")
    answer = await user.post({"jsonrpc": "2.0", "id": 9, "result": {}})
    assert answer.status_code == 202


async def test_malformed_messages_are_json_rpc_errors_with_http_200(user: Agent) -> None:
    await user.initialize()
    not_json = await user.http.post(
        user.url,
        content=b"{nope",
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 200
    assert not_json.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "parse error: the body is not JSON"},
    }
    batch = await user.post([rpc("ping")])
    assert batch.json()["error"] == {"code": -32600, "message": "batches are not supported"}
    assert (await user.post({"id": 1, "method": "ping"})).json()["error"]["code"] == -32600
    unknown = await user.post(rpc("sampling/createMessage"))
    assert unknown.json()["error"]["code"] == -32601
    # the stateless revision's probe without its envelope (test_modern.py has the rest)
    discover = await user.post(rpc("server/discover"))
    assert (discover.status_code, discover.json()["error"]["code"]) == (400, -32602)
    bad = await user.post(rpc("tools/call", {"name": 5}))
    assert bad.json()["error"]["code"] == -32602
    assert "params.name" in bad.json()["error"]["message"]
    bad_args = await user.post(rpc("tools/call", {"name": "echo", "arguments": [1]}))
    assert bad_args.json()["error"]["code"] == -32602


async def test_http_level_refusals(user: Agent, plane: LocalPlane) -> None:
    get = await user.http.get(user.url, headers=user.headers)
    assert get.status_code == 405
    assert get.headers["allow"] == "POST, DELETE"
    text = await user.post(INIT, **{"Content-Type": "text/plain"})
    assert text.status_code == 415
    html = await user.post(INIT, Accept="text/html")
    assert html.status_code == 406
    assert html.json()["error"] == "not_acceptable"
    big = await user.post(rpc("ping", {"pad": "x" * (5 << 20)}))
    assert big.status_code == 413
    elsewhere = await user.http.post(plane.url + "/nobody/mcp", json=INIT, headers=user.headers)
    assert elsewhere.status_code == 404
    other_path = await user.http.post(user.url + "/more", json=INIT, headers=user.headers)
    assert other_path.status_code == 404
    assert (await user.http.get(plane.url + "/healthz")).status_code == 200
    assert (await user.http.get(plane.url + "/metrics")).status_code == 404


async def test_no_credential_is_401_with_the_oauth_challenge(user: Agent) -> None:
    for headers in ({}, {"X-AG-API-Key": "ag_not-a-key"}, {"Authorization": "Bearer nope"}):
        response = await user.http.post(
            user.url,
            json=INIT,
            headers={"Accept": BOTH, **headers},
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer resource_metadata=")
        assert response.json()["error"] == "unauthenticated"


async def test_another_consumers_key_is_403_and_an_llm_consumer_is_no_mcp_endpoint(
    plane: LocalPlane, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    await tenant.add_consumer("sibling", ["docs"], type="MCP")
    foreign = Agent(http, plane.mcp_url(tenant), tenant.keys["sibling"])
    assert (await foreign.post(INIT)).status_code == 403
    await tenant.add_consumer("chat", ["docs"])  # type LLM
    llm = Agent(http, plane.mcp_url(tenant, "chat"), tenant.keys["chat"])
    assert (await llm.post(INIT)).status_code == 404


async def test_a_gateway_named_by_header_must_be_the_consumers(user: Agent, tenant: Tenant) -> None:
    assert (await user.post(INIT, **{"X-AG-Gateway-Slug": tenant.slug})).status_code == 200
    assert (await user.post(INIT, **{"X-AG-Gateway-Slug": "gw-other"})).status_code == 404


async def test_a_token_the_plane_issued_for_this_mcp_url_is_a_credential(
    user: Agent, plane: LocalPlane, tenant: Tenant
) -> None:
    tokens = plane.runtime.oauth.tokens
    grant = {
        "sub": "alice",
        "gateway_id": str(tenant.gateway.id),
        "consumer_id": str(tenant.consumers["agent"].id),
        "auth_id": str(tenant.auths["agent"].id),
    }
    ours = tokens.issue(plane.url, user.url, grant)
    elsewhere = tokens.issue(plane.url, plane.url + "/someone-else/mcp", grant)
    for token, status in ((ours, 200), (elsewhere, 401)):
        response = await user.http.post(
            user.url, json=INIT, headers={"Accept": BOTH, "Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status
    # a session opened with the token is the token's: the consumer's API key cannot use it
    opened = await user.http.post(
        user.url, json=INIT, headers={"Accept": BOTH, "Authorization": f"Bearer {ours}"}
    )
    user.session = opened.headers["mcp-session-id"]
    assert (await user.post(rpc("ping"))).status_code == 404


async def test_a_gateway_named_by_host_must_be_the_consumers(user: Agent, tenant: Tenant) -> None:
    ours = await user.post(INIT, Host=f"{tenant.slug}.mcp.test")
    assert ours.status_code == 200
    assert (await user.post(INIT, Host="gw-other.mcp.test")).status_code == 404
    assert (await user.post(INIT, Host="anything.example.com")).status_code == 200  # path-first
