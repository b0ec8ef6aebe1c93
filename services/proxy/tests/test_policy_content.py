"""Content policies as a client sees them: ``cors`` (a browser's preflight answered
before any key check, by Host or by header; the CORS headers on answers and errors; a
disallowed origin gets none), ``model_allowlist`` and ``tool_allowlist`` (403s the SDKs
raise as ``PermissionDeniedError``, substitution, filtered tools reaching the upstream),
and ``regex_replace`` (requests rewritten before the upstream sees them; answers rewritten
whole and streamed, a match split across two events included, in Chat, Messages and
Responses). ``observe`` never changes a response."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
import pytest_asyncio

from trustgate_core.events import RequestEvent
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, serve_anthropic
from trustgate_testkit.proxy.mock_responses import serve_responses_mock
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import (
    CHAT_WEATHER_TOOL,
    MESSAGES_WEATHER_TOOL,
    anthropic_sdk,
    gateway_headers,
    openai_sdk,
    route_to,
    route_to_url,
)
from trustgate_testkit.proxy.server import RunningProxy
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

HI: Any = [{"role": "user", "content": "Hi"}]
APP = "https://app.example.com"
#: what the official JS SDKs ask a preflight for (openai: Authorization and x-stainless-*;
#: anthropic: x-api-key, anthropic-version and its browser opt-in header)
SDK_HEADERS = (
    "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,"
    "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
    "x-stainless-runtime-version,x-stainless-timeout,anthropic-version,"
    "anthropic-dangerous-direct-browser-access,x-api-key,x-ag-api-key"
)
#: the mocks answer "Hello from <name>" in deltas "Hello", " from", " <name>": this rule's
#: match starts in the second event and ends in the third
SPLIT_RULE = {"pattern": "from Agent", "replacement": "[redacted]"}
AGENT = "Agent-Smith"


@pytest_asyncio.fixture
async def app(proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream) -> Tenant:
    """Consumer ``app`` routed to the OpenAI-compatible mock."""
    return await route_to_url(proxy, tenant, upstream.url)


async def event_of(log: Any, trace: str) -> RequestEvent:
    found: list[RequestEvent] = await wait_for(lambda: log.by_trace(trace), timeout=5)
    return found[0]


def preflight_headers(tenant: Tenant, origin: str = APP) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": SDK_HEADERS,
        "X-AG-Gateway-Slug": tenant.slug,
    }


def cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


# --------------------------------------------------------------------------- cors


async def test_a_preflight_without_a_key_gets_204_and_the_cors_headers(
    proxy: LocalProxy, app: Tenant
) -> None:
    await app.add_policy("cors", "cors", {"allowed_origins": [APP]}, consumers=["app"])
    url = f"{proxy.base_url(app.consumers['app'])}/chat/completions"
    async with httpx.AsyncClient() as client:
        answer = await client.options(url, headers=preflight_headers(app))
    assert answer.status_code == 204, answer.text
    headers = answer.headers
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-headers"].split(", ") == SDK_HEADERS.split(",")
    assert "POST" in headers["access-control-allow-methods"].split(", ")
    assert headers["access-control-max-age"] == "600"
    assert "Origin" in headers["vary"]
    assert "access-control-allow-credentials" not in headers


async def test_a_preflight_is_answered_through_subdomain_discovery(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(GATEWAY_DISCOVERY_MODE="subdomain") as running:
        routed = await route_to_url(running, await running.new_tenant(), upstream.url)
        await routed.add_policy("cors", "cors", {"allowed_origins": [APP]}, consumers=["app"])
        headers = preflight_headers(routed)
        del headers["X-AG-Gateway-Slug"]
        headers["Host"] = f"{routed.slug}.gw.test"
        url = f"{running.base_url(routed.consumers['app'])}/messages"
        async with httpx.AsyncClient() as client:
            answer = await client.options(url, headers=headers)
            assert answer.status_code == 204
            assert answer.headers["access-control-allow-origin"] == APP
            # the browser's real request then reaches the upstream, its answer readable
            posted = await client.post(
                f"{running.base_url(routed.consumers['app'])}/chat/completions",
                headers={
                    "Host": headers["Host"],
                    "Origin": APP,
                    "X-AG-API-Key": routed.keys["app"],
                },
                json={"model": "gpt-4o-mini", "messages": HI},
            )
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == APP
    assert "X-AG-Trace-Id" in posted.headers["access-control-expose-headers"]


async def test_a_disallowed_origin_gets_no_cors_headers_and_its_request_is_refused(
    proxy: LocalProxy, app: Tenant, upstream: MockUpstream, events: Any
) -> None:
    await app.add_policy("cors", "cors", {"allowed_origins": [APP]}, consumers=["app"])
    evil = "https://evil.example.net"
    url = f"{proxy.base_url(app.consumers['app'])}/chat/completions"
    async with httpx.AsyncClient() as client:
        preflight = await client.options(url, headers=preflight_headers(app, evil))
        wrong_header = await client.options(
            url, headers={**preflight_headers(app), "Access-Control-Request-Headers": "x-evil"}
        )
    assert preflight.status_code == 403
    assert preflight.json() == {
        "error": "cors_origin_not_allowed",
        "message": f"origin {evil} is not allowed",
    }
    assert cors_headers(preflight) == {}
    assert wrong_header.status_code == 403 and cors_headers(wrong_header) == {}
    assert wrong_header.json()["error"] == "cors_header_not_allowed"

    sdk = openai_sdk(proxy, app)
    async with events(None, app.gateway.id) as log:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=HI, extra_headers={"Origin": evil}
            )
        event = await event_of(log, refused.value.response.headers["x-ag-trace-id"])
    assert refused.value.status_code == 403
    assert cors_headers(refused.value.response) == {}
    assert (event.status, event.error_kind) == (403, "cors_origin_not_allowed")
    assert upstream.requests == []
    # a client that is not a browser (no Origin) is not a CORS matter
    assert (await sdk.chat.completions.create(model="gpt-4o-mini", messages=HI)).choices


async def test_credentials_echo_the_origin_and_errors_carry_the_cors_headers(
    proxy: LocalProxy, app: Tenant
) -> None:
    await app.add_policy(
        "cors",
        "cors",
        {"allowed_origins": [APP], "allow_credentials": True, "expose_headers": ["X-Extra"]},
        consumers=["app"],
    )
    url = f"{proxy.base_url(app.consumers['app'])}/chat/completions"
    async with httpx.AsyncClient() as client:
        preflight = await client.options(url, headers=preflight_headers(app))
        bad_key = await client.post(
            url,
            headers={**gateway_headers(app), "X-AG-API-Key": "ag_wrong", "Origin": APP},
            json={"model": "gpt-4o-mini", "messages": HI},
        )
        no_key = await client.post(
            url,
            headers={"X-AG-Gateway-Slug": app.slug, "Origin": APP},
            json={"model": "gpt-4o-mini", "messages": HI},
        )
    assert preflight.headers["access-control-allow-origin"] == APP
    assert preflight.headers["access-control-allow-credentials"] == "true"
    # the browser app can read why it was refused, a key wrong or missing
    for refused in (bad_key, no_key):
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == APP
        assert refused.headers["access-control-allow-credentials"] == "true"
        assert "X-Extra" in refused.headers["access-control-expose-headers"]


async def test_a_wildcard_origin_is_answered_with_a_star(proxy: LocalProxy, app: Tenant) -> None:
    await app.add_policy("cors", "cors", {"allowed_origins": ["*"]}, consumers=["app"])
    url = f"{proxy.base_url(app.consumers['app'])}/chat/completions"
    async with httpx.AsyncClient() as client:
        preflight = await client.options(url, headers=preflight_headers(app, "https://x.io"))
        posted = await client.post(
            url,
            headers={**gateway_headers(app), "Origin": "https://x.io"},
            json={"model": "gpt-4o-mini", "messages": HI},
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == "*"


async def test_an_observed_cors_policy_lets_a_disallowed_origin_through_and_records_it(
    proxy: LocalProxy, app: Tenant, events: Any
) -> None:
    await app.add_policy(
        "cors", "cors", {"allowed_origins": [APP]}, consumers=["app"], mode="observe"
    )
    async with events(None, app.gateway.id) as log:
        raw = await openai_sdk(proxy, app).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, extra_headers={"Origin": "https://evil.io"}
        )
        event = await event_of(log, raw.headers["x-ag-trace-id"])
    assert raw.status_code == 200 and "access-control-allow-origin" not in raw.headers
    assert [(p.name, p.decision, p.error) for p in event.policy_chain] == [
        ("cors", "observe", "cors_origin_not_allowed")
    ]


# --------------------------------------------------------------------------- model_allowlist


async def test_a_model_off_the_list_is_a_permission_denied_error_in_both_sdks(
    proxy: LocalProxy, tenant: Tenant, upstream: MockUpstream
) -> None:
    async with serve_anthropic() as claude:
        await tenant.add_registry("openai", upstream.url)
        await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await tenant.add_consumer("app", ["openai", "claude"])
        await tenant.add_policy(
            "models", "model_allowlist", {"allowed_models": ["gpt-4o*"]}, consumers=["app"]
        )
        with pytest.raises(openai.PermissionDeniedError) as chat:
            await openai_sdk(proxy, tenant).chat.completions.create(model="o1-pro", messages=HI)
        with pytest.raises(anthropic.PermissionDeniedError) as messages:
            await anthropic_sdk(proxy, tenant).messages.create(
                model="claude-sonnet-4", max_tokens=16, messages=HI
            )
        assert claude.recorded == []
    assert chat.value.status_code == 403
    assert chat.value.response.json() == {
        "error": {"type": "model_not_allowed", "model": "o1-pro", "allowed": ["gpt-4o*"]}
    }
    assert messages.value.response.json()["error"]["model"] == "claude-sonnet-4"
    assert upstream.requests == []
    ok = await openai_sdk(proxy, tenant).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert ok.choices[0].message.content == "Hello from mock"


async def test_a_disallowed_model_is_substituted_and_observe_changes_nothing(
    proxy: LocalProxy, app: Tenant, upstream: MockUpstream, events: Any
) -> None:
    settings = {
        "allowed_models": ["gpt-4o-mini"],
        "behavior_on_disallowed": "substitute",
        "substitute_with": "gpt-4o-mini",
    }
    await app.add_policy("models", "model_allowlist", settings, consumers=["app"])
    answer = await openai_sdk(proxy, app).chat.completions.create(model="o1-pro", messages=HI)
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o-mini"
    assert answer.model == "gpt-4o-mini"

    await app.put_policy("models", mode="observe")
    async with events(None, app.gateway.id) as log:
        raw = await openai_sdk(proxy, app).chat.completions.with_raw_response.create(
            model="o1-pro", messages=HI
        )
        event = await event_of(log, raw.headers["x-ag-trace-id"])
    assert upstream.requests[-1]["body"]["model"] == "o1-pro"
    assert [(p.decision, p.error) for p in event.policy_chain] == [("observe", "model_substituted")]


# --------------------------------------------------------------------------- tool_allowlist


def chat_tool(name: str) -> Any:
    return {**CHAT_WEATHER_TOOL, "function": {**CHAT_WEATHER_TOOL["function"], "name": name}}


async def test_denied_tools_never_reach_the_upstream(
    proxy: LocalProxy, app: Tenant, upstream: MockUpstream
) -> None:
    await app.add_policy("tools", "tool_allowlist", {"deny_tools": ["delete_*"]}, consumers=["app"])
    await openai_sdk(proxy, app).chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        tools=[chat_tool("get_weather"), chat_tool("delete_everything")],
        tool_choice={"type": "function", "function": {"name": "delete_everything"}},
    )
    sent = upstream.requests[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert "tool_choice" not in sent
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await openai_sdk(proxy, app).chat.completions.create(
            model="gpt-4o-mini", messages=HI, tools=[chat_tool("delete_everything")]
        )
    assert refused.value.response.json() == {
        "error": {
            "type": "no_tools_allowed",
            "requested": ["delete_everything"],
            "allowed_after_filter": [],
        }
    }
    assert len(upstream.requests) == 1


async def test_anthropic_tools_are_filtered_and_an_emptied_list_can_be_dropped(
    proxy: LocalProxy, tenant: Tenant
) -> None:
    async with serve_anthropic() as claude:
        await tenant.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await tenant.add_consumer("app", ["claude"])
        await tenant.add_policy(
            "tools",
            "tool_allowlist",
            {"allow_tools": ["search"], "on_empty_after_filter": "strip_tools_field"},
            consumers=["app"],
        )
        answer = await anthropic_sdk(proxy, tenant).messages.create(
            model="claude-sonnet-4",
            max_tokens=16,
            messages=HI,
            tools=[MESSAGES_WEATHER_TOOL],
            tool_choice={"type": "tool", "name": "get_weather"},
        )
        sent = claude.recorded[-1].body
    assert "tools" not in sent and "tool_choice" not in sent
    assert answer.content[0].type == "text"


# --------------------------------------------------------------------------- regex_replace


async def test_a_request_is_rewritten_before_the_upstream_sees_it(
    proxy: LocalProxy, app: Tenant, upstream: MockUpstream
) -> None:
    await app.add_policy(
        "mask",
        "regex_replace",
        {"target": "request", "rules": [{"pattern": r"\d{4}-\d{4}", "replacement": "[card]"}]},
        consumers=["app"],
    )
    await openai_sdk(proxy, app).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "card 1111-2222 on file"},
            {"role": "user", "content": [{"type": "text", "text": "pay with 3333-4444"}]},
        ],
    )
    sent = upstream.requests[-1]["body"]["messages"]
    assert sent[0]["content"] == "card [card] on file"
    assert sent[1]["content"] == [{"type": "text", "text": "pay with [card]"}]


async def add_response_rule(tenant: Tenant, mode: str | None = None) -> None:
    await tenant.add_policy(
        "mask",
        "regex_replace",
        {"target": "response", "rules": [SPLIT_RULE]},
        consumers=["app"],
        mode=mode,
    )


async def test_a_chat_answer_is_rewritten_whole_and_streamed_across_events() -> None:
    async with local_proxy() as running, serve_mock(AGENT) as upstream:
        routed = await route_to_url(running, await running.new_tenant(), upstream.url)
        await add_response_rule(routed)
        client = openai_sdk(running, routed)
        whole = await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    assert whole.choices[0].message.content == "Hello [redacted]-Smith"
    assert "".join(d or "" for d in deltas) == "Hello [redacted]-Smith"


async def test_an_anthropic_stream_is_rewritten_across_events() -> None:
    async with local_proxy() as running, serve_anthropic(AGENT) as claude:
        routed = await running.new_tenant()
        await routed.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await routed.add_consumer("app", ["claude"])
        await add_response_rule(routed)
        client = anthropic_sdk(running, routed)
        async with client.messages.stream(
            model="claude-sonnet-4", max_tokens=16, messages=HI
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        whole = await client.messages.create(model="claude-sonnet-4", max_tokens=16, messages=HI)
    assert "".join(pieces) == "Hello [redacted]-Smith"
    assert final.content[0].type == "text" and final.content[0].text == "Hello [redacted]-Smith"
    assert final.stop_reason == "end_turn"
    assert whole.content[0].type == "text" and whole.content[0].text == "Hello [redacted]-Smith"


async def test_a_responses_stream_is_rewritten_across_events() -> None:
    async with local_proxy() as running, serve_responses_mock(AGENT) as mock:
        routed = await route_to(running, await running.new_tenant(), mock)
        await add_response_rule(routed)
        client = openai_sdk(running, routed)
        async with client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
        whole = await client.responses.create(model="gpt-4o-mini", input="Hi")
    assert "".join(deltas) == "Hello [redacted]-Smith"
    assert final.output_text == "Hello [redacted]-Smith"
    assert whole.output_text == "Hello [redacted]-Smith"


async def test_an_observed_response_rule_never_changes_the_answer() -> None:
    async with local_proxy() as running, serve_mock(AGENT) as upstream:
        routed = await route_to_url(running, await running.new_tenant(), upstream.url)
        await add_response_rule(routed, mode="observe")
        client = openai_sdk(running, routed)
        whole = await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    assert whole.choices[0].message.content == f"Hello from {AGENT}"
    assert deltas[:3] == ["Hello", " from", f" {AGENT}"]


async def test_a_translated_stream_is_rewritten_in_the_client_s_format() -> None:
    async with local_proxy() as running, serve_anthropic(AGENT) as claude:
        routed = await running.new_tenant()
        await routed.add_registry("claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY)
        await routed.add_consumer("app", ["claude"])
        await add_response_rule(routed)
        stream = await openai_sdk(running, routed).chat.completions.create(
            model="claude-sonnet-4", messages=HI, stream=True
        )
        deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(d or "" for d in deltas) == "Hello [redacted]-Smith"
