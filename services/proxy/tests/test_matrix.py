"""Every client format x every provider: the official SDKs (``openai`` chat and responses,
``anthropic`` messages), plain and streamed, against the proxy routed to each provider mock
registered in ``trustgate_testkit.proxy.providers.MOCKS`` (each speaks its provider's exact
wire format; see the mocks' docstrings for the fixtures' provenance).

Per combination: plain or streamed text (a stream's text arrives through the SDK's own
iterator in the provider's deltas, ``Hello`` / `` from`` / `` <name>``), the system prompt
and an image part reaching the provider, a tool call round trip (call → tool result →
final answer), stop reasons mapped (natural, tool use, max tokens), a 429 translated with
its ``Retry-After``, usage in the SDK's answer and in every request event (cached 3 too),
and a stream cut mid-way surfacing as an error from the SDK's parser. The per-provider SDK
files (test_anthropic/bedrock/gemini/responses.py) keep only what is specific to their
provider; add generic checks here.
The registry maps ``gpt-4o-mini`` to the provider's own model id (model mapping).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest

from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import anthropic_sdk, openai_sdk, route_to
from trustgate_testkit.proxy.server import RunningProxy
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()

# The provider model ids the registries map ``gpt-4o-mini`` to (the mocks answer by suffix).
PROVIDER_MODEL = {
    "anthropic": "claude-mock-1",  # not a real id: the SDK warns about deprecated ones
    "bedrock": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "gemini": "gemini-2.5-flash",
    "vertex": "gemini-2.5-flash",
}
SYSTEM = "You answer in one line."
RESULT = "sunny in Paris"
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8cfc0f01f0005000200a5c1b1f30000000049454e44ae426082"
    )
).decode()
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CLIENTS = ("chat", "responses", "messages")


@dataclass
class Answer:
    text: str = ""
    deltas: int = 0  # text deltas seen by a stream's iterator
    pieces: list[str] = field(default_factory=list)  # those deltas' texts
    stop: str | None = None  # the format's own stop reason / status
    input_tokens: int | None = None  # every prompt token, cached ones included
    output_tokens: int | None = None
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, args)
    args_deltas: int = 0


# -- the three clients ------------------------------------------------------------------


class Client:
    """One SDK: the same conversation steps, in its own request and answer shapes."""

    natural: str
    tool_stop: str
    length_stop: str

    def __init__(self, proxy: RunningProxy, tenant: Tenant) -> None:
        raise NotImplementedError

    async def ask(
        self, model: str, *, stream: bool, image: bool = False, max_tokens: int = 200
    ) -> Answer:
        raise NotImplementedError

    async def tool_round(
        self, model: str, *, stream: bool, result: tuple[str, str] | None = None
    ) -> Answer:
        """Ask with the weather tool; with ``result`` (call id, text), answer the call."""
        raise NotImplementedError

    async def ratelimited(self, model: str) -> str | None:
        """The ``Retry-After`` of the 429 the SDK raised."""
        raise NotImplementedError

    async def cut(self, model: str) -> list[str]:
        """Stream a broken answer; the deltas seen before the SDK raised."""
        raise NotImplementedError


class ChatClient(Client):
    natural, tool_stop, length_stop = "stop", "tool_calls", "length"

    def __init__(self, proxy: RunningProxy, tenant: Tenant) -> None:
        self.sdk = openai_sdk(proxy, tenant, timeout=20)

    def _messages(self, image: bool) -> list[Any]:
        content: Any = "Hi"
        if image:
            content = [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ]
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]

    async def _run(self, stream: bool, **kwargs: Any) -> Answer:
        answer = Answer()
        if not stream:
            r = await self.sdk.chat.completions.create(**kwargs)
            msg = r.choices[0].message
            answer.text = msg.content or ""
            answer.stop = r.choices[0].finish_reason
            for c in msg.tool_calls or []:
                fn: Any = c.function  # type: ignore[union-attr]
                answer.calls.append((c.id, fn.name, json.loads(fn.arguments)))
            if r.usage is not None:
                answer.input_tokens = r.usage.prompt_tokens
                answer.output_tokens = r.usage.completion_tokens
            return answer
        chunks = await self.sdk.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        calls: dict[int, list[str]] = {}
        async for chunk in chunks:
            if chunk.usage is not None:
                answer.input_tokens = chunk.usage.prompt_tokens
                answer.output_tokens = chunk.usage.completion_tokens
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                answer.text += choice.delta.content
                answer.pieces.append(choice.delta.content)
                answer.deltas += 1
            for d in choice.delta.tool_calls or []:
                slot = calls.setdefault(d.index, ["", "", ""])
                if d.id:
                    slot[0] = d.id
                if d.function and d.function.name:
                    slot[1] = d.function.name
                if d.function and d.function.arguments:
                    slot[2] += d.function.arguments
                    answer.args_deltas += 1
            if choice.finish_reason:
                answer.stop = choice.finish_reason
        answer.calls = [(i, n, json.loads(a)) for i, n, a in calls.values()]
        return answer

    async def ask(
        self, model: str, *, stream: bool, image: bool = False, max_tokens: int = 200
    ) -> Answer:
        return await self._run(
            stream, model=model, messages=self._messages(image), max_tokens=max_tokens
        )

    async def tool_round(
        self, model: str, *, stream: bool, result: tuple[str, str] | None = None
    ) -> Answer:
        messages = self._messages(False)
        if result is not None:
            call_id, text = result
            messages += [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": text},
            ]
        tools: Any = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ]
        return await self._run(stream, model=model, messages=messages, tools=tools)

    async def ratelimited(self, model: str) -> str | None:
        with pytest.raises(openai.RateLimitError) as caught:
            await self.ask(model, stream=False)
        return caught.value.response.headers.get("retry-after")

    async def cut(self, model: str) -> list[str]:
        seen: list[str] = []
        with pytest.raises(openai.APIError):
            chunks = await self.sdk.chat.completions.create(
                model=model, messages=self._messages(False), stream=True
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
        return seen


class ResponsesClient(ChatClient):
    natural, tool_stop, length_stop = "completed", "completed", "incomplete:max_output_tokens"

    def _input(self, image: bool) -> list[Any]:
        content: list[Any] = [{"type": "input_text", "text": "What is this?" if image else "Hi"}]
        if image:
            content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"})
        return [{"role": "user", "content": content}]

    @staticmethod
    def _read(r: Any, answer: Answer) -> None:
        answer.stop = r.status
        if r.status == "incomplete" and r.incomplete_details is not None:
            answer.stop = f"incomplete:{r.incomplete_details.reason}"
        if r.usage is not None:
            answer.input_tokens = r.usage.input_tokens
            answer.output_tokens = r.usage.output_tokens
        for item in r.output:
            if item.type == "function_call":
                answer.calls.append((item.call_id, item.name, json.loads(item.arguments)))

    async def _run(self, stream: bool, **kwargs: Any) -> Answer:
        answer = Answer()
        if not stream:
            r = await self.sdk.responses.create(**kwargs)
            answer.text = r.output_text
            self._read(r, answer)
            return answer
        events = await self.sdk.responses.create(**kwargs, stream=True)
        async for event in events:
            if event.type == "response.output_text.delta":
                answer.text += event.delta
                answer.pieces.append(event.delta)
                answer.deltas += 1
            elif event.type == "response.function_call_arguments.delta":
                answer.args_deltas += 1
            elif event.type in ("response.completed", "response.incomplete"):
                self._read(event.response, answer)
        return answer

    async def ask(
        self, model: str, *, stream: bool, image: bool = False, max_tokens: int = 200
    ) -> Answer:
        return await self._run(
            stream,
            model=model,
            instructions=SYSTEM,
            input=self._input(image),
            max_output_tokens=max_tokens,
        )

    async def tool_round(
        self, model: str, *, stream: bool, result: tuple[str, str] | None = None
    ) -> Answer:
        items = self._input(False)
        if result is not None:
            call_id, text = result
            items += [
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": call_id, "output": text},
            ]
        tools: Any = [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": WEATHER_SCHEMA,
                "strict": False,
            }
        ]
        return await self._run(stream, model=model, instructions=SYSTEM, input=items, tools=tools)

    async def cut(self, model: str) -> list[str]:
        seen: list[str] = []
        with pytest.raises(openai.APIError):
            events = await self.sdk.responses.create(
                model=model, instructions=SYSTEM, input=self._input(False), stream=True
            )
            async for event in events:
                if event.type == "response.output_text.delta":
                    seen.append(event.delta)
        return seen


class MessagesClient(Client):
    natural, tool_stop, length_stop = "end_turn", "tool_use", "max_tokens"

    def __init__(self, proxy: RunningProxy, tenant: Tenant) -> None:
        self.sdk = anthropic_sdk(proxy, tenant, timeout=20)

    def _messages(self, image: bool) -> list[Any]:
        content: Any = "Hi"
        if image:
            content = [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ]
        return [{"role": "user", "content": content}]

    @staticmethod
    def _usage(usage: Any, answer: Answer) -> None:
        if usage is None:
            return
        if getattr(usage, "input_tokens", None) is not None:
            answer.input_tokens = (
                usage.input_tokens
                + (usage.cache_read_input_tokens or 0)
                + (usage.cache_creation_input_tokens or 0)
            )
        if usage.output_tokens is not None:
            answer.output_tokens = usage.output_tokens

    async def _run(self, stream: bool, **kwargs: Any) -> Answer:
        answer = Answer()
        kwargs.setdefault("max_tokens", 200)
        if not stream:
            m = await self.sdk.messages.create(**kwargs)
            for block in m.content:
                if block.type == "text":
                    answer.text += block.text
                elif block.type == "tool_use":
                    answer.calls.append((block.id, block.name, block.input))
            answer.stop = m.stop_reason
            self._usage(m.usage, answer)
            return answer
        events = await self.sdk.messages.create(**kwargs, stream=True)
        calls: dict[int, list[str]] = {}
        async for event in events:
            if event.type == "message_start":
                self._usage(event.message.usage, answer)
            elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                calls[event.index] = [event.content_block.id, event.content_block.name, ""]
            elif event.type == "content_block_delta":
                if event.delta.type == "text_delta":
                    answer.text += event.delta.text
                    answer.pieces.append(event.delta.text)
                    answer.deltas += 1
                elif event.delta.type == "input_json_delta":
                    calls[event.index][2] += event.delta.partial_json
                    answer.args_deltas += 1
            elif event.type == "message_delta":
                answer.stop = event.delta.stop_reason
                answer.output_tokens = event.usage.output_tokens
                if event.usage.input_tokens is not None:
                    self._usage(event.usage, answer)
        answer.calls = [(i, n, json.loads(a or "{}")) for i, n, a in calls.values()]
        return answer

    async def ask(
        self, model: str, *, stream: bool, image: bool = False, max_tokens: int = 200
    ) -> Answer:
        return await self._run(
            stream,
            model=model,
            system=SYSTEM,
            messages=self._messages(image),
            max_tokens=max_tokens,
        )

    async def tool_round(
        self, model: str, *, stream: bool, result: tuple[str, str] | None = None
    ) -> Answer:
        messages = self._messages(False)
        if result is not None:
            call_id, text = result
            messages += [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": call_id,
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call_id, "content": text}],
                },
            ]
        tools: Any = [
            {
                "name": "get_weather",
                "description": "Weather by city",
                "input_schema": WEATHER_SCHEMA,
            }
        ]
        return await self._run(stream, model=model, system=SYSTEM, messages=messages, tools=tools)

    async def ratelimited(self, model: str) -> str | None:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await self.ask(model, stream=False)
        return caught.value.response.headers.get("retry-after")

    async def cut(self, model: str) -> list[str]:
        seen: list[str] = []
        with pytest.raises(anthropic.APIError):
            events = await self.sdk.messages.create(
                model=model, max_tokens=100, messages=self._messages(False), stream=True
            )
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    seen.append(event.delta.text)
        return seen


CLIENT_TYPES: dict[str, type[Client]] = {
    "chat": ChatClient,
    "responses": ResponsesClient,
    "messages": MessagesClient,
}


# -- the matrix -------------------------------------------------------------------------


@pytest.fixture(params=sorted(MOCKS))
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ProviderMock]]:
    async with MOCKS[request.param]() as mock:
        yield request.param, mock


async def _routed(proxy: RunningProxy, tenant: Tenant, name: str, mock: ProviderMock) -> str:
    """A registry for the mock with ``gpt-4o-mini`` mapped to its model id; the id."""
    model = PROVIDER_MODEL.get(name, "gpt-4o")
    await route_to(proxy, tenant, mock, options={"model_mapping": {"gpt-4o-mini": model}})
    return model


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("client_name", CLIENTS)
async def test_every_client_format_reaches_every_provider(
    proxy: RunningProxy,
    tenant: Tenant,
    provider: tuple[str, ProviderMock],
    client_name: str,
    stream: bool,
    bus: Any,
    events: Any,
) -> None:
    name, mock = provider
    model = await _routed(proxy, tenant, name, mock)
    client = CLIENT_TYPES[client_name](proxy, tenant)
    calls = 0
    async with events(bus, tenant.gateway.id) as log:
        # text, through the alias the registry maps, with a system prompt
        answer = await client.ask("gpt-4o-mini", stream=stream)
        calls += 1
        assert answer.text == f"Hello from {mock.name}"
        assert answer.stop == client.natural
        assert (answer.input_tokens, answer.output_tokens) == (11, 7)
        if stream:  # incremental, through the SDK's own iterator, as the provider sent it
            assert answer.deltas >= 2
            assert answer.pieces == ["Hello", " from", f" {mock.name}"]
        sent = mock.requests[-1]
        assert sent.system is not None and SYSTEM in sent.system
        assert not sent.has_image

        if mock.supports_images:
            answer = await client.ask(model, stream=stream, image=True)
            calls += 1
            assert mock.requests[-1].has_image
            assert answer.text == f"Hello from {mock.name}"

        # a tool call round trip
        answer = await client.tool_round(f"{model}-tools", stream=stream)
        calls += 1
        assert answer.stop == client.tool_stop
        assert [(n, a) for _, n, a in answer.calls] == [("get_weather", {"city": "Paris"})]
        if stream and mock.wire != "gemini":  # Gemini sends a function call whole
            assert answer.args_deltas >= 2
        call_id = answer.calls[0][0]
        answer = await client.tool_round(f"{model}-tools", stream=stream, result=(call_id, RESULT))
        calls += 1
        assert mock.requests[-1].tool_result == RESULT
        assert answer.text == f"The weather is {RESULT}" and "Paris" in answer.text
        assert answer.stop == client.natural and not answer.calls

        # finished by the token limit
        answer = await client.ask(f"{model}-long", stream=stream, max_tokens=5)
        calls += 1
        assert answer.stop == client.length_stop

        if stream:
            # cut mid-way: the first delta arrives, then the SDK's parser raises
            seen = await client.cut(f"{model}-cut")
            calls += 1
            assert seen[:1] == ["Hello"]
        else:
            assert await client.ratelimited(f"{model}-ratelimited") == "7"
            calls += 1

        await wait_for(lambda: len(log.events) >= calls, timeout=15)
    assert len(log.events) == calls
    for event in log.events:
        assert event.provider == mock.provider
        if event.status == 200 and event.error_kind is None:
            assert event.usage is not None, event
            assert (event.usage.prompt_tokens, event.usage.completion_tokens) == (11, 7)
            assert event.usage.cached_input_tokens == 3
        else:
            assert event.error_kind in (
                "upstream_status",
                "stream_interrupted",
                "upstream_stream_error",
            )
    assert {e.requested_model for e in log.events} >= {"gpt-4o-mini", f"{model}-tools"}
    first = next(e for e in log.events if e.requested_model == "gpt-4o-mini")
    assert first.model == model  # the alias went out as the provider's id
