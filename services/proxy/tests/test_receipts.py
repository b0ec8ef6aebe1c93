"""Usage receipts: with the gateway's ``governance.receipts`` on, every request event the
proxy publishes carries its usage record signed with the gateway's derived key; with it
off, none does; a rotation signs with the new key from the next event on."""

from __future__ import annotations

from typing import Any

import httpx

from trustgate_core.events.requests import RequestEvent
from trustgate_core.models import GatewayGovernance
from trustgate_core.receipts.keys import ReceiptKey
from trustgate_core.receipts.record import record_of_request
from trustgate_core.receipts.signing import check_receipt
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.sdk_clients import route_to_url


async def post(proxy: Any, tenant: Any, stream: bool = False) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(
            f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": stream,
            },
            headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
        )


async def receipts_on(proxy: Any, tenant: Any, version: int = 1) -> ReceiptKey:
    """Receipts on for the tenant's gateway, once the proxy signs with key ``version``;
    the key the admin derives and lists for it."""
    governance = GatewayGovernance(receipts=True, receipt_key_version=version)
    await tenant.put_gateway(governance=governance)
    expected = ReceiptKey.derive(DEV_SECRET_KEY, tenant.gateway.id, version)

    def signing() -> bool:
        key = proxy.runtime.receipts.key(tenant.gateway.id)
        return key is not None and key.kid == expected.kid

    await wait_for(signing, timeout=5)
    return expected


def verified(event: RequestEvent, key: ReceiptKey) -> dict[str, Any]:
    """The event's signed record, checked against the key and against the event itself."""
    assert event.receipt is not None
    record = check_receipt(event.receipt.model_dump(), {key.kid: key.private.public_key()})
    assert record == record_of_request(event.model_dump(mode="json"))
    return record


async def test_events_of_a_gateway_with_receipts_carry_a_receipt_that_verifies(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    key = await receipts_on(proxy, tenant)
    async with events(bus, tenant.gateway.id) as log:
        plain = await post(proxy, tenant)
        streamed = await post(proxy, tenant, stream=True)
        await wait_for(lambda: len(log.events) >= 2, timeout=5)
    assert plain.status_code == streamed.status_code == 200
    by_trace = {e.trace_id: e for e in log.events}
    record = verified(by_trace[plain.headers["x-ag-trace-id"]], key)
    assert record["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_input_tokens": 3,
    }
    assert (record["gateway_id"], record["status"]) == (str(tenant.gateway.id), 200)
    assert record["consumer_id"] == str(tenant.consumers["app"].id)
    assert record["cost"] is not None and "e" not in record["cost"]["total_usd"]
    streamed_record = verified(by_trace[streamed.headers["x-ag-trace-id"]], key)
    assert streamed_record["usage"]["total_tokens"] == 18


async def test_events_of_a_gateway_without_receipts_carry_none(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    async with events(bus, tenant.gateway.id) as log:
        await post(proxy, tenant)
        await wait_for(lambda: log.events, timeout=5)
    assert log.events[0].receipt is None
    assert proxy.runtime.receipts.key(tenant.gateway.id) is None


async def test_turning_receipts_off_stops_signing_and_a_rotation_signs_with_the_new_key(
    proxy: Any, tenant: Any, upstream: Any, bus: Any, events: Any
) -> None:
    await route_to_url(proxy, tenant, upstream.url)
    first = await receipts_on(proxy, tenant)
    second = await receipts_on(proxy, tenant, version=2)
    assert second.kid != first.kid
    async with events(bus, tenant.gateway.id) as log:
        await post(proxy, tenant)
        await wait_for(lambda: log.events, timeout=5)
    assert log.events[0].receipt is not None and log.events[0].receipt.kid == second.kid
    verified(log.events[0], second)

    await tenant.put_gateway(governance=GatewayGovernance(receipts=False, receipt_key_version=2))
    await wait_for(lambda: proxy.runtime.receipts.key(tenant.gateway.id) is None, timeout=5)
    async with events(bus, tenant.gateway.id) as log:
        await post(proxy, tenant)
        await wait_for(lambda: log.events, timeout=5)
    assert log.events[0].receipt is None
