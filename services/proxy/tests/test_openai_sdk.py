"""The official OpenAI SDK, pointed at the proxy as in seed 000 ("From an application")."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import until_known

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()


def sdk(proxy: Any, tenant: Any, consumer_name: str = "app", key: str | None = None) -> AsyncOpenAI:
    consumer = tenant.consumers[consumer_name]
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(consumer),
            api_key="unused",
            max_retries=0,
            timeout=10,
            default_headers={
                "X-AG-Gateway-Slug": tenant.slug,
                "X-AG-API-Key": key if key is not None else tenant.keys[consumer_name],
            },
        )
    )


@pytest.fixture
async def app_tenant(tenant: Any, upstream: Any, proxy: Any) -> Any:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    return tenant


async def test_sdk_gets_a_completion(proxy: Any, app_tenant: Any, upstream: Any) -> None:
    client = sdk(proxy, app_tenant)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from mock"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert len(raw.headers["x-ag-trace-id"]) == 32
    assert raw.headers["x-selected-provider"] == "openai_compatible"
    assert raw.headers["x-selected-model"] == "gpt-4o-mini"
    assert "x-request-id" not in raw.headers
    assert raw.headers["openai-processing-ms"] == "5"
    assert raw.headers["x-content-type-options"] == "nosniff"
    # the provider key comes from the registry (decrypted in the proxy), never the client
    sent = upstream.requests[-1]
    assert sent["headers"]["Authorization"].endswith("sk-upstream-test-0123456789")
    assert "X-AG-API-Key" not in sent["headers"]


async def test_streamed_completion_arrives_before_the_upstream_finishes(
    proxy: Any, app_tenant: Any, upstream: Any
) -> None:
    client = sdk(proxy, app_tenant)
    stream = await client.chat.completions.create(
        model="gpt-4o-slow", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    chunks = aiter(stream)
    first = await asyncio.wait_for(anext(chunks), 5)
    assert first.choices[0].delta.content == "Hello"
    assert not upstream.finished.is_set()  # the upstream is still holding the rest
    upstream.release.set()
    rest = [c async for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == " from mock"
    # the proxy asked the upstream for usage on its own behalf (for the request event) and
    # kept the usage-only chunk from a client that did not ask for it
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in rest) and all(c.usage is None for c in rest)


async def test_streamed_usage_reaches_a_client_that_asks_for_it(
    proxy: Any, app_tenant: Any
) -> None:
    stream = await sdk(proxy, app_tenant).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18


async def test_tool_calls_pass_through(proxy: Any, app_tenant: Any) -> None:
    client = sdk(proxy, app_tenant)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    completion = await client.chat.completions.create(
        model="gpt-4o-tools", messages=messages, tools=tools
    )
    call = completion.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"

    stream = await client.chat.completions.create(
        model="gpt-4o-tools", messages=messages, tools=tools, stream=True
    )
    deltas = [c async for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert deltas[0].choices[0].delta.tool_calls[0].function.name == "get_weather"  # type: ignore[index,union-attr]
    args = "".join(d.choices[0].delta.tool_calls[0].function.arguments or "" for d in deltas)  # type: ignore[index,union-attr,misc]
    assert args == '{"city":"Paris"}'  # the arguments arrive in fragments


async def test_missing_or_unknown_key_raises_authentication_error(
    proxy: Any, app_tenant: Any
) -> None:
    for key in ("", "ag_not-a-real-key"):
        with pytest.raises(openai.AuthenticationError) as err:
            await sdk(proxy, app_tenant, key=key).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert err.value.status_code == 401
        assert err.value.body == "unauthenticated" or err.value.response.json() == {
            "error": "unauthenticated",
            "message": "unauthenticated",
        }


async def test_key_of_another_consumer_is_forbidden(proxy: Any, app_tenant: Any) -> None:
    await app_tenant.add_consumer("other", ["primary"])
    await until_known(proxy, app_tenant)
    with pytest.raises(openai.PermissionDeniedError) as err:
        await sdk(proxy, app_tenant, "app", key=app_tenant.keys["other"]).models.list()
    assert err.value.response.json()["error"] == "forbidden"


async def test_unknown_consumer_slug_raises_authentication_error(
    proxy: Any, app_tenant: Any
) -> None:
    client = sdk(proxy, app_tenant)
    client.base_url = f"{proxy.url}/NoSuchOne/v1"  # type: ignore[assignment]
    with pytest.raises(openai.AuthenticationError):  # as a bad key: consumers stay unlisted
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )


async def test_upstream_rate_limit_is_relayed_with_retry_after(proxy: Any, app_tenant: Any) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        await sdk(proxy, app_tenant).chat.completions.create(
            model="gpt-4o-ratelimited", messages=[{"role": "user", "content": "x"}]
        )
    response = err.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/json"
    assert "x-request-id" not in response.headers
    assert response.json()["error"]["code"] == "rate_limit_exceeded"  # verbatim


async def test_upstream_cut_mid_stream_gives_the_sdk_an_error_event(
    proxy: Any, app_tenant: Any
) -> None:
    stream = await sdk(proxy, app_tenant).chat.completions.create(
        model="gpt-4o-cut", messages=[{"role": "user", "content": "x"}], stream=True
    )
    got: list[Any] = []
    with pytest.raises(openai.APIError, match="upstream stream terminated unexpectedly"):
        async for chunk in stream:
            got.append(chunk)
    assert got and got[0].choices[0].delta.content == "Hello"


async def test_models_lists_what_the_consumer_may_use(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await tenant.add_registry("open", upstream.url)
    await tenant.add_registry("policed", upstream.url)
    await tenant.add_consumer(
        "app", ["open", "policed"], policies={"policed": (["gpt-4o", "gpt-4o-mini"], "gpt-4o")}
    )
    await until_known(proxy, tenant)
    models = [m.id async for m in sdk(proxy, tenant).models.list()]
    assert sorted(models) == ["gpt-4o", "gpt-4o-mini", "mock-1"]


async def test_streams_and_completions_survive_many_concurrent_calls(
    proxy: Any, app_tenant: Any
) -> None:
    client = sdk(proxy, app_tenant)

    async def one(i: int) -> str:
        if i % 2:
            s = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
        c = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        return c.choices[0].message.content or ""

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert set(results) == {"Hello from mock"}
    await wait_for(lambda: proxy.runtime.publisher.pending == 0, timeout=5)


async def test_seed_base_url_without_v1_works(proxy: Any, app_tenant: Any) -> None:
    """Seed 000's snippet: ``base_url="http://localhost:8081/my-app"``, no ``/v1``."""
    consumer = app_tenant.consumers["app"]
    client = tracked(
        AsyncOpenAI(
            base_url=f"{proxy.url}/{consumer.slug}",
            api_key="unused",
            max_retries=0,
            default_headers={
                "X-AG-Gateway-Slug": app_tenant.slug,
                "X-AG-API-Key": app_tenant.keys["app"],
            },
        )
    )
    resp = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    assert resp.choices[0].message.content == "Hello from mock"
    models = await client.models.list()
    assert models.data
