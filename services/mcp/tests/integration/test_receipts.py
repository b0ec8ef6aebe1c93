"""Usage receipts on the MCP plane, as on the proxy: with the gateway's
``governance.receipts`` on, the events its calls publish carry their usage record signed
with the gateway's derived key (verifiable against the event itself); off, none does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from mcp import Client

from trustgate_core.events import decode_request_event
from trustgate_core.events.requests import RequestEvent
from trustgate_core.models import GatewayGovernance
from trustgate_core.receipts.keys import ReceiptKey
from trustgate_core.receipts.record import record_of_request
from trustgate_core.receipts.signing import check_receipt
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane

Connect = Callable[..., Client]


async def published(plane: LocalPlane, tenant: Tenant, connect: Connect) -> RequestEvent:
    """One ``tools/call`` through the plane, as the publisher would put it on the bus."""
    before = len(plane.sink.calls)
    async with connect(plane.mcp_url(tenant), tenant.keys["agent"], mode="legacy") as client:
        await client.call_tool("weather_search", {"query": "rain"})
    (call,) = plane.sink.calls[before:]
    return decode_request_event(orjson.dumps(plane.runtime.publisher.payload(call)))


async def test_calls_of_a_gateway_with_receipts_carry_a_receipt_that_verifies(
    plane: LocalPlane, tenant: Tenant, connect: Connect
) -> None:
    assert (await published(plane, tenant, connect)).receipt is None  # off by default

    await tenant.put_gateway(governance=GatewayGovernance(receipts=True))
    key = ReceiptKey.derive(DEV_SECRET_KEY, tenant.gateway.id, 1)
    await wait_for(lambda: plane.runtime.receipts.key(tenant.gateway.id) is not None, timeout=5)
    event = await published(plane, tenant, connect)

    assert event.kind == "mcp" and event.receipt is not None
    record = check_receipt(event.receipt.model_dump(), {key.kid: key.private.public_key()})
    assert record == record_of_request(event.model_dump(mode="json"))
    assert (record["kind"], record["trace_id"]) == ("mcp", event.trace_id)
    assert record["consumer_id"] == str(tenant.consumers["agent"].id)

    await tenant.put_gateway(governance=GatewayGovernance(receipts=False))
    assert (await published(plane, tenant, connect)).receipt is None
