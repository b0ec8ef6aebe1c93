"""An upstream that never answers is a gateway timeout: 504 in the client's error shape
(``upstream_timeout``; Anthropic's ``timeout_error``), after the provider timeout, and the
call records the timeout (its request event's ``error_kind``, an attempt with no answer)."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from anthropic import AsyncAnthropic

from trustgate_testkit.proxy.local import LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant

CHAT = {"model": "m-hang", "messages": [{"role": "user", "content": "x"}]}


async def _impatient_tenant(proxy: LocalProxy, upstream: MockUpstream) -> Tenant:
    tenant = await proxy.new_tenant()
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    return tenant


async def test_an_upstream_that_never_answers_is_a_504_recorded_as_a_timeout(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(PROVIDER_REQUEST_TIMEOUT="200ms") as proxy:
        tenant = await _impatient_tenant(proxy, upstream)
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(
                f"{proxy.url}/{tenant.consumers['app'].slug}/v1/chat/completions",
                json=CHAT,
                headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
            )
        assert resp.status_code == 504
        assert resp.json() == {"error": "upstream_timeout", "message": "upstream timed out"}
        (call,) = proxy.calls(resp.headers["x-ag-trace-id"])
        assert (call.status, call.error_kind) == (504, "upstream_timeout")
        assert [(a.outcome, a.status) for a in call.attempts] == [("retryable", 0)]


async def test_anthropic_clients_get_a_timeout_error_they_can_read(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(PROVIDER_REQUEST_TIMEOUT="200ms") as proxy:
        tenant = await _impatient_tenant(proxy, upstream)  # translated to OpenAI Chat
        client = tracked(
            AsyncAnthropic(
                base_url=f"{proxy.url}/{tenant.consumers['app'].slug}",
                api_key=tenant.keys["app"],
                default_headers={"X-AG-Gateway-Slug": tenant.slug},
                max_retries=0,
                timeout=10,
            )
        )
        with pytest.raises(anthropic.APIStatusError) as err:
            await client.messages.create(
                model="m-hang", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    assert err.value.status_code == 504
    assert err.value.body == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "upstream timed out"},
    }
