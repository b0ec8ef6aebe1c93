"""Every error answered on an Anthropic route (``/v1/messages`` and its ``count_tokens``)
is in Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}`` with
Anthropic's error types, whether the gateway refused the call or the upstream failed:
the official SDK raises the matching exception with the body it parsed."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from anthropic import AsyncAnthropic

from trustgate_testkit.proxy.local import LocalProxy, local_fixtures, local_proxy
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

REFUSED = "http://127.0.0.1:9/v1"  # discard port: nothing listens, the connect is refused
MESSAGE = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


def kind_of(body: Any) -> str:
    """The Anthropic error type of ``body``, which must be exactly Anthropic's shape with a
    message."""
    assert isinstance(body, dict) and set(body) == {"type", "error"}, body
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return str(body["error"]["type"])


async def _tenant(proxy: LocalProxy, upstream: MockUpstream) -> Tenant:
    """``app`` routed to the OpenAI mock (translated), ``picky`` allowed model ``m`` only,
    ``empty`` with no registry, ``down`` routed to nothing that listens."""
    tenant = await proxy.new_tenant()
    await tenant.add_registry("up", upstream.url)
    await tenant.add_registry("down", REFUSED)
    await tenant.add_consumer("app", ["up"])
    await tenant.add_consumer("picky", ["up"], policies={"up": (["m"], None)})
    await tenant.add_consumer("empty", [])
    await tenant.add_consumer("down", ["down"])
    return tenant


def sdk(proxy: LocalProxy, tenant: Tenant, consumer: str = "app", key: str | None = None) -> Any:
    return tracked(
        AsyncAnthropic(
            base_url=f"{proxy.url}/{tenant.consumers[consumer].slug}",
            api_key=key or tenant.keys[consumer],
            default_headers={"X-AG-Gateway-Slug": tenant.slug},
            max_retries=0,
            timeout=10,
        )
    )


@pytest.mark.parametrize(
    ("consumer", "key_of", "model", "raises", "status", "kind"),
    [
        ("app", "made-up", "m", anthropic.AuthenticationError, 401, "authentication_error"),
        ("app", "picky", "m", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("picky", None, "other", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("app", None, "m-ratelimited", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("empty", None, "m", anthropic.InternalServerError, 503, "api_error"),
        ("down", None, "m", anthropic.InternalServerError, 502, "api_error"),
    ],
)
async def test_the_sdk_reads_each_refusal_and_failure_as_anthropics_error(
    proxy: LocalProxy,
    upstream: MockUpstream,
    consumer: str,
    key_of: str | None,
    model: str,
    raises: type[anthropic.APIStatusError],
    status: int,
    kind: str,
) -> None:
    tenant = await _tenant(proxy, upstream)
    key = None if key_of is None else tenant.keys.get(key_of, "ag_" + "q" * 43)
    with pytest.raises(raises) as err:
        await sdk(proxy, tenant, consumer, key).messages.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert (err.value.status_code, kind_of(err.value.body)) == (status, kind)


async def _raw(
    proxy: LocalProxy, tenant: Tenant, route: str, *, method: str = "POST", **kwargs: Any
) -> httpx.Response:
    headers = {"X-AG-Gateway-Slug": tenant.slug, "x-api-key": tenant.keys["app"]}
    url = f"{proxy.url}/{tenant.consumers['app'].slug}{route}"
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.request(method, url, headers=headers, **kwargs)


async def test_bad_requests_are_anthropic_invalid_request_errors(
    proxy: LocalProxy, upstream: MockUpstream
) -> None:
    tenant = await _tenant(proxy, upstream)
    answers = {
        "not JSON": await _raw(proxy, tenant, "/v1/messages", content=b"{not json"),
        "not an object": await _raw(proxy, tenant, "/v1/messages", json=[1]),
        "modelId": await _raw(proxy, tenant, "/v1/messages", json={**MESSAGE, "modelId": "x"}),
        "count_tokens on an OpenAI route": await _raw(
            proxy, tenant, "/v1/messages/count_tokens", json=MESSAGE
        ),
    }
    for case, resp in answers.items():
        assert (resp.status_code, kind_of(resp.json())) == (400, "invalid_request_error"), case


async def test_wrong_method_and_unknown_path_are_in_anthropics_shape(
    proxy: LocalProxy, upstream: MockUpstream
) -> None:
    tenant = await _tenant(proxy, upstream)
    wrong = await _raw(proxy, tenant, "/v1/messages", method="GET")
    assert (wrong.status_code, kind_of(wrong.json())) == (405, "invalid_request_error")
    assert wrong.headers["allow"] == "POST"
    unknown = await _raw(proxy, tenant, "/v1/messages/batches", json=MESSAGE)
    assert (unknown.status_code, kind_of(unknown.json())) == (404, "not_found_error")


async def test_a_body_too_large_is_anthropics_request_too_large(upstream: MockUpstream) -> None:
    async with local_proxy(PROXY_MAX_BODY_BYTES=2000) as small:
        tenant = await _tenant(small, upstream)
        big = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 5000}]}
        with pytest.raises(anthropic.APIStatusError) as err:
            await sdk(small, tenant).messages.create(**big)
    assert (err.value.status_code, kind_of(err.value.body)) == (413, "request_too_large")
