"""The ``semantic_cache`` plugin as a client sees it, against a real NATS: a repeated
request is answered from the cache (``X-Cache: HIT``, no upstream call) in the client's
own format and mode — JSON or a stream of several chunks, in Chat, Messages and
Responses, whatever mode the entry was stored from; nothing crosses consumers or
gateways; errors, ``length`` and cut streams are never stored; bypasses are honoured; a
cache service that does not answer leaves the call served uncached, never a 5xx.

The policy-cache service is stood in for by ``Responder``, a small in-memory service on
a real, private NATS (the cache subjects are shared by everything on a bus) answering the
core contract (``CacheLookup`` → ``CacheReply``, ``CacheStore``), so these tests see
exactly what the proxy sends it; ``test_cache_service.py`` goes through the real service.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from trustgate_core.cache import CacheLookup, CacheReply, CacheStore, decode_vector
from trustgate_core.embedded import free_port
from trustgate_core.events.subjects import CACHE_LOOKUP_SUBJECT, CACHE_STORE_SUBJECT
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import (
    CHAT_WEATHER_TOOL,
    anthropic_sdk,
    gateway_headers,
    openai_sdk,
    route_to_url,
)
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

HI: Any = [{"role": "user", "content": "What is the capital of France?"}]
MODEL = "gpt-4o-mini"


@pytest.fixture
def nats_url(private_nats_url: str) -> str:
    return private_nats_url


@dataclass
class Responder:
    """The cache service's contract, in memory: entries by (gateway, policy, partition,
    exact key); a semantic match within the filter key at the threshold's cosine."""

    entries: dict[tuple[str, str, str, str], tuple[str, tuple[float, ...] | None, Any]] = field(
        default_factory=dict
    )
    stores: list[CacheStore] = field(default_factory=list)
    lookups: list[CacheLookup] = field(default_factory=list)
    subs: list[Subscription] = field(default_factory=list)

    async def on_lookup(self, msg: Msg) -> None:
        ask = CacheLookup.model_validate_json(msg.data)
        self.lookups.append(ask)
        scope = (str(ask.gateway_id), str(ask.policy_id), ask.partition)
        found = self.entries.get((*scope, ask.exact_key))
        reply = CacheReply(hit=False)
        if found is not None:
            reply = CacheReply(hit=True, entry=found[2], similarity=1.0, exact=True)
        elif ask.vector is not None:
            wanted = decode_vector(ask.vector)
            for key, (filter_key, vector, entry) in self.entries.items():
                if key[:3] == scope and filter_key == ask.filter_key and vector is not None:
                    similarity = _cosine(wanted, vector)
                    if similarity >= ask.threshold:
                        reply = CacheReply(hit=True, entry=entry, similarity=similarity)
                        break
        await msg.respond(orjson.dumps(reply.model_dump(mode="json")))

    async def on_store(self, msg: Msg) -> None:
        store = CacheStore.model_validate_json(msg.data)
        self.stores.append(store)
        key = (str(store.gateway_id), str(store.policy_id), store.partition, store.exact_key)
        vector = decode_vector(store.vector) if store.vector else None
        self.entries[key] = (store.filter_key, vector, store.entry)


def _cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest_asyncio.fixture
async def cache_service(bus: NATS) -> AsyncIterator[Responder]:
    responder = Responder()
    responder.subs.append(await bus.subscribe(CACHE_LOOKUP_SUBJECT, cb=responder.on_lookup))
    responder.subs.append(await bus.subscribe(CACHE_STORE_SUBJECT, cb=responder.on_store))
    await bus.flush()
    try:
        yield responder
    finally:
        for sub in responder.subs:
            await sub.unsubscribe()


@pytest_asyncio.fixture
async def app(proxy: RunningProxy, tenant: Tenant, upstream: MockUpstream) -> Tenant:
    return await route_to_url(proxy, tenant, upstream.url)


async def with_cache(
    proxy: RunningProxy, tenant: Tenant, settings: dict[str, Any] | None = None, **kw: Any
) -> None:
    await tenant.add_policy(
        "cache", "semantic_cache", {"mode": "exact", **(settings or {})}, consumers=["app"], **kw
    )
    await until_known(proxy, tenant)


async def stored(cache: Responder, count: int) -> None:
    await wait_for(lambda: len(cache.stores) >= count or None, timeout=5)


async def chat(proxy: RunningProxy, tenant: Tenant, consumer: str = "app", **kw: Any) -> Any:
    client = openai_sdk(proxy, tenant, consumer)
    raw = await client.chat.completions.with_raw_response.create(
        model=kw.pop("model", MODEL), messages=kw.pop("messages", HI), **kw
    )
    return raw


async def test_a_repeated_chat_request_is_answered_from_the_cache_as_json_and_as_a_stream(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    cache_service: Responder,
    bus: NATS,
    events: Any,
) -> None:
    await with_cache(proxy, app)
    async with events(bus, app.gateway.id) as log:
        first = await chat(proxy, app, max_tokens=50)
        assert first.headers["x-cache"] == "MISS"
        answer = first.parse().choices[0].message.content
        await stored(cache_service, 1)
        calls = len(upstream.requests)

        again = await chat(proxy, app, max_tokens=50)
        assert again.headers["x-cache"] == "HIT"
        assert "x-cache-similarity" not in again.headers  # an exact hit
        hit = again.parse()
        assert hit.choices[0].message.content == answer
        assert hit.choices[0].finish_reason == "stop"

        client = openai_sdk(proxy, app)
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=HI,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        texts = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert len(texts) > 1 and "".join(texts) == answer
        assert chunks[-1].usage is not None  # the usage chunk, as asked
        assert len(upstream.requests) == calls  # neither hit reached the upstream
        found = await wait_for(
            lambda: [e for e in log.events if e.cache and e.cache.outcome == "hit"] or None,
            timeout=5,
        )
        event = found[0]  # no upstream call, no upstream cost
        assert event.status == 200 and not event.attempts
        assert event.cost is not None and event.cost.total_usd == 0


async def test_every_parameter_and_the_tenant_make_a_different_entry(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder, bus: NATS
) -> None:
    await with_cache(proxy, app)
    await app.add_consumer("other", ["primary"])
    await until_known(proxy, app)
    await chat(proxy, app)
    await stored(cache_service, 1)
    assert (await chat(proxy, app, temperature=0.5)).headers["x-cache"] == "MISS"
    assert (await chat(proxy, app, seed=3)).headers["x-cache"] == "MISS"
    # the other consumer has no policy: no cache at all, and never the app's entry
    assert "x-cache" not in (await chat(proxy, app, consumer="other")).headers
    # a consumer of another gateway with the same text: its own partition, a miss
    elsewhere = await new_tenant(bus)
    await route_to_url(proxy, elsewhere, upstream.url)
    await with_cache(proxy, elsewhere)
    assert (await chat(proxy, elsewhere)).headers["x-cache"] == "MISS"
    partitions = {(s.gateway_id, s.partition) for s in cache_service.stores}
    assert (app.gateway.id, str(app.consumers["app"].id)) in partitions


async def test_messages_and_responses_clients_get_hits_in_their_own_format_and_mode(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    """Each format keys its own entries (the key is the body the client sent, not a
    decoded view that could drop a field): a Messages client asking what a Chat client
    asked is a miss, then a hit as JSON and as a stream, whatever mode stored it."""
    await with_cache(proxy, app)
    await chat(proxy, app, max_tokens=64)
    await stored(cache_service, 1)

    claude = anthropic_sdk(proxy, app)
    raw = await claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    assert raw.headers["x-cache"] == "MISS"
    answer = (await raw.parse()).content[0].text  # type: ignore[union-attr]
    await stored(cache_service, 2)
    calls = len(upstream.requests)
    raw = await claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    assert raw.headers["x-cache"] == "HIT"
    assert (await raw.parse()).content[0].text == answer  # type: ignore[union-attr]
    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == answer
    assert final.stop_reason == "end_turn"

    responses = openai_sdk(proxy, app).responses
    events = [
        e
        async for e in await responses.create(
            model=MODEL, input=HI, max_output_tokens=64, stream=True
        )
    ]
    assert events[-1].type == "response.completed"  # a miss, stored from a stream
    await stored(cache_service, 3)
    calls = len(upstream.requests)
    got = await responses.with_raw_response.create(model=MODEL, input=HI, max_output_tokens=64)
    assert got.headers["x-cache"] == "HIT"
    assert got.parse().output_text == answer
    events = [
        e
        async for e in await responses.create(
            model=MODEL, input=HI, max_output_tokens=64, stream=True
        )
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == answer
    assert events[-1].type == "response.completed"
    assert len(upstream.requests) == calls


async def test_errors_length_and_cut_streams_are_never_stored(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    await with_cache(proxy, app)
    http = httpx.AsyncClient(base_url=proxy.base_url(app.consumers["app"]), timeout=10)
    async with http:
        headers = gateway_headers(app)
        for model, stream in (("m-long", False), ("m-ratelimited", False), ("m-cut", True)):
            body = {"model": model, "messages": HI, "stream": stream}
            await http.post("/chat/completions", json=body, headers=headers)
    await chat(proxy, app)  # stored: the marker that the earlier stores had their turn
    await stored(cache_service, 1)
    assert [s.entry["finish"] for s in cache_service.stores] == ["stop"]
    assert (await chat(proxy, app, model="m-long")).headers["x-cache"] == "MISS"


async def test_bypasses_reach_the_upstream_and_store_nothing(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    await with_cache(proxy, app)
    await chat(proxy, app)
    await stored(cache_service, 1)
    calls = len(upstream.requests)
    for extra in ({"X-Cache-Bypass": "1"}, {"Cache-Control": "no-cache"}):
        got = await chat(proxy, app, extra_headers=extra)
        assert got.headers["x-cache"] == "BYPASS"
    tools = await chat(proxy, app, tools=[CHAT_WEATHER_TOOL])
    assert tools.headers["x-cache"] == "BYPASS"
    assert len(upstream.requests) == calls + 3
    assert len(cache_service.stores) == 1


async def test_a_cache_that_does_not_answer_leaves_the_call_served_uncached(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, bus: NATS, events: Any
) -> None:
    await with_cache(proxy, app)
    async with events(bus, app.gateway.id) as log:
        got = await chat(proxy, app)  # no service on the bus: no responders
        assert got.status_code == 200 and got.headers["x-cache"] == "MISS"
        found = await wait_for(lambda: [e for e in log.events if e.cache] or None, timeout=5)
        assert found[0].cache.outcome == "error"
    metrics = proxy.runtime.observed.render()[0].decode()
    assert 'trustgate_proxy_cache_lookups_total{outcome="error"}' in metrics


async def test_a_similar_prompt_is_a_semantic_hit_within_the_same_parameters(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    registry = app.registries["primary"]
    settings = {
        "mode": "both",
        "similarity_threshold": 0.9,
        "embedding": {"registry_id": str(registry.id), "model": "text-embedding-3-small"},
    }
    await with_cache(proxy, app, settings)
    first = await chat(proxy, app)
    # the embeddings exchange's milliseconds, for the client to tell it from the gateway's
    assert re.fullmatch(r"embedding;dur=\d+\.\d{3}", first.headers["server-timing"])
    await stored(cache_service, 1)
    assert cache_service.stores[0].vector is not None
    # the mock embeds every text alike: a different wording is a semantic match
    other = [{"role": "user", "content": "Which city is France's capital?"}]
    got = await chat(proxy, app, messages=other)
    assert got.headers["x-cache"] == "HIT"
    assert float(got.headers["x-cache-similarity"]) >= 0.9
    assert got.headers["server-timing"].startswith("embedding;dur=")
    # but never across parameters that change the answer
    again = await chat(proxy, app, messages=other, temperature=1.5)
    assert again.headers["x-cache"] == "MISS"
    assert "server-timing" not in again.headers  # that text's embedding was remembered


async def test_an_observing_semantic_policy_changes_no_header_of_the_answer(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    """``mode: observe`` changes nothing a client sees: it embeds and looks up, but the
    answer carries neither ``X-Cache`` nor the embedding's ``Server-Timing``."""
    registry = app.registries["primary"]
    settings = {
        "mode": "semantic",
        "embedding": {"registry_id": str(registry.id), "model": "text-embedding-3-small"},
    }
    await with_cache(proxy, app, settings, mode="observe")
    got = await chat(proxy, app)
    await stored(cache_service, 1)
    assert cache_service.stores[0].vector is not None  # it did embed
    assert "x-cache" not in got.headers and "server-timing" not in got.headers


async def test_a_streamed_answer_is_stored_and_served_to_a_json_client(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    await with_cache(proxy, app)
    claude = anthropic_sdk(proxy, app)
    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        streamed = "".join([text async for text in stream.text_stream])
    await stored(cache_service, 1)
    assert cache_service.stores[0].entry["text"] == streamed
    got = await claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    assert got.headers["x-cache"] == "HIT"
    assert (await got.parse()).content[0].text == streamed  # type: ignore[union-attr]


async def test_a_tool_call_answer_is_replayed_whole_and_streamed(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    await with_cache(proxy, app, {"skip_if_tools_present": False})
    ask: dict[str, Any] = {"model": "m-tools", "tools": [CHAT_WEATHER_TOOL]}
    first = (await chat(proxy, app, **ask)).parse().choices[0]
    assert first.finish_reason == "tool_calls"
    await stored(cache_service, 1)
    again = await chat(proxy, app, **ask)
    assert again.headers["x-cache"] == "HIT"
    replayed = again.parse().choices[0]
    assert replayed.finish_reason == "tool_calls"
    call, expected = replayed.message.tool_calls[0], first.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        expected.id,
        expected.function.name,
        expected.function.arguments,
    )
    stream = await openai_sdk(proxy, app).chat.completions.create(messages=HI, stream=True, **ask)
    chunks = [c async for c in stream]
    args = "".join(
        d.function.arguments or ""
        for c in chunks
        if c.choices
        for d in c.choices[0].delta.tool_calls or []
        if d.function is not None
    )
    assert args == expected.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_an_observing_policy_records_a_hit_and_serves_the_upstream(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    cache_service: Responder,
    bus: NATS,
    events: Any,
) -> None:
    await with_cache(proxy, app, mode="observe")
    async with events(bus, app.gateway.id) as log:
        assert "x-cache" not in (await chat(proxy, app)).headers
        await stored(cache_service, 1)
        calls = len(upstream.requests)
        assert "x-cache" not in (await chat(proxy, app)).headers
        assert len(upstream.requests) == calls + 1
        found = await wait_for(
            lambda: [e for e in log.events if e.cache and e.cache.outcome == "hit"] or None,
            timeout=5,
        )
        assert found[0].attempts  # served by the upstream


async def test_a_stream_stored_without_usage_replays_usage_to_a_client_asking_for_it(
    proxy: RunningProxy, app: Tenant, cache_service: Responder
) -> None:
    await with_cache(proxy, app)
    client = openai_sdk(proxy, app)
    quiet = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    assert all(c.usage is None for c in [c async for c in quiet])  # it did not ask for it
    await stored(cache_service, 1)
    assert cache_service.stores[0].entry["usage"]["output_tokens"] > 0
    again = await client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in again]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_an_embeddings_registry_that_is_down_leaves_the_call_served_uncached(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    dead = await app.add_registry("embeddings", f"http://127.0.0.1:{free_port()}/v1")
    settings = {
        "mode": "semantic",
        "embedding": {"registry_id": str(dead.id), "model": "text-embedding-3-small"},
    }
    await with_cache(proxy, app, settings)
    got = await chat(proxy, app)
    assert got.status_code == 200 and got.headers["x-cache"] == "MISS"
    assert got.parse().choices[0].message.content


# -- who shares an entry -----------------------------------------------------------------------


async def _consumers_under_one_policy(
    proxy: RunningProxy, tenant: Tenant, settings: dict[str, Any]
) -> None:
    await tenant.add_consumer("other", ["primary"])
    await tenant.add_policy(
        "cache", "semantic_cache", {"mode": "exact", **settings}, consumers=["app", "other"]
    )
    await until_known(proxy, tenant)


async def test_two_consumers_under_one_consumer_scoped_policy_never_share_an_entry(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    await _consumers_under_one_policy(proxy, app, {"scope": "consumer"})
    assert (await chat(proxy, app)).headers["x-cache"] == "MISS"
    await stored(cache_service, 1)
    assert (await chat(proxy, app)).headers["x-cache"] == "HIT"
    calls = len(upstream.requests)
    # the same text under the same policy, another consumer: its own partition
    assert (await chat(proxy, app, consumer="other")).headers["x-cache"] == "MISS"
    assert len(upstream.requests) == calls + 1
    await stored(cache_service, 2)
    assert (await chat(proxy, app, consumer="other")).headers["x-cache"] == "HIT"
    partitions = {s.partition for s in cache_service.stores}
    assert partitions == {str(app.consumers["app"].id), str(app.consumers["other"].id)}


async def test_a_global_scope_shares_across_the_gateways_consumers_only(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    cache_service: Responder,
    bus: NATS,
) -> None:
    await _consumers_under_one_policy(proxy, app, {"scope": "global"})
    assert (await chat(proxy, app)).headers["x-cache"] == "MISS"
    await stored(cache_service, 1)
    calls = len(upstream.requests)
    assert (await chat(proxy, app, consumer="other")).headers["x-cache"] == "HIT"
    assert len(upstream.requests) == calls
    # another gateway with a global policy of its own: never the first gateway's entry
    elsewhere = await new_tenant(bus)
    await route_to_url(proxy, elsewhere, upstream.url)
    await elsewhere.add_policy(
        "cache", "semantic_cache", {"mode": "exact", "scope": "global"}, consumers=["app"]
    )
    await until_known(proxy, elsewhere)
    assert (await chat(proxy, elsewhere)).headers["x-cache"] == "MISS"
    assert len(upstream.requests) == calls + 1
    await stored(cache_service, 2)
    assert {(s.gateway_id, s.partition) for s in cache_service.stores} == {
        (app.gateway.id, "global"),
        (elsewhere.gateway.id, "global"),
    }


# -- a slow cache service ------------------------------------------------------------------------


async def test_a_slow_cache_service_leaves_the_call_served_uncached_within_the_timeout(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, bus: NATS, events: Any
) -> None:
    """The service answers after 3 s; the proxy waits its lookup timeout (50 ms), then
    serves the call uncached: a MISS, counted as the cache's failure, never a 5xx."""
    asked = asyncio.Event()

    async def slow(msg: Msg) -> None:
        asked.set()
        await asyncio.sleep(3)  # the service being slow, not a synchronisation
        await msg.respond(orjson.dumps(CacheReply(hit=False).model_dump(mode="json")))

    sub = await bus.subscribe(CACHE_LOOKUP_SUBJECT, cb=slow)
    try:
        await bus.flush()
        await with_cache(proxy, app)
        await chat(proxy, app, extra_headers={"X-Cache-Bypass": "1"})  # warm: connections
        started = perf_counter()
        await chat(proxy, app, extra_headers={"X-Cache-Bypass": "1"})
        direct = perf_counter() - started
        async with events(bus, app.gateway.id) as log:
            started = perf_counter()
            got = await chat(proxy, app)
            elapsed = perf_counter() - started
            assert asked.is_set()  # the service was asked: a timeout, not "no responders"
            assert got.status_code == 200 and got.headers["x-cache"] == "MISS"
            assert got.parse().choices[0].message.content
            timeout = proxy.runtime.settings.semantic_cache_lookup_timeout
            assert elapsed < direct + timeout + 0.5, (elapsed, direct)
            trace = got.headers["x-ag-trace-id"]
            found = await wait_for(lambda: log.by_trace(trace), timeout=5)
            assert found[0].cache.outcome == "error" and found[0].status == 200
    finally:
        await sub.unsubscribe()
    metrics = proxy.runtime.observed.render()[0].decode()
    assert 'trustgate_proxy_cache_lookups_total{outcome="error"}' in metrics


# -- with the pii policy ---------------------------------------------------------------------------

EMAIL_A = "alice.martin@example.com"
EMAIL_B = "bob.stone@example.org"


def _weather_of(email: str) -> Any:
    """A conversation whose tool result holds ``email``; ``*-tools`` answers ``The
    weather is <the tool result>``, so the answer repeats what the upstream saw."""
    call = {"id": "call_1", "type": "function", "function": {"name": "who", "arguments": "{}"}}
    return [
        {"role": "user", "content": "Who am I?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": email},
    ]


async def _streamed(proxy: RunningProxy, tenant: Tenant, consumer: str, **kw: Any) -> str:
    stream = await openai_sdk(proxy, tenant, consumer).chat.completions.create(stream=True, **kw)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


@pytest.mark.parametrize("pii_first", [True, False], ids=["pii-first", "cache-first"])
async def test_with_pii_restore_a_hit_gives_each_caller_only_its_own_data(
    proxy: RunningProxy,
    app: Tenant,
    upstream: MockUpstream,
    cache_service: Responder,
    pii_first: bool,
) -> None:
    """pii (requests and answers masked, restore) and a global cache, in either order of
    priority: the key and the embedding are the masked request's, the entry holds the
    placeholders (never Alice's address), and Bob's identical masked request is a hit
    that gives Bob his own address back, as JSON and streamed."""
    await app.add_consumer("other", ["primary"])
    pii = {"apply_to": ["request", "response"], "restore": True}
    registry = app.registries["primary"]
    cache = {
        "mode": "both",
        "scope": "global",
        "skip_if_tools_present": False,
        "embedding": {"registry_id": str(registry.id), "model": "text-embedding-3-small"},
    }
    both = ["app", "other"]
    await app.add_policy("pii", "pii", pii, consumers=both, priority=0 if pii_first else 10)
    await app.add_policy(
        "cache", "semantic_cache", cache, consumers=both, priority=10 if pii_first else 0
    )
    await until_known(proxy, app)
    ask: dict[str, Any] = {"model": "gpt-4o-mini-tools"}

    first = await chat(proxy, app, messages=_weather_of(EMAIL_A), **ask)
    assert first.headers["x-cache"] == "MISS"
    assert first.parse().choices[0].message.content == f"The weather is {EMAIL_A}"
    await stored(cache_service, 1)
    kept = orjson.dumps([s.model_dump(mode="json") for s in cache_service.stores]).decode()
    assert EMAIL_A not in kept and cache_service.stores[0].entry["text"] == (
        "The weather is <EMAIL_1>"
    )
    embedded = orjson.dumps([r.body for r in upstream.recorded]).decode()
    assert EMAIL_A not in embedded  # neither the upstream nor the embeddings saw it

    calls = len(upstream.requests)
    hit = await chat(proxy, app, "other", messages=_weather_of(EMAIL_B), **ask)
    assert hit.headers["x-cache"] == "HIT"
    assert hit.parse().choices[0].message.content == f"The weather is {EMAIL_B}"
    streamed = await _streamed(proxy, app, "other", messages=_weather_of(EMAIL_B), **ask)
    assert streamed == f"The weather is {EMAIL_B}"
    mine = await _streamed(proxy, app, "app", messages=_weather_of(EMAIL_A), **ask)
    assert mine == f"The weather is {EMAIL_A}"
    assert len(upstream.requests) == calls  # all three were hits


@pytest.mark.parametrize("pii_first", [True, False], ids=["pii-first", "cache-first"])
async def test_an_answer_masked_by_pii_is_stored_and_served_masked(
    proxy: RunningProxy, tenant: Tenant, cache_service: Responder, pii_first: bool
) -> None:
    """The upstream's own answer holds an address; pii masks answers: the entry holds
    the placeholder, and a hit, JSON or streamed, never shows the address."""
    secret = "jane.doe@example.com"
    async with serve_mock(secret) as leaky:
        app = await route_to_url(proxy, tenant, leaky.url)
        await app.add_policy(
            "pii",
            "pii",
            {"apply_to": ["request", "response"]},
            consumers=["app"],
            priority=0 if pii_first else 10,
        )
        await with_cache(proxy, app, priority=10 if pii_first else 0)
        first = await chat(proxy, app)
        assert first.parse().choices[0].message.content == "Hello from <EMAIL_1>"
        await stored(cache_service, 1)
        assert cache_service.stores[0].entry["text"] == "Hello from <EMAIL_1>"
        calls = len(leaky.requests)
        hit = await chat(proxy, app)
        assert hit.headers["x-cache"] == "HIT"
        assert hit.parse().choices[0].message.content == "Hello from <EMAIL_1>"
        streamed = await _streamed(proxy, app, "app", model=MODEL, messages=HI)
        assert streamed == "Hello from <EMAIL_1>"
        assert len(leaky.requests) == calls


async def test_same_text_another_image_is_never_a_semantic_hit(
    proxy: RunningProxy, app: Tenant, upstream: MockUpstream, cache_service: Responder
) -> None:
    registry = app.registries["primary"]
    settings = {
        "mode": "semantic",
        "embedding": {"registry_id": str(registry.id), "model": "text-embedding-3-small"},
    }
    await with_cache(proxy, app, settings)

    def look_at(url: str) -> Any:
        parts = [{"type": "text", "text": "What is in this picture?"}]
        parts.append({"type": "image_url", "image_url": {"url": url}})
        return [{"role": "user", "content": parts}]

    await chat(proxy, app, messages=look_at("https://img.example/cat.png"))
    await stored(cache_service, 1)
    again = await chat(proxy, app, messages=look_at("https://img.example/cat.png"))
    assert again.headers["x-cache"] == "HIT"
    other = await chat(proxy, app, messages=look_at("https://img.example/dog.png"))
    assert other.headers["x-cache"] == "MISS"  # the mock embeds every text alike
    lookups = cache_service.lookups
    assert lookups[-1].vector == lookups[0].vector  # same text, same vector…
    assert lookups[-1].filter_key != lookups[0].filter_key  # …another image: a hard filter
