"""Sessions: the session id a client sends (or the gateway mints) is echoed and recorded;
a Responses client continues a conversation through ``previous_response_id`` whatever
provider serves it — Anthropic here, translated — the gateway keeping each answer with
its input for ``SESSION_STORE_TTL``, in Redis or in the proxy's memory.

The official ``openai`` SDK is the client; the mocks record what they receive, so each
test checks what the provider saw.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from trustgate_proxy.services.sessions import (
    ConversationStore,
    LocalConversations,
    conversation_key,
)
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures, local_proxy
from trustgate_testkit.proxy.mock_anthropic import (
    ANTHROPIC_KEY,
    AnthropicMock,
    serve_anthropic,
)
from trustgate_testkit.proxy.mock_responses import RESPONSES_KEY, MockResponses, serve_responses
from trustgate_testkit.proxy.sdk_clients import gateway_headers, openai_sdk
from trustgate_testkit.proxy.server import until_known
from trustgate_testkit.proxy.tenant import Tenant

# ``tenant`` and ``events`` of the in-process proxy, on this module's ``proxy``
_, tenant, bus, events = local_fixtures()

CLAUDE = "claude-3-5-haiku-latest"
HELLO = "Hello from anthropic"


@asynccontextmanager
async def open_proxy(
    request: pytest.FixtureRequest, backend: str, **env: Any
) -> AsyncIterator[LocalProxy]:
    """The proxy keeping conversations in its memory, or in Redis (shared by replicas)."""
    if backend == "redis":
        env["REDIS_URL"] = str(request.getfixturevalue("infra").redis_url)
    async with local_proxy(**env) as running:
        yield running


@pytest_asyncio.fixture
async def proxy(request: pytest.FixtureRequest) -> AsyncIterator[LocalProxy]:
    async with open_proxy(request, getattr(request, "param", "memory")) as running:
        yield running


both_stores = pytest.mark.parametrize("proxy", ["memory", "redis"], indirect=True)


@pytest_asyncio.fixture
async def claude() -> AsyncIterator[AnthropicMock]:
    async with serve_anthropic() as mock:
        yield mock


async def add_claude(tenant: Tenant, claude: AnthropicMock) -> None:
    await tenant.add_registry(
        "claude",
        "",
        provider="anthropic",
        options={"base_url": claude.url},
        auth={"type": "api_key", "api_key": {"api_key": ANTHROPIC_KEY}},
    )


async def add_responses(tenant: Tenant, mock: MockResponses) -> None:
    await tenant.add_registry(
        "openai",
        "",
        provider="openai",
        options={"base_url": mock.url, "api": "responses"},
        auth={"type": "api_key", "api_key": {"api_key": RESPONSES_KEY}},
    )


async def on_claude(proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock) -> AsyncOpenAI:
    await add_claude(tenant, claude)
    await tenant.add_consumer("app", ["claude"])
    await until_known(proxy, tenant)
    return openai_sdk(proxy, tenant)


async def ask(client: AsyncOpenAI, stream: bool, **params: Any) -> Any:
    """A Response, read whole or from the stream's final event."""
    params.setdefault("model", CLAUDE)
    if not stream:
        return await client.responses.create(**params)
    events = [e async for e in await client.responses.create(stream=True, **params)]
    assert events[-1].type == "response.completed"
    return events[-1].response  # type: ignore[union-attr]


def turns(claude: AnthropicMock) -> list[tuple[str, str]]:
    """The conversation the provider received last: (role, text) per message."""
    out = []
    for message in claude.recorded[-1].body["messages"]:
        content = message["content"]
        text = (
            content
            if isinstance(content, str)
            else "".join(b.get("text", "") for b in content if b.get("type") == "text")
        )
        out.append((message["role"], text))
    return out


async def until(store: ConversationStore, key: str, held: bool, within: float = 5.0) -> None:
    """Until ``store`` holds ``key`` (or no longer does)."""
    async with asyncio.timeout(within):
        while (await store.get(key) is not None) != held:  # noqa: ASYNC110 - a TTL, no event
            await asyncio.sleep(0.01)


# -- previous_response_id -------------------------------------------------------------------
@both_stores
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_responses_conversation_continues_on_anthropic_with_the_earlier_turns(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock, stream: bool
) -> None:
    client = await on_claude(proxy, tenant, claude)
    first = await ask(client, stream, input="My name is Ada.", instructions="Be brief.")
    assert first.output_text == HELLO
    second = await ask(client, stream, input="What is my name?", previous_response_id=first.id)
    assert second.output_text == HELLO
    assert turns(claude) == [
        ("user", "My name is Ada."),
        ("assistant", HELLO),
        ("user", "What is my name?"),
    ]
    sent = claude.recorded[-1]
    assert "previous_response_id" not in sent.body
    assert sent.system is None  # instructions are the request's own, as the API has it
    third = [{"role": "user", "content": "Thanks."}]
    await ask(client, stream, input=third, previous_response_id=second.id)
    assert turns(claude) == [
        ("user", "My name is Ada."),
        ("assistant", HELLO),
        ("user", "What is my name?"),
        ("assistant", HELLO),
        ("user", "Thanks."),
    ]


@both_stores
async def test_a_tool_call_is_answered_with_its_output_alone(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock
) -> None:
    client = await on_claude(proxy, tenant, claude)
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    model = CLAUDE + "-tools"
    asked = await client.responses.create(model=model, input="Weather in Paris?", tools=[tool])
    call = next(item for item in asked.output if item.type == "function_call")
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    answered = await client.responses.create(
        model=model, previous_response_id=asked.id, input=[output], tools=[tool]
    )
    assert answered.output_text == "The weather is sunny"
    roles = [m["role"] for m in claude.recorded[-1].body["messages"]]
    assert roles == ["user", "assistant", "user"]  # question, tool_use, tool_result


async def test_a_conversation_started_on_openai_continues_on_anthropic(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock
) -> None:
    async with serve_responses() as gpt:
        await add_responses(tenant, gpt)
        await add_claude(tenant, claude)
        await tenant.add_consumer("app", ["openai", "claude"])
        await until_known(proxy, tenant)
        client = openai_sdk(proxy, tenant)
        first = await client.responses.create(model="@openai/gpt-4o-mini", input="Hi, I am Ada.")
        assert first.output_text == "Hello from responses"
        await client.responses.create(
            model=f"@anthropic/{CLAUDE}", input="Who am I?", previous_response_id=first.id
        )
        assert turns(claude) == [
            ("user", "Hi, I am Ada."),
            ("assistant", "Hello from responses"),
            ("user", "Who am I?"),
        ]


async def test_an_id_the_gateway_does_not_hold_passes_through_untouched(
    proxy: LocalProxy, tenant: Tenant
) -> None:
    async with serve_responses() as gpt:
        await add_responses(tenant, gpt)
        await tenant.add_consumer("app", ["openai"])
        await until_known(proxy, tenant)
        await openai_sdk(proxy, tenant).responses.create(
            model="gpt-4o-mini", input="And then?", previous_response_id="resp_held_by_openai"
        )
        sent = gpt.requests[-1].body
        assert sent["previous_response_id"] == "resp_held_by_openai"
        assert sent["input"] == "And then?"


async def test_a_conversation_is_not_continued_by_another_consumer(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock
) -> None:
    client = await on_claude(proxy, tenant, claude)
    await tenant.add_consumer("other", ["claude"])
    await until_known(proxy, tenant)
    first = await client.responses.create(model=CLAUDE, input="My name is Ada.")
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_sdk(proxy, tenant, "other").responses.create(
            model=CLAUDE, input="What is my name?", previous_response_id=first.id
        )
    assert "previous_response_id" in str(caught.value)
    assert len(claude.recorded) == 1  # refused before reaching the provider


async def test_an_answer_asked_not_to_be_stored_is_not_kept(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock
) -> None:
    client = await on_claude(proxy, tenant, claude)
    first = await client.responses.create(model=CLAUDE, input="My name is Ada.", store=False)
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(
            model=CLAUDE, input="What is my name?", previous_response_id=first.id
        )
    key = conversation_key(tenant.gateway.id, tenant.consumers["app"].id, first.id)
    assert await proxy.runtime.sessions.store.get(key) is None


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_conversation_is_forgotten_after_the_session_store_ttl(
    request: pytest.FixtureRequest, claude: AnthropicMock, backend: str
) -> None:
    async with open_proxy(request, backend, SESSION_STORE_TTL="300ms") as running:
        tenant = await running.new_tenant()
        client = await on_claude(running, tenant, claude)
        first = await client.responses.create(model=CLAUDE, input="My name is Ada.")
        key = conversation_key(tenant.gateway.id, tenant.consumers["app"].id, first.id)
        store = running.runtime.sessions.store
        await until(store, key, held=True)
        await until(store, key, held=False)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model=CLAUDE, input="What is my name?", previous_response_id=first.id
            )
        assert "previous_response_id" in str(caught.value)
        assert len(claude.recorded) == 1  # refused before reaching the provider


def test_the_in_process_store_is_bounded_and_forgets_the_oldest_first() -> None:
    now = [0.0]
    store = LocalConversations(60.0, max_entries=3, max_bytes=10, clock=lambda: now[0])
    for key in ("a", "b", "c", "d"):
        store.put(key, b"xy")
    assert len(store) == 3
    assert asyncio.run(store.get("a")) is None
    store.put("big", b"1234567")  # 4 entries, 2 + 2 + 2 + 7 bytes: the oldest two go
    assert asyncio.run(store.get("b")) is None and asyncio.run(store.get("c")) is None
    assert asyncio.run(store.get("d")) == b"xy"
    assert asyncio.run(store.get("big")) == b"1234567"
    store.put("huge", b"x" * 11)  # larger than the whole store: never kept
    assert asyncio.run(store.get("huge")) is None
    now[0] = 61.0
    assert asyncio.run(store.get("big")) is None
    assert len(store) == 1  # "d" expired too, dropped when next read


# -- the session id ---------------------------------------------------------------------------
async def chat(
    proxy: LocalProxy, tenant: Tenant, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{proxy.base_url(tenant.consumers['app'])}/chat/completions",
            headers={**gateway_headers(tenant), **(headers or {})},
            json={"model": CLAUDE, "messages": [{"role": "user", "content": "Hi"}], **body},
        )


async def test_the_session_id_a_client_sends_is_echoed_and_recorded(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock, events: Any
) -> None:
    await on_claude(proxy, tenant, claude)
    async with events(bus, tenant.gateway.id) as log:
        answer = await chat(proxy, tenant, {"X-Session-Id": "conv-42"})
        assert answer.status_code == 200
        assert answer.headers["x-session-id"] == "conv-42"
        (event,) = log.by_trace(answer.headers["x-ag-trace-id"])
        assert event.session_id == "conv-42"


async def test_a_gateway_with_sessions_enabled_mints_an_id_per_call_without_one(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock, events: Any
) -> None:
    await tenant.put_gateway(session_config={"enabled": True})
    await on_claude(proxy, tenant, claude)
    async with events(bus, tenant.gateway.id) as log:
        first, second = await chat(proxy, tenant), await chat(proxy, tenant)
        ids = [uuid.UUID(a.headers["x-session-id"]) for a in (first, second)]
        assert ids[0] != ids[1]
        assert {i.version for i in ids} == {7}
        recorded = [log.by_trace(a.headers["x-ag-trace-id"])[0].session_id for a in (first, second)]
        assert recorded == [str(i) for i in ids]


async def test_without_sessions_enabled_no_id_is_made_up(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock, events: Any
) -> None:
    await on_claude(proxy, tenant, claude)
    async with events(bus, tenant.gateway.id) as log:
        answer = await chat(proxy, tenant)
        assert answer.status_code == 200
        assert "x-session-id" not in answer.headers
        assert log.by_trace(answer.headers["x-ag-trace-id"])[0].session_id is None


async def test_the_gateways_header_and_body_parameter_carry_the_session(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock, events: Any
) -> None:
    await tenant.put_gateway(
        session_config={
            "enabled": True,
            "header_name": "X-Conversation-Id",
            "body_param_name": "session_id",
        }
    )
    await on_claude(proxy, tenant, claude)
    async with events(bus, tenant.gateway.id) as log:
        by_header = await chat(proxy, tenant, {"X-Conversation-Id": "from-header"})
        assert by_header.headers["x-conversation-id"] == "from-header"
        assert "x-session-id" not in by_header.headers
        by_body = await chat(proxy, tenant, session_id="from-body")
        assert by_body.status_code == 200, by_body.text
        assert by_body.headers["x-conversation-id"] == "from-body"
        assert "session_id" not in claude.recorded[-1].body  # the gateway's, not Claude's
        traces = [a.headers["x-ag-trace-id"] for a in (by_header, by_body)]
        assert [log.by_trace(t)[0].session_id for t in traces] == ["from-header", "from-body"]


async def test_a_session_id_that_is_too_long_or_not_text_is_a_400(
    proxy: LocalProxy, tenant: Tenant, claude: AnthropicMock
) -> None:
    await tenant.put_gateway(session_config={"body_param_name": "session_id"})
    await on_claude(proxy, tenant, claude)
    long = await chat(proxy, tenant, {"X-Session-Id": "x" * 257})
    assert long.status_code == 400
    assert long.json()["error"] == "invalid_request"
    assert "x-session-id" in long.json()["message"]
    number = await chat(proxy, tenant, session_id=42)
    assert number.status_code == 400
    assert "session_id" in number.json()["message"]
    assert claude.recorded == []
