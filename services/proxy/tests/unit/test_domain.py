"""Pure logic: credentials order, discovery, route selection, usage extraction, providers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest

from trustgate_core.access import api_key_from_headers, discover_gateway, ensure_active
from trustgate_core.errors import (
    Forbidden,
    InvalidModel,
    ModelNotAllowed,
    NoBackendAvailable,
    ProviderCredentialError,
    Unauthenticated,
)
from trustgate_core.events import GatewayEvent, RequestEvent
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway, ModelPolicy, Registry, RegistryBinding
from trustgate_core.replica import ReplicaState
from trustgate_proxy.adapters.providers import BUILDERS
from trustgate_proxy.adapters.providers.base import normalise_base_url
from trustgate_proxy.domain.call import Call, event_payload
from trustgate_proxy.domain.formats import USAGE
from trustgate_proxy.domain.routing import RoundRobin, bindings_of, resolve_routes
from trustgate_proxy.services.forward import prepare_body

NOW = datetime.now(UTC)
GW = uuid7()


def registry(name: str, provider: str = "openai", **extra: Any) -> Registry:
    return Registry(
        id=uuid7(),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name=name,
        provider=provider,
        **extra,
    )


def consumer(regs: list[Registry], policies: list[ModelPolicy] | None = None) -> Consumer:
    return Consumer(
        id=uuid7(),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="c",
        slug="abcdEFGH",
        registries=[RegistryBinding(registry_id=r.id) for r in regs],
        model_policies=policies or [],
    )


def test_api_key_sources_in_reference_order() -> None:
    assert api_key_from_headers("ag_a", "ag_b", "Bearer ag_c") == "ag_a"
    assert api_key_from_headers(None, "ag_b", "Bearer ag_c") == "ag_b"
    assert api_key_from_headers(None, None, "Bearer ag_c") == "ag_c"
    assert api_key_from_headers(None, None, "bearer ag_c") == "ag_c"
    assert api_key_from_headers(None, None, "Bearer eyJhbGciOi") is None  # OAuth, not a key
    assert api_key_from_headers(None, None, None) is None


def _state_with(gateway: Gateway) -> ReplicaState:
    state = ReplicaState()
    state.apply(
        GatewayEvent(
            op="upsert",
            revision=1,
            gateway_id=gateway.id,
            entity_id=gateway.id,
            occurred_at=NOW,
            entity=gateway,
        )
    )
    return state


def test_discovery_header_wins_then_host_subdomain() -> None:
    gw = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="demo")
    state = _state_with(gw)
    assert discover_gateway(state, "header", "demo", None, "llm.test") is gw
    assert discover_gateway(state, "header", None, "demo.llm.test:8081", "llm.test") is gw
    with pytest.raises(Unauthenticated):  # an unknown header slug fails even with a good host
        discover_gateway(state, "header", "nope", "demo.llm.test", "llm.test")
    with pytest.raises(Unauthenticated):
        discover_gateway(state, "header", None, "a.demo.llm.test", "llm.test")
    with pytest.raises(Unauthenticated):
        discover_gateway(state, "header", None, None, "llm.test")
    # subdomain mode ignores the header
    assert discover_gateway(state, "subdomain", "nope", "demo.llm.test", "llm.test") is gw


def test_disabled_gateway_is_forbidden() -> None:
    gw = Gateway(
        id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="demo", status="disabled"
    )
    found = discover_gateway(_state_with(gw), "header", "demo", None, "llm.test")
    with pytest.raises(Forbidden):
        ensure_active(found)


def test_round_robin_across_registries_that_serve_the_model() -> None:
    a, b, c = registry("a"), registry("b"), registry("c")
    cons = consumer([a, b, c], [ModelPolicy(registry_id=c.id, allowed=["other"])])
    binds = bindings_of(cons, {r.id: r for r in (a, b, c)}, frozenset(BUILDERS))
    candidates = resolve_routes(cons.id, binds, "gpt-4o")
    rr = RoundRobin()
    picked = [rr.pick(candidates).binding.registry.name for _ in range(4)]
    assert picked == ["a", "b", "a", "b"]  # c's allow-list does not permit gpt-4o


def test_model_intents() -> None:
    a = registry("a", "openai")
    b = registry("b", "groq")
    policies = [
        ModelPolicy(registry_id=a.id, allowed=["gpt-4o", "gpt-4o-mini"], default="gpt-4o"),
        ModelPolicy(registry_id=b.id, allowed=["llama"]),
    ]
    cons = consumer([a, b], policies)
    binds = bindings_of(cons, {a.id: a, b.id: b}, frozenset(BUILDERS))
    # no model: only bindings that can fill one in (a's default)
    assert [(r.binding.provider, r.model) for r in resolve_routes(cons.id, binds, None).routes] == [
        ("openai", "gpt-4o")
    ]
    assert [r.model for r in resolve_routes(cons.id, binds, "auto").routes] == ["gpt-4o"]
    pinned = resolve_routes(cons.id, binds, "@groq/llama").routes
    assert [(r.binding.provider, r.model, r.pinned) for r in pinned] == [("groq", "llama", True)]
    with pytest.raises(ModelNotAllowed):
        resolve_routes(cons.id, binds, "@mistral/large")  # provider not bound
    with pytest.raises(ModelNotAllowed):
        resolve_routes(cons.id, binds, "claude")  # no allow-list permits it
    with pytest.raises(InvalidModel):
        resolve_routes(cons.id, binds, "@groq")
    with pytest.raises(NoBackendAvailable):
        resolve_routes(cons.id, (), "gpt-4o")


def test_a_registry_model_mapping_serves_aliases_as_the_provider_model_id() -> None:
    openai = registry("openai", "openai")
    claude = registry(
        "claude",
        "anthropic",
        provider_options={
            "model_mapping": {
                "gpt-4o-mini": "claude-3-5-haiku-latest",
                "fast": "claude-x",
                "bad": 3,
            }
        },
    )
    strict = registry(
        "strict",
        "bedrock",
        provider_options={"model_mapping": {"gpt-4o-mini": "amazon.nova-lite-v1:0"}},
    )
    cons = consumer(
        [openai, claude, strict],
        [
            ModelPolicy(registry_id=claude.id, allowed=None, default="fast"),
            ModelPolicy(registry_id=strict.id, allowed=["amazon.nova-pro-v1:0"]),
        ],
    )
    binds = bindings_of(cons, {r.id: r for r in (openai, claude, strict)}, frozenset(BUILDERS))
    assert binds[1].mapping == {"gpt-4o-mini": "claude-3-5-haiku-latest", "fast": "claude-x"}
    # a bare alias: every binding that serves it; mapped ones get their provider's id
    routes = resolve_routes(cons.id, binds, "gpt-4o-mini").routes
    assert [(r.binding.registry.name, r.model) for r in routes] == [
        ("openai", None),
        ("claude", "claude-3-5-haiku-latest"),
        ("strict", "amazon.nova-lite-v1:0"),  # the alias counts though the allow-list lacks it
    ]
    # an unmapped model goes as sent to the bindings whose allow-list permits it
    routes = resolve_routes(cons.id, binds, "gpt-4o").routes
    assert [(r.binding.registry.name, r.model) for r in routes] == [
        ("openai", None),
        ("claude", None),
    ]
    # defaults and pinned names are mapped too
    routes = resolve_routes(cons.id, binds, "auto").routes
    assert [(r.binding.registry.name, r.model) for r in routes] == [("claude", "claude-x")]
    pinned = resolve_routes(cons.id, binds, "@anthropic/gpt-4o-mini").routes
    assert [(r.model, r.pinned) for r in pinned] == [("claude-3-5-haiku-latest", True)]


def test_unsupported_or_disabled_registries_are_not_candidates() -> None:
    a = registry("a", "cohere")
    b = registry("b", "openai", enabled=False)
    cons = consumer([a, b])
    assert bindings_of(cons, {a.id: a, b.id: b}, frozenset(BUILDERS)) == ()


def test_usage_from_json_body_and_stream_tail() -> None:
    body = orjson.dumps(
        {
            "choices": [{"message": {"content": 'a "usage": {} trap'}}],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 2,
                "total_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 1, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 4},
            },
        }
    )
    reader = USAGE["openai_chat"]

    def event(usage: Any) -> Any:
        return usage.as_event() if usage is not None else None

    assert event(reader.from_body(body)) == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "cached_input_tokens": 1,
        "reasoning_output_tokens": 4,
    }
    tail = (
        b'data: {"choices":[{"delta":{}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert event(reader.from_stream(b"", tail)) == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }
    assert reader.from_stream(b"", b'data: {"usage":null}\n\n') is None
    assert reader.from_body(b"no usage here") is None


def test_stream_requests_ask_for_usage_and_keep_other_options() -> None:
    a = registry("a")
    cons = consumer([a])
    binds = bindings_of(cons, {a.id: a}, frozenset(BUILDERS))
    route = resolve_routes(cons.id, binds, "m").routes[0]
    raw = b'{"model":"m","stream":true,"stream_options":{"x":1},"unknown":2}'
    body, _, injected = prepare_body(raw, orjson.loads(raw), route, stream=True)
    assert injected
    assert orjson.loads(body) == {
        "model": "m",
        "stream": True,
        "stream_options": {"x": 1, "include_usage": True},
        "unknown": 2,
    }
    raw = b'{"model":"m","messages":[]}'
    assert prepare_body(raw, orjson.loads(raw), route, stream=False) == (raw, "m", False)


def test_provider_urls_and_credentials() -> None:
    creds = {"type": "api_key", "api_key": {"api_key": "sk-1"}}
    groq = BUILDERS["groq"](registry("g", "groq"), creds)
    assert groq.chat_url("llama") == "https://api.groq.com/openai/v1/chat/completions"
    assert groq.headers["Authorization"] == "Bearer sk-1"
    assert (
        BUILDERS["mistral"](registry("m", "mistral"), creds)
        .chat_url(None)
        .startswith("https://api.mistral.ai/v1/")
    )
    assert BUILDERS["deepseek"](registry("d", "deepseek"), creds).chat_url(None) == (
        "https://api.deepseek.com/v1/chat/completions"
    )
    custom = BUILDERS["openai_compatible"](
        registry(
            "c",
            "openai_compatible",
            provider_options={"base_url": "http://vllm:8000", "headers": {"X-Team": "a"}},
        ),
        {"type": "api_key", "api_key": {"header_name": "X-Key", "header_value": "v"}},
    )
    assert custom.chat_url("m") == "http://vllm:8000/v1/chat/completions"
    assert custom.headers == {"Content-Type": "application/json", "X-Team": "a", "X-Key": "v"}
    param = BUILDERS["openai"](
        registry("p", "openai", provider_options={"base_url": "https://x.test/v1/"}),
        {"type": "api_key", "api_key": {"param_name": "key", "param_value": "s k"}},
    )
    assert param.chat_url("m") == "https://x.test/v1/chat/completions?key=s+k"
    azure = BUILDERS["azure"](
        registry("z", "azure"),
        {
            "type": "azure",
            "azure": {"endpoint": "https://r.openai.azure.com/api/projects/p", "api_key": "k"},
        },
    )
    assert azure.chat_url("my deploy") == (
        "https://r.openai.azure.com/openai/deployments/my%20deploy/chat/completions"
        "?api-version=2024-10-21"
    )
    assert azure.headers["api-key"] == "k"
    with pytest.raises(ProviderCredentialError):
        BUILDERS["openai"](registry("o", "openai"), None)
    with pytest.raises(ProviderCredentialError):
        BUILDERS["openai_compatible"](registry("o", "openai_compatible"), None)  # no base_url
    assert normalise_base_url("http://h:1/v1/chat/completions") == "http://h:1/v1"


def test_event_payload_matches_the_request_event_contract() -> None:
    call = Call("ab" * 16, "POST", "/v1/chat/completions", 10.0, 1_700_000_000.0)
    call.gateway_id = UUID(int=1)
    call.status = 200
    call.upstream_start, call.upstream_ttfb, call.upstream_end = 10.001, 10.003, 10.004
    call.ended = 10.005
    call.usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    event = RequestEvent.model_validate_json(orjson.dumps(event_payload(call)))
    assert event.timings.total_ms == 5.0
    assert event.timings.upstream_ms == 3.0 and event.timings.upstream_ttfb_ms == 2.0
    assert event.timings.gateway_ms == 2.0
    assert event.usage is not None and event.usage.total_tokens == 3
