"""What the ``semantic_cache`` plugin embeds and how it pays for it, end to end against a
real policy-cache replica (entries in its memory) on a private NATS:

- a long conversation is embedded as its start and its end (the latest turns), within the
  embeddings models' input: two that differ only in their last question never share a
  vector (they used to, when only the first 32,000 characters were embedded);
- a hit's request event has upstream cost 0 in USD (not unknown); a cache that is down
  leaves the call served uncached, recorded as outcome ``error`` with its real cost;
- the reference's ``embedding: {provider, model, api_key}`` form through the real admin:
  the key is shown masked, never on the bus in clear, kept on a masked update, and the
  proxy calls the provider's embeddings endpoint with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from trustgate_core.events.subjects import CONFIG_SUBJECTS
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_proxy.services.semantic import MAX_EMBED_BYTES, embedding_input
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_base import serve_app
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream, openai_embedding
from trustgate_testkit.proxy.sdk_clients import openai_sdk, route_to_url
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

EMBED_KEY = "sk-embed-only-key-9876"
MODEL = "gpt-4o-mini"


@pytest.fixture
def nats_url(private_nats_url: str) -> str:
    return private_nats_url


@dataclass
class Embeddings:
    """OpenAI's ``POST /v1/embeddings``: each input's vector is drawn from its hash (equal
    texts, equal vectors; different texts, unrelated ones)."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append({"body": body, "authorization": request.headers.get("Authorization")})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        packed = body.get("encoding_format")
        data = [
            {"object": "embedding", "index": i, "embedding": openai_embedding(_vector(t), packed)}
            for i, t in enumerate(inputs)
        ]
        usage = {"prompt_tokens": 8, "total_tokens": 8}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    def inputs(self) -> list[str]:
        return [text for c in self.calls for text in c["body"]["input"]]


def _vector(text: str) -> list[float]:
    return [b / 127.5 - 1.0 for b in blake2b(text.encode(), digest_size=32).digest()]


@pytest_asyncio.fixture
async def embeddings() -> AsyncIterator[Embeddings]:
    mock = Embeddings()
    app = web.Application()
    app.router.add_post("/v1/embeddings", mock.embeddings)
    async with serve_app(app) as url:
        mock.url = f"{url}/v1"
        yield mock


def test_a_long_text_is_embedded_as_its_start_and_its_end_within_the_limit() -> None:
    short = "system: be brief\nuser: hi"
    assert embedding_input(short) == short
    text = "S" * 50_000 + "\nuser: the question at the end?"
    kept = embedding_input(text)
    assert len(kept.encode()) <= MAX_EMBED_BYTES
    assert kept.startswith("S" * 1000) and kept.endswith("user: the question at the end?")
    cjk = "本" * 40_000 + "最后的问题"  # 3 bytes a character: cut at characters, not bytes
    kept = embedding_input(cjk)
    assert len(kept.encode()) <= MAX_EMBED_BYTES and kept.endswith("最后的问题")
    assert "\ufffd" not in kept


def _long_conversation(question: str) -> list[dict[str, str]]:
    system = "You are the support assistant of a large retailer. " * 700  # ~36,000 chars
    history = [
        {"role": "user", "content": "I ordered a lamp last week."},
        {"role": "assistant", "content": "Thank you, I found order 1234."},
    ]
    return [{"role": "system", "content": system}, *history, {"role": "user", "content": question}]


async def test_long_conversations_that_differ_in_their_last_question_never_share_an_entry(
    proxy: RunningProxy,
    tenant: Tenant,
    upstream: MockUpstream,
    embeddings: Embeddings,
    cache_service: PolicyCacheRuntime,
    bus: NATS,
    events: Any,
) -> None:
    app = await route_to_url(proxy, tenant, upstream.url)
    embed = await app.add_registry("embed", embeddings.url, provider="openai")
    settings = {
        "mode": "semantic",
        "similarity_threshold": 0.9,
        "embedding": {"registry_id": str(embed.id), "model": "text-embedding-3-small"},
    }
    await app.add_policy("cache", "semantic_cache", settings, consumers=["app"])
    await until_known(proxy, app)
    chat = openai_sdk(proxy, app).chat.completions
    first = _long_conversation("When will my lamp arrive?")
    second = _long_conversation("Can I return the lamp for a refund?")

    async with events(bus, app.gateway.id) as log:
        miss = await chat.with_raw_response.create(model=MODEL, messages=first)  # type: ignore[arg-type]
        assert miss.headers["x-cache"] == "MISS"

        async def hit() -> Any:
            got = await chat.with_raw_response.create(model=MODEL, messages=first)  # type: ignore[arg-type]
            return got if got.headers["x-cache"] == "HIT" else None

        await wait_for(hit, timeout=5)  # the store is asynchronous
        other = await chat.with_raw_response.create(model=MODEL, messages=second)  # type: ignore[arg-type]
        assert other.headers["x-cache"] == "MISS"
        assert other.parse().choices[0].message.content

        embedded = embeddings.inputs()
        assert len(embedded) == 2  # one per distinct conversation, then from the embedder's cache
        assert embedded[0] != embedded[1]
        for text, question in zip(
            embedded, ("When will my lamp arrive?", "Can I return"), strict=True
        ):
            assert len(text.encode()) <= MAX_EMBED_BYTES
            assert text.startswith("You are the support assistant")
            assert question in text[-200:]

        # a hit costs nothing upstream: 0 in USD, so governance sums stay right
        hits = await wait_for(
            lambda: [e for e in log.events if e.cache and e.cache.outcome == "hit"] or None,
            timeout=5,
        )
        assert not hits[0].attempts and hits[0].cost is not None
        assert hits[0].cost.total_usd == 0 and hits[0].cost.currency == "USD"

        # the cache down: served uncached, recorded as an error of the cache, with its cost
        await cache_service.stop()
        down = await chat.with_raw_response.create(model=MODEL, messages=second)  # type: ignore[arg-type]
        assert down.status_code == 200 and down.headers["x-cache"] == "MISS"
        trace = down.headers["x-trace-id"] if "x-trace-id" in down.headers else None
        errors = await wait_for(
            lambda: [e for e in log.events if e.cache and e.cache.outcome == "error"] or None,
            timeout=5,
        )
        event = errors[-1] if trace is None else next(e for e in errors if e.trace_id == trace)
        assert event.attempts and event.cost is not None and event.cost.total_usd > 0


@pytest.fixture
async def admin(database_factory: Any, nats_url: str) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_cache_embedding_key")
    settings = admin_settings(dsn, nats_url, SERVER_SECRET_KEY=DEV_SECRET_KEY)
    async with running_admin(settings) as running:
        yield running


async def test_an_embeddings_api_key_is_stored_sealed_shown_masked_and_used_by_the_proxy(
    admin: RunningAdmin,
    proxy: RunningProxy,
    upstream: MockUpstream,
    embeddings: Embeddings,
    bus: NATS,
) -> None:
    on_bus: list[bytes] = []

    async def keep(msg: Msg) -> None:
        on_bus.append(msg.data)

    sub = await bus.subscribe(CONFIG_SUBJECTS, cb=keep)
    await bus.flush()
    async with admin.client() as api:
        gw = (await api.post("/v1/gateways", json={"slug": "cache-embed-key"})).json()
        g = gw["id"]
        reg = await api.post(
            f"/v1/gateways/{g}/registries",
            json={
                "name": "primary",
                "provider": "openai_compatible",
                "provider_options": {"base_url": upstream.url},
                "auth": {"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
            },
        )
        assert reg.status_code == 201, reg.text
        con = (
            await api.post(
                f"/v1/gateways/{g}/consumers",
                json={"name": "app", "registries": [{"id": reg.json()["id"]}]},
            )
        ).json()
        auth = (
            await api.post(f"/v1/gateways/{g}/auths", json={"name": "k", "type": "api_key"})
        ).json()
        await api.post(f"/v1/gateways/{g}/consumers/{con['id']}/auths/{auth['id']}")
        embedding = {
            "provider": "openai_compatible",
            "base_url": embeddings.url,
            "model": "text-embedding-3-small",
            "api_key": EMBED_KEY,
        }
        created = await api.post(
            f"/v1/gateways/{g}/policies",
            json={"name": "cache", "slug": "semantic_cache", "settings": {"embedding": embedding}},
        )
        assert created.status_code == 201, created.text
        policy = created.json()
        assert EMBED_KEY not in created.text
        shown = (await api.get(f"/v1/gateways/{g}/policies/{policy['id']}")).json()
        assert shown["settings"]["embedding"]["api_key"] == "***9876"
        r = await api.post(f"/v1/gateways/{g}/consumers/{con['id']}/policies/{policy['id']}")
        assert r.status_code == 204, r.text

        async with httpx.AsyncClient(timeout=10) as client:

            async def ask(text: str) -> httpx.Response:
                return await client.post(
                    f"{proxy.url}/{con['slug']}/v1/chat/completions",
                    json={"model": MODEL, "messages": [{"role": "user", "content": text}]},
                    headers={"X-AG-Gateway-Slug": gw["slug"], "X-AG-API-Key": auth["api_key"]},
                )

            async def embedded(text: str) -> bool:
                r = await ask(text)
                assert r.status_code == 200, r.text
                return any(text in c["body"]["input"][0] for c in embeddings.calls)

            await wait_for(lambda: embedded("first question"), timeout=10)
            assert {c["authorization"] for c in embeddings.calls} == {f"Bearer {EMBED_KEY}"}

            # the masked value sent back on an update keeps the stored key
            settings = shown["settings"]
            settings["similarity_threshold"] = 0.97
            r = await api.put(
                f"/v1/gateways/{g}/policies/{policy['id']}", json={"settings": settings}
            )
            assert r.status_code == 200, r.text
            assert r.json()["settings"]["embedding"]["api_key"] == "***9876"
            await wait_for(lambda: embedded("second question"), timeout=10)
            assert {c["authorization"] for c in embeddings.calls} == {f"Bearer {EMBED_KEY}"}

    await sub.unsubscribe()
    assert any(policy["id"].encode() in data for data in on_bus)  # the policy went out
    assert not any(EMBED_KEY.encode() in data for data in on_bus)  # sealed, never in clear
