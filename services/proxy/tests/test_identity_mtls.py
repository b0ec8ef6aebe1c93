"""mtls consumers on the proxy: its own TLS listener asks for client certificates (verified
against ``SERVER_PROXY_TLS_CLIENT_CA``), and ``X-Forwarded-Client-Cert`` is believed only
from ``TRUST_XFCC_FROM``. Certificates are made by the test; the official openai SDK
calls through ``httpx`` holding the client certificate."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from pydantic import ValidationError

from trustgate_core.access.mtls import ClientCertificates, parse_networks
from trustgate_core.ids import uuid7
from trustgate_core.models import Auth
from trustgate_core.serving import EmbeddedServer
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_proxy.asgi.app import _request
from trustgate_proxy.bootstrap import ProxyRuntime
from trustgate_proxy.main import server_config as proxy_server_config
from trustgate_proxy.services.pipeline import ClientRequest
from trustgate_proxy.services.ports import MemorySink
from trustgate_proxy.settings import ProxySettings
from trustgate_testkit.pki import NOW, Issued, Pki, issue
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import poll
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

# the SDK still sends its placeholder api_key as a bearer: a consumer that takes no tokens
# lets the certificate decide
CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello!"}],
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@dataclass
class TlsProxy:
    url: str
    tenant: Tenant
    sink: MemorySink


@pytest_asyncio.fixture
async def tls_proxy(pki: Pki, upstream: MockUpstream, request: Any) -> AsyncIterator[TlsProxy]:
    trusted: str = getattr(request, "param", "")
    server_cert, server_key = issue("proxy", pki.root, server=True).files(pki.where, "server")
    bundle = pki.where / "client-ca.pem"
    bundle.write_text(pki.root.pem + pki.issuing.pem)
    settings = ProxySettings(
        SERVER_SECRET_KEY=DEV_SECRET_KEY,
        GATEWAY_BASE_DOMAIN="gw.test",
        PROXY_CONFIG_SNAPSHOT="",
        SERVER_PROXY_TLS_CERT=server_cert,
        SERVER_PROXY_TLS_KEY=server_key,
        SERVER_PROXY_TLS_CLIENT_CA=str(bundle),
        TRUST_XFCC_FROM=trusted,
    )
    sink = MemorySink()
    async with ProxyRuntime(settings, bus=False, sink=sink, tracing_env={}) as runtime:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        # the proxy's own traffic server: TLS and trusted XFCC peers from its settings
        config = proxy_server_config(runtime, settings)
        config.log_config = None
        server = EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await poll(lambda: server.started, 5.0)
            tenant = await new_tenant(None, local=runtime.apply)
            await tenant.add_registry("primary", upstream.url)
            yield TlsProxy(f"https://127.0.0.1:{sock.getsockname()[1]}", tenant, sink)
        finally:
            server.should_exit = True
            await task
            sock.close()


async def mtls_consumer(proxy: TlsProxy, pki: Pki, name: str, **lists: list[str]) -> str:
    """A consumer whose one auth is an mtls auth trusting the test root; its slug."""
    tenant = proxy.tenant
    now = datetime.now(UTC)
    auth = Auth(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name=f"{name}-certs",
        type="mtls",
        config={"mtls": {"ca_cert": pki.root.pem, **lists}},
    )
    tenant.auths[auth.name] = auth
    await tenant.put_auth(auth.name)
    consumer = await tenant.add_consumer(name, ["primary"], with_key=False)
    await tenant.put_consumer(name, auth_ids=[auth.id])
    return consumer.slug


def sdk(proxy: TlsProxy, slug: str, http: httpx.AsyncClient, **headers: str) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=f"{proxy.url}/{slug}/v1",
            api_key="unused",
            max_retries=0,
            timeout=10,
            http_client=http,
            default_headers={"X-AG-Gateway-Slug": proxy.tenant.slug, **headers},
        )
    )


async def test_a_client_certificate_of_the_auths_ca_gets_a_completion(
    tls_proxy: TlsProxy, pki: Pki
) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing", allowed_common_names=["billing"])
    async with httpx.AsyncClient(verify=pki.context(pki.client("billing"))) as http:
        completion = await sdk(tls_proxy, slug, http).chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == "Hello from mock"


async def test_a_certificate_of_another_ca_fails_the_handshake(
    tls_proxy: TlsProxy, pki: Pki
) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing")
    stranger = issue("billing", issue("Test Issuing CA", ca=True))  # same names, other keys
    async with httpx.AsyncClient(verify=pki.context(stranger, "stranger")) as http:
        with pytest.raises(openai.APIConnectionError):
            await sdk(tls_proxy, slug, http).chat.completions.create(**CHAT)


async def test_an_expired_certificate_fails_the_handshake(tls_proxy: TlsProxy, pki: Pki) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing")
    expired = pki.client("billing", not_after=NOW - timedelta(days=1))
    async with httpx.AsyncClient(verify=pki.context(expired, "expired")) as http:
        with pytest.raises(openai.APIConnectionError):
            await sdk(tls_proxy, slug, http).chat.completions.create(**CHAT)


async def test_a_common_name_the_auth_does_not_allow_is_401(tls_proxy: TlsProxy, pki: Pki) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing", allowed_common_names=["billing"])
    async with httpx.AsyncClient(verify=pki.context(pki.client("payroll"), "payroll")) as http:
        with pytest.raises(openai.AuthenticationError) as refused:
            await sdk(tls_proxy, slug, http).chat.completions.create(**CHAT)
    assert refused.value.status_code == 401


async def test_without_a_certificate_the_listener_still_serves_and_the_consumer_is_401(
    tls_proxy: TlsProxy, pki: Pki
) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing")
    async with httpx.AsyncClient(verify=pki.context(None)) as http:
        with pytest.raises(openai.AuthenticationError):
            await sdk(tls_proxy, slug, http).chat.completions.create(**CHAT)


def xfcc(client: Issued, pki: Pki) -> str:
    return pki.xfcc(client, by="spiffe://proxy")


async def test_a_forwarded_client_cert_from_an_untrusted_peer_is_ignored(
    tls_proxy: TlsProxy, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing", allowed_common_names=["billing"])
    spoofed = xfcc(pki.client("billing"), pki)
    async with httpx.AsyncClient(verify=pki.context(None)) as http:
        client = sdk(tls_proxy, slug, http, **{"X-Forwarded-Client-Cert": spoofed})
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(**CHAT)
    assert refused.value.status_code == 401
    assert "X-Forwarded-Client-Cert from untrusted peer 127.0.0.1 ignored" in caplog.text


@pytest.mark.parametrize("tls_proxy", ["127.0.0.0/8"], indirect=True)
async def test_a_forwarded_client_cert_from_a_trusted_peer_is_believed(
    tls_proxy: TlsProxy, pki: Pki
) -> None:
    slug = await mtls_consumer(tls_proxy, pki, "billing", allowed_common_names=["billing"])
    # the peer (an Envoy here) proves its own certificate; the header names its client's
    envoy = pki.context(pki.client("envoy"), "envoy")
    async with httpx.AsyncClient(verify=envoy) as http:
        forwarded = xfcc(pki.client("billing"), pki)
        client = sdk(tls_proxy, slug, http, **{"X-Forwarded-Client-Cert": forwarded})
        completion = await client.chat.completions.create(**CHAT)
        assert completion.choices[0].message.content == "Hello from mock"
        # even a trusted peer cannot vouch for a name the auth does not allow, or a CA it
        # does not trust
        stranger = issue("billing", issue("Test Issuing CA", ca=True))
        for refused in (pki.client("payroll"), stranger):
            header = xfcc(refused, pki)
            other = sdk(tls_proxy, slug, http, **{"X-Forwarded-Client-Cert": header})
            with pytest.raises(openai.AuthenticationError):
                await other.chat.completions.create(**CHAT)


def test_the_request_carries_the_certificate_a_trusted_peer_forwards(pki: Pki) -> None:
    client = pki.client("billing")
    certificates = ClientCertificates(parse_networks("10.0.0.0/8"))
    headers = [(b"x-forwarded-client-cert", xfcc(client, pki).encode())]

    def request(peer: str, tls_chain: list[str] | None = None) -> ClientRequest:
        scope: dict[str, Any] = {"headers": headers, "client": (peer, 40000)}
        if tls_chain is not None:
            scope["extensions"] = {"tls": {"client_cert_chain": tls_chain}}
        return _request(scope, "slug", certificates)

    trusted = request("10.1.2.3", [pki.client("envoy").pem])
    assert trusted.peer_cert == client.cert
    assert list(trusted.peer_chain) == [pki.issuing.cert]
    assert trusted.xfcc
    spoofed = request("192.0.2.7")
    assert spoofed.peer_cert is None
    own = pki.client("direct")
    beside = request("192.0.2.7", [own.pem])  # the header ignored, the handshake's kept
    assert beside.peer_cert == own.cert
    assert not beside.xfcc


@pytest.mark.parametrize(
    "env",
    [
        {"TRUST_XFCC_FROM": "0.0.0.0/0"},  # would believe every peer
        {"TRUST_XFCC_FROM": "10.0.0.0/8,::/0"},
        {"TRUST_XFCC_FROM": "not-a-network"},
        {"SERVER_PROXY_TLS_CLIENT_CA": "/etc/ca.pem"},  # client certificates need TLS
    ],
)
def test_settings_that_would_trust_everyone_or_cannot_work_stop_the_boot(
    env: dict[str, str],
) -> None:
    with pytest.raises(ValidationError):
        ProxySettings(SERVER_SECRET_KEY=DEV_SECRET_KEY, GATEWAY_BASE_DOMAIN="gw.test", **env)
