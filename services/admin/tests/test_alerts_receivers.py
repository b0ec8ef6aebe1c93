"""Where alerts may go (SSRF hardening): a channel naming a link-local or cloud-metadata
host is refused with a 422 when stored; at delivery the host is resolved and the send is
refused when any of its addresses is one of those (or, with
ALERT_WEBHOOK_ALLOW_PRIVATE=false, a loopback or private one); the test endpoint says so in
general words."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpcore
import httpx
import pytest
from aiohttp import web

from trustgate_admin.governance.webhook_guard import BLOCKED, GuardedBackend, IPAddress
from trustgate_core.embedded import free_port
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

SECRET = "receiver-hmac-secret-0123456789"
REFUSED_HOSTS = [
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/hook",
    "https://100.100.100.200/latest/meta-data/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://METADATA.google.internal./computeMetadata/v1/",
    "http://[::ffff:169.254.169.254]/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
    "https://0xa9.0xfe.0xa9.0xfe/",
    "https://0.0.0.0/hook",
]


def _rule(url: str) -> dict[str, Any]:
    return {
        "name": f"a-{uuid.uuid4().hex[:6]}",
        "kind": "spend",
        "amount_usd": 1,
        "period": "day",
        "thresholds": [100],
        "channel": {"type": "webhook", "url": url, "secret": SECRET},
    }


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"gw-{uuid.uuid4().hex[:10]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_channel_naming_a_link_local_or_metadata_host_is_refused(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    for url in REFUSED_HOSTS:
        r = await api.post(base, json=_rule(url))
        assert r.status_code == 422, (url, r.text)
        assert "channel" in r.json()["message"] and url not in r.text, (url, r.text)
    slack = {**_rule("x"), "channel": {"type": "slack", "url": REFUSED_HOSTS[4]}}
    assert (await api.post(base, json=slack)).status_code == 422
    # and a stored rule cannot be changed to one
    rule = (await api.post(base, json=_rule("https://hooks.example.com/a"))).json()
    channel = {"type": "webhook", "url": REFUSED_HOSTS[0], "secret": SECRET}
    r = await api.put(f"{base}/{rule['id']}", json={"channel": channel})
    assert r.status_code == 422, r.text
    # a local receiver (the default allows private addresses) is accepted
    r = await api.post(base, json=_rule("http://127.0.0.1:9/hook"))
    assert r.status_code == 201, r.text


class Resolving(GuardedBackend):
    """The backend with a resolver answering ``addresses`` (a DNS name pointed at them)."""

    def __init__(self, addresses: list[str], allow_private: bool = True) -> None:
        super().__init__(allow_private)
        self.addresses: list[IPAddress] = [ipaddress.ip_address(a) for a in addresses]

    async def _resolve(self, host: str, port: int, within: float | None) -> list[IPAddress]:
        return self.addresses


@pytest.mark.parametrize(
    "addresses",
    [["169.254.169.254"], ["93.184.215.14", "169.254.169.254"], ["fe80::1"], ["100.100.100.200"]],
)
async def test_a_name_resolving_to_a_metadata_address_is_not_connected_to(
    addresses: list[str],
) -> None:
    with pytest.raises(httpcore.ConnectError, match=BLOCKED):
        await Resolving(addresses).connect_tcp("hooks.example.com", 443, timeout=5)


async def test_the_checked_address_is_the_one_connected_to() -> None:
    """Not the name again: a DNS answer that changes after the check cannot slip through."""
    port = free_port()
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen()
    try:
        stream = await Resolving(["127.0.0.1"]).connect_tcp("no-such-host.invalid", port, 5)
        await stream.aclose()
        with pytest.raises(httpcore.ConnectError, match=BLOCKED):
            await Resolving(["127.0.0.1"], allow_private=False).connect_tcp("h.invalid", port, 5)
    finally:
        server.close()


# -- ALERT_WEBHOOK_ALLOW_PRIVATE=false ---------------------------------------------------


@pytest.fixture(scope="module")
async def strict_admin(database_factory: Any, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = str(await database_factory("tg_alerts_strict"))
    settings = admin_settings(
        dsn,
        bus.url,
        ALERT_WEBHOOK_ALLOW_PRIVATE=False,
        ALERT_EVAL_INTERVAL=0.2,
        ALERT_RETRY_MAX_BACKOFF=0.2,
    )
    async with running_admin(settings) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A receiver on this host: its port and what it received."""
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        yield str(port), received
    finally:
        await runner.cleanup()


async def test_with_private_receivers_off_a_name_resolving_to_this_host_is_not_sent_to(
    strict_admin: RunningAdmin, receiver: tuple[str, list[bytes]]
) -> None:
    port, received = receiver
    host = socket.gethostname()  # a name, so accepted when stored; it resolves here
    resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    assert all(
        ipaddress.ip_address(a).is_loopback or ipaddress.ip_address(a).is_private for a in resolved
    ), resolved
    async with strict_admin.client() as api:
        gw = await _gateway(api)
        base = f"/v1/gateways/{gw}/alerts"
        for url in ("https://127.0.0.1/hook", "http://10.0.0.8/hook", "https://localhost/h"):
            r = await api.post(base, json=_rule(url))
            assert r.status_code == 422, (url, r.text)
        rule = await api.post(base, json=_rule(f"https://{host}:{port}/hook"))
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["id"]

        r = await api.post(f"{base}/{rule_id}/test")
        assert r.json()["ok"] is False and r.json()["status_code"] is None
        assert "address is refused" in r.json()["error"], r.text

        # a firing: the worker refuses the address too, and the log says why
        conn = await asyncpg.connect(strict_admin.settings.dsn)
        try:
            await conn.execute(
                "INSERT INTO usage_hourly (gateway_id, hour, consumer_id, model, provider, "
                "requests, cost_usd) VALUES ($1, $2, $3, 'm', 'p', 1, $4)",
                uuid.UUID(gw),
                datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
                uuid.UUID(int=0),
                Decimal(2),
            )
        finally:
            await conn.close()
        await strict_admin.container.governance.alerts.committed({uuid.UUID(gw)})

        async def refused() -> bool:
            items = (await api.get(f"{base}/{rule_id}/deliveries")).json()["items"]
            return bool(items) and items[0]["last_error"] == "BlockedAddress"

        await wait_for(refused, timeout=15, message="the delivery was not refused")
    assert received == []
