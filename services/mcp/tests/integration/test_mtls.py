"""mtls auths on MCP consumers: a client certificate is the credential after an API key
and a bearer token. The plane's traffic port speaks TLS with ``SERVER_MCP_TLS_CERT`` and
asks for client certificates verified against ``SERVER_MCP_TLS_CLIENT_CA``;
``X-Forwarded-Client-Cert`` is believed only from ``TRUST_XFCC_FROM`` peers. Certificates
are made by the test (``trustgate_testkit.pki``); the upstreams are real SDK servers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import orjson
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import ValidationError

from trustgate_core.access.mtls import ClientCertificates, parse_networks
from trustgate_core.errors import Unauthenticated
from trustgate_core.ids import uuid7
from trustgate_core.models import Auth
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_mcp.asgi.certificates import XFCC, presented
from trustgate_mcp.services.access import Credentials
from trustgate_mcp.services.dispatch import Context, SessionNotFound
from trustgate_mcp.services.ports import Caller
from trustgate_mcp.settings import McpSettings
from trustgate_testkit.pki import Pki, issue
from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams

MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]
INIT_PARAMS = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "test", "version": "1"},
}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


async def mtls_tenant(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki, *, with_key: bool = False, **lists: Any
) -> Tenant:
    """The weather server bound to the MCP consumer ``agent``, whose mtls auth
    (``agent-certs``) trusts the test root, with ``lists`` (allowed names...)."""
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("weather", upstreams.weather)
    consumer = await tenant.add_consumer("agent", ["weather"], type="MCP", with_key=with_key)
    now = datetime.now(UTC)
    auth = Auth(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name="agent-certs",
        type="mtls",
        config={"mtls": {"ca_cert": pki.root.pem, **lists}},
    )
    tenant.auths[auth.name] = auth
    await tenant.put_auth(auth.name)
    await tenant.put_consumer("agent", auth_ids=[*consumer.auth_ids, auth.id])
    return tenant


def scope_of(
    *, peer: str = "127.0.0.1", tls_chain: list[str] | None = None, **headers: str
) -> dict[str, Any]:
    """An ASGI scope as uvicorn (under core's guarded protocol) gives it."""
    scope: dict[str, Any] = {
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (peer, 40000),
    }
    if tls_chain is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": tls_chain}}
    return scope


async def caller_of(
    plane: LocalPlane,
    tenant: Tenant,
    scope: dict[str, Any],
    certificates: ClientCertificates | None = None,
    **credentials: Any,
) -> Caller:
    """What Access makes of a request with ``scope``, as the endpoint asks it."""
    access = plane.runtime.access
    forwarded = [v.decode("latin-1") for n, v in scope["headers"] if n == XFCC]
    xfcc = ",".join(forwarded) if forwarded else None
    request = Credentials(
        certificate=presented(scope, certificates or ClientCertificates(), xfcc), **credentials
    )
    gateway, consumer = access.consumer(tenant.consumers["agent"].slug, request)
    caller, _plan = await access.caller(gateway, consumer, request, plane.mcp_url(tenant))
    return caller


# -- Access, with the certificate the HTTP layer reads -------------------------------------
async def test_a_certificate_of_the_auths_ca_and_name_is_the_caller_with_its_subject(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(plane, upstreams, pki, allowed_common_names=["billing"])
    client = pki.client("billing")
    caller = await caller_of(plane, tenant, scope_of(tls_chain=[client.pem, pki.issuing.pem]))
    assert caller.auth_id == tenant.auths["agent-certs"].id
    assert caller.subject == "billing"
    assert caller.token is None


@pytest.mark.parametrize("who", ["another name", "another CA", "server usage", "disabled"])
async def test_a_certificate_the_auth_does_not_accept_is_401(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki, who: str
) -> None:
    tenant = await mtls_tenant(plane, upstreams, pki, allowed_common_names=["billing"])
    client = {
        "another name": pki.client("payroll"),
        "another CA": issue("billing", issue("Test Issuing CA", ca=True)),
        "server usage": pki.client("billing", server=True),
    }.get(who, pki.client("billing"))
    if who == "disabled":
        await tenant.put_auth("agent-certs", enabled=False)
    with pytest.raises(Unauthenticated) as refused:
        await caller_of(plane, tenant, scope_of(tls_chain=[client.pem, pki.issuing.pem]))
    assert refused.value.status == 401
    assert refused.value.reason == ("missing_key" if who == "disabled" else "bad_certificate")


async def test_without_a_certificate_or_with_one_on_a_consumer_without_mtls_auths_it_is_401(
    plane: LocalPlane, upstreams: Upstreams, tenant: Tenant, pki: Pki
) -> None:
    certificate = scope_of(tls_chain=[pki.client("billing").pem, pki.issuing.pem])
    for scope in (scope_of(), certificate):
        with pytest.raises(Unauthenticated) as refused:
            await caller_of(plane, tenant, scope)
        assert refused.value.reason == "missing_key"


async def test_a_forwarded_client_cert_is_believed_only_from_a_trusted_peer(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await mtls_tenant(plane, upstreams, pki, allowed_common_names=["billing"])
    certificates = ClientCertificates(parse_networks("10.0.0.0/8"))
    header = {"x_forwarded_client_cert": pki.xfcc(pki.client("billing"))}
    # the peer (an Envoy) proves its own certificate; the header names its client's
    envoy = scope_of(peer="10.1.2.3", tls_chain=[pki.client("envoy").pem], **header)
    caller = await caller_of(plane, tenant, envoy, certificates)
    assert caller.subject == "billing"
    spoofed = scope_of(peer="192.0.2.7", **header)
    with pytest.raises(Unauthenticated) as ignored:
        await caller_of(plane, tenant, spoofed, certificates)
    assert ignored.value.reason == "missing_key"
    assert "X-Forwarded-Client-Cert from untrusted peer 192.0.2.7 ignored" in caplog.text
    # a trusted peer cannot vouch for a name the auth does not allow
    payroll = scope_of(peer="10.1.2.3", x_forwarded_client_cert=pki.xfcc(pki.client("payroll")))
    with pytest.raises(Unauthenticated) as refused:
        await caller_of(plane, tenant, payroll, certificates)
    assert refused.value.reason == "bad_certificate"


async def test_an_api_key_comes_first_and_a_placeholder_bearer_leaves_it_to_the_certificate(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(plane, upstreams, pki, with_key=True)
    certificate = scope_of(tls_chain=[pki.client("billing").pem, pki.issuing.pem])
    keyed = await caller_of(plane, tenant, certificate, api_key=tenant.keys["agent"])
    assert (keyed.auth_id, keyed.subject) == (tenant.auths["agent"].id, None)
    # an SDK that sends its placeholder api_key as a bearer: the consumer takes no tokens
    bearer = await caller_of(plane, tenant, certificate, authorization="Bearer unused")
    assert (bearer.auth_id, bearer.subject) == (tenant.auths["agent-certs"].id, "billing")


async def test_a_session_opened_with_a_certificate_serves_only_that_auth_and_subject(
    plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(plane, upstreams, pki, with_key=True)
    chain = [pki.client("billing").pem, pki.issuing.pem]
    billing = await caller_of(plane, tenant, scope_of(tls_chain=chain))
    dispatcher = plane.runtime.app.endpoint.dispatcher
    plan = plane.runtime.plans.plan(billing.consumer)
    _result, session_id = await dispatcher.initialize(Context(billing, plan), INIT_PARAMS)
    assert (await dispatcher.session(session_id, billing)).claims.nonce
    payroll = await caller_of(
        plane, tenant, scope_of(tls_chain=[pki.client("payroll").pem, pki.issuing.pem])
    )
    keyed = await caller_of(plane, tenant, scope_of(), api_key=tenant.keys["agent"])
    for other in (payroll, keyed):
        with pytest.raises(SessionNotFound):
            await dispatcher.session(session_id, other)


# -- settings ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env",
    [
        {"SERVER_MCP_TLS_KEY": "/tmp/key.pem"},
        {"SERVER_MCP_TLS_CLIENT_CA": "/tmp/ca.pem"},
        {"TRUST_XFCC_FROM": "0.0.0.0/0"},
        {"TRUST_XFCC_FROM": "not-a-network"},
    ],
)
def test_settings_that_cannot_work_stop_the_boot(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        McpSettings(SERVER_SECRET_KEY=DEV_SECRET_KEY, **env)


# -- the TLS listener --------------------------------------------------------------------
@pytest_asyncio.fixture
async def tls_plane(
    make_plane: MakePlane, pki: Pki, request: pytest.FixtureRequest
) -> AsyncIterator[LocalPlane]:
    """The plane in process, its traffic port on TLS asking for client certificates of
    the test root; ``TRUST_XFCC_FROM`` from the test's parameter (none by default)."""
    trusted: str = getattr(request, "param", "")
    server_cert, server_key = issue("mcp", pki.root, server=True).files(pki.where, "server")
    bundle = pki.where / "client-ca.pem"
    bundle.write_text(pki.root.pem + pki.issuing.pem)
    async with make_plane(
        SERVER_MCP_TLS_CERT=server_cert,
        SERVER_MCP_TLS_KEY=server_key,
        SERVER_MCP_TLS_CLIENT_CA=str(bundle),
        TRUST_XFCC_FROM=trusted,
    ) as running:
        running.url = running.url.replace("http://", "https://", 1)
        yield running


@asynccontextmanager
async def sdk_client(url: str, context: ssl.SSLContext, **headers: str) -> AsyncIterator[Client]:
    """The SDK's client over TLS; its HTTP client closed after (a TLS connection left
    open holds the plane's shutdown for asyncio's 30 s TLS shutdown timeout)."""
    async with (
        httpx2.AsyncClient(verify=context, headers=headers, timeout=httpx2.Timeout(20)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


async def post(url: str, context: ssl.SSLContext, doc: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=context, timeout=20) as http:
        return await http.post(
            url,
            content=orjson.dumps(doc),
            headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        )


async def test_the_tls_listener_serves_an_api_key_without_a_client_certificate(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, with_key=True)
    url = tls_plane.mcp_url(tenant)
    assert url.startswith("https://")
    async with sdk_client(url, pki.context(None), **{"X-AG-API-Key": tenant.keys["agent"]}) as c:
        assert "forecast" in {tool.name for tool in (await c.list_tools()).tools}


async def test_a_certificate_of_another_ca_fails_the_handshake(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki)
    stranger = issue("billing", issue("Test Issuing CA", ca=True))  # same names, other keys
    with pytest.raises((httpx.ConnectError, httpx.ReadError)):  # TLS 1.3: after the hello
        await post(tls_plane.mcp_url(tenant), pki.context(stranger, "stranger"), TOOLS_LIST)


async def test_a_client_certificate_of_the_right_ca_and_name_gets_tools_and_calls(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, allowed_common_names=["billing"])
    context = pki.context(pki.client("billing"), "billing")
    async with sdk_client(tls_plane.mcp_url(tenant), context) as client:
        assert "forecast" in {tool.name for tool in (await client.list_tools()).tools}
        await client.call_tool("forecast", {"city": "Rome"})
    [call] = [c for c in tls_plane.sink.calls if c.method == "tools/call"]
    assert (call.auth_id, call.subject) == (tenant.auths["agent-certs"].id, "billing")


async def test_a_name_the_auth_does_not_allow_or_no_certificate_is_401(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, allowed_common_names=["billing"])
    url = tls_plane.mcp_url(tenant)
    for context in (pki.context(pki.client("payroll"), "payroll"), pki.context(None)):
        response = await post(url, context, TOOLS_LIST)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthenticated"


async def test_a_session_opened_with_a_certificate_is_404_with_another_credential(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, with_key=True)
    url = tls_plane.mcp_url(tenant)
    billing = pki.context(pki.client("billing"), "billing")
    opened = await post(
        url, billing, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT_PARAMS}
    )
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    assert (await post(url, billing, TOOLS_LIST, **session)).status_code == 200
    keyed = await post(
        url, pki.context(None), TOOLS_LIST, **session, **{"X-AG-API-Key": tenant.keys["agent"]}
    )
    assert keyed.status_code == 404


@pytest.mark.parametrize("tls_plane", ["127.0.0.0/8"], indirect=True)
async def test_a_forwarded_client_cert_from_a_trusted_peer_gets_tools(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, allowed_common_names=["billing"])
    envoy = pki.context(pki.client("envoy"), "envoy")
    forwarded = {"X-Forwarded-Client-Cert": pki.xfcc(pki.client("billing"))}
    async with sdk_client(tls_plane.mcp_url(tenant), envoy, **forwarded) as client:
        assert "forecast" in {tool.name for tool in (await client.list_tools()).tools}


async def test_a_forwarded_client_cert_from_an_untrusted_peer_is_ignored(
    tls_plane: LocalPlane, upstreams: Upstreams, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await mtls_tenant(tls_plane, upstreams, pki, allowed_common_names=["billing"])
    spoofed = {"X-Forwarded-Client-Cert": pki.xfcc(pki.client("billing"))}
    response = await post(tls_plane.mcp_url(tenant), pki.context(None), TOOLS_LIST, **spoofed)
    assert response.status_code == 401
    assert "X-Forwarded-Client-Cert from untrusted peer 127.0.0.1 ignored" in caplog.text
