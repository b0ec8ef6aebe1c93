"""The ``pii`` policy as a client sees it through the official SDKs: the upstream only
ever receives masked text, a blocked entity is a 422 the SDKs raise (OpenAI's and
Anthropic's shapes) with no upstream call, answers and streams masked on request, and
``restore`` giving each of many concurrent callers its own originals back."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import orjson
import pytest

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, serve_anthropic
from trustgate_testkit.proxy.mock_responses import serve_responses_mock
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import anthropic_sdk, openai_sdk, route_to, route_to_url
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

EMAIL = "jane.doe@example.com"


async def app_with(proxy: LocalProxy, tenant: Tenant, url: str, settings: dict[str, Any]) -> Tenant:
    routed = await route_to_url(proxy, tenant, url)
    await routed.add_policy("pii", "pii", settings, consumers=["app"])
    return routed


async def test_the_upstream_only_sees_masked_text(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    app = await app_with(proxy, tenant, upstream.url, {})
    await openai_sdk(proxy, app).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": f"The user is {EMAIL}"},
            {"role": "user", "content": [{"type": "text", "text": f"Write to {EMAIL}"}]},
        ],
    )
    sent = upstream.requests[-1]["body"]
    assert EMAIL not in orjson.dumps(sent).decode()
    assert sent["messages"][0]["content"] == "The user is <EMAIL_1>"


async def test_a_blocked_entity_is_a_422_and_the_upstream_is_never_called(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    app = await app_with(proxy, tenant, upstream.url, {"actions": {"email": "block"}})
    before = len(upstream.requests)
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        await openai_sdk(proxy, app).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{EMAIL} and {EMAIL}"}]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["entities"] == {"email": 2}
    assert "email (2)" in error["message"]
    assert EMAIL not in refused.value.response.text
    assert len(upstream.requests) == before


async def test_an_anthropic_client_gets_its_own_422() -> None:
    async with local_proxy() as running, serve_anthropic("claude") as claude:
        routed = await running.new_tenant()
        await routed.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await routed.add_consumer("app", ["claude"])
        await routed.add_policy("pii", "pii", {"action": "block"}, consumers=["app"])
        with pytest.raises(anthropic.UnprocessableEntityError) as refused:
            await anthropic_sdk(running, routed).messages.create(
                model="claude-sonnet-4",
                max_tokens=16,
                system=f"reply to {EMAIL}",
                messages=[{"role": "user", "content": "Hi"}],
            )
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["entities"] == {"email": 1}


async def test_answers_and_streams_are_masked_when_asked() -> None:
    async with local_proxy() as running, serve_mock(EMAIL) as upstream:
        routed = await route_to_url(running, await running.new_tenant(), upstream.url)
        await routed.add_policy(
            "pii", "pii", {"apply_to": ["request", "response"]}, consumers=["app"]
        )
        client = openai_sdk(running, routed)
        hi: Any = [{"role": "user", "content": "Hi"}]
        whole = await client.chat.completions.create(model="gpt-4o-mini", messages=hi)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
        deltas = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert whole.choices[0].message.content == "Hello from <EMAIL_1>"
    assert "".join(deltas) == "Hello from <EMAIL_1>"


async def test_restore_gives_each_concurrent_caller_its_own_originals(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    app = await app_with(proxy, tenant, upstream.url, {"restore": True})
    client = openai_sdk(proxy, app)

    async def ask(i: int, stream: bool) -> str:
        email = f"user{i}@example.com"
        messages: Any = [
            {"role": "user", "content": "Who?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "who", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": email},
        ]
        if not stream:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini-tools", messages=messages
            )
            return answer.choices[0].message.content or ""
        chunks = await client.chat.completions.create(
            model="gpt-4o-mini-tools", messages=messages, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])

    got = await asyncio.gather(*(ask(i, i % 2 == 0) for i in range(40)))
    assert got == [f"The weather is user{i}@example.com" for i in range(40)]
    sent = orjson.dumps([r["body"] for r in upstream.requests[-40:]]).decode()
    assert "@example.com" not in sent


async def test_the_bodies_telemetry_records_hold_only_masked_text(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream, events: Any
) -> None:
    app = await app_with(proxy, tenant, upstream.url, {"actions": {"us_ssn": "block"}})
    await app.put_gateway(telemetry={"capture_bodies": True})
    client = openai_sdk(proxy, app)
    async with events(None, app.gateway.id) as log:
        passed = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Mail {EMAIL}"}]
        )
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"{EMAIL} has SSN 536-22-1234"}],
            )
        traces = (passed.headers["x-ag-trace-id"], refused.value.response.headers["x-ag-trace-id"])
        recorded = [await wait_for(lambda t=t: log.by_trace(t), timeout=5) for t in traces]
    bodies = [found[0].request_body or "" for found in recorded]
    assert "<EMAIL_1>" in bodies[0] and "<EMAIL_1>" in bodies[1]
    assert all(EMAIL not in body and "536-22-1234" not in body for body in bodies)


async def test_a_masked_answer_is_recorded_masked_too() -> None:
    async with local_proxy() as running, serve_mock(EMAIL) as upstream:
        routed = await route_to_url(running, await running.new_tenant(), upstream.url)
        await routed.add_policy(
            "pii", "pii", {"apply_to": ["request", "response"]}, consumers=["app"]
        )
        await routed.put_gateway(telemetry={"capture_bodies": True})
        answer = await openai_sdk(running, routed).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        trace = answer.headers["x-ag-trace-id"]
        found = await wait_for(lambda: running.calls(trace), timeout=5)
    recorded = found[0].response_body or b""
    assert b"<EMAIL_1>" in recorded and EMAIL.encode() not in recorded


async def test_an_anthropic_stream_and_its_request_are_masked() -> None:
    async with local_proxy() as running, serve_anthropic(EMAIL) as claude:
        routed = await running.new_tenant()
        await routed.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await routed.add_consumer("app", ["claude"])
        await routed.add_policy(
            "pii", "pii", {"apply_to": ["request", "response"]}, consumers=["app"]
        )
        client = anthropic_sdk(running, routed)
        async with client.messages.stream(
            model="claude-sonnet-4",
            max_tokens=16,
            messages=[{"role": "user", "content": f"I am {EMAIL}"}],
        ) as stream:
            pieces = [text async for text in stream.text_stream]
        sent = orjson.dumps(claude.recorded[-1].body).decode()
    assert "".join(pieces) == "Hello from <EMAIL_1>"
    assert EMAIL not in sent and "I am <EMAIL_1>" in sent


async def test_a_responses_input_reaches_the_upstream_masked() -> None:
    async with local_proxy() as running, serve_responses_mock("agent") as mock:
        routed = await route_to(running, await running.new_tenant(), mock)
        await routed.add_policy("pii", "pii", {}, consumers=["app"])
        await openai_sdk(running, routed).responses.create(
            model="gpt-4o-mini",
            instructions=f"The user is {EMAIL}",
            input=[{"role": "user", "content": f"Mail {EMAIL}"}],
        )
        sent = orjson.dumps(mock.requests[-1].body).decode()
    assert EMAIL not in sent and "Mail <EMAIL_1>" in sent
