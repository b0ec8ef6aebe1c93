"""The ``semantic`` strategy: a request goes to the registry whose description is closest
in meaning to its prompt, the embeddings coming from an embeddings registry of the same
gateway (here a mock speaking OpenAI's ``/v1/embeddings`` wire format that answers the
vectors each test chooses, so the expected registry is known). When embeddings are
unavailable the requests go round-robin and none fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from trustgate_core.models import LbConfig
from trustgate_proxy.services.semantic import cosine, prompt_text, unit
from trustgate_testkit.proxy.local import LocalProxy, local_fixtures
from trustgate_testkit.proxy.mock_base import serve_app
from trustgate_testkit.proxy.mock_upstream import (
    UPSTREAM_KEY,
    MockUpstream,
    openai_embedding,
    serve_mock,
)
from trustgate_testkit.proxy.sdk_clients import openai_sdk
from trustgate_testkit.proxy.server import until_known
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()

CODE = "Writes, reviews and debugs code in Python, SQL and Go"
POEMS = "Poems, stories and creative writing"
FIX = "Fix this Python function, it raises KeyError"
HAIKU = "A haiku about autumn leaves"
VECTORS = {
    CODE: [1.0, 0.0, 0.0],
    POEMS: [0.0, 1.0, 0.0],
    FIX: [0.9, 0.3, 0.1],
    HAIKU: [0.2, 0.95, 0.1],
}


@dataclass
class Embeddings:
    """OpenAI's ``POST /v1/embeddings``: each input's vector from ``vectors`` (others
    ``[0, 0, 1]``); ``status`` other than 200 answers OpenAI's error body; ``hold`` set
    makes it wait until ``release``."""

    vectors: dict[str, list[float]]
    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append({"body": body, "authorization": request.headers.get("Authorization")})
        if self.hold:
            await self.release.wait()
        if self.status != 200:
            error = {"message": "The server had an error", "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=self.status)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        packed = body.get("encoding_format")
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": openai_embedding(self.vectors.get(t, [0.0, 0.0, 1.0]), packed),
            }
            for i, t in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        )

    def inputs(self) -> list[list[str]]:
        return [c["body"]["input"] for c in self.calls]


@pytest_asyncio.fixture
async def embeddings() -> AsyncIterator[Embeddings]:
    mock = Embeddings(dict(VECTORS))
    app = web.Application()
    app.router.add_post("/v1/embeddings", mock.embeddings)
    async with serve_app(app) as url:
        mock.url = f"{url}/v1"
        try:
            yield mock
        finally:
            mock.release.set()


@dataclass
class Pool:
    coder: MockUpstream
    poet: MockUpstream


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[Pool]:
    async with AsyncExitStack() as stack:
        coder = await stack.enter_async_context(serve_mock("coder"))
        poet = await stack.enter_async_context(serve_mock("poet"))
        yield Pool(coder, poet)


async def semantic_consumer(
    proxy: LocalProxy,
    tenant: Tenant,
    pool: Pool,
    embeddings: Embeddings,
    embedding_config: dict[str, Any] | None = None,
) -> None:
    """Registries ``coder`` and ``poet`` (described), an OpenAI ``embed`` registry, and a
    consumer balancing the first two semantically through the third."""
    await tenant.add_registry("coder", pool.coder.url, description=CODE)
    await tenant.add_registry("poet", pool.poet.url, description=POEMS)
    embed = await tenant.add_registry("embed", embeddings.url, provider="openai")
    await tenant.add_consumer("app", ["coder", "poet"])
    config = embedding_config or {"registry_id": str(embed.id), "model": "text-embedding-3-small"}
    await tenant.put_consumer(
        "app", lb_config=LbConfig(algorithm="semantic", embedding_config=config)
    )
    await until_known(proxy, tenant)


async def answer(proxy: LocalProxy, tenant: Tenant, prompt: str) -> str:
    completion = await openai_sdk(proxy, tenant).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    return completion.choices[0].message.content or ""


async def test_each_prompt_goes_to_the_registry_whose_description_is_closest(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    await semantic_consumer(proxy, tenant, pool, embeddings)
    # the same prompt again and again: round-robin would alternate, semantic does not
    assert [await answer(proxy, tenant, FIX) for _ in range(3)] == ["Hello from coder"] * 3
    assert [await answer(proxy, tenant, HAIKU) for _ in range(3)] == ["Hello from poet"] * 3
    assert (len(pool.coder.requests), len(pool.poet.requests)) == (3, 3)
    # the embeddings registry's own credentials, the configured model; an OpenAI registry
    # is asked for base64 (what the routing above decoded), as OpenAI's SDKs ask
    assert embeddings.calls[0]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert embeddings.calls[0]["body"]["model"] == "text-embedding-3-small"
    assert {call["body"].get("encoding_format") for call in embeddings.calls} == {"base64"}


async def test_descriptions_are_embedded_once_until_they_change_and_prompts_once_each(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    await semantic_consumer(proxy, tenant, pool, embeddings)
    for _ in range(3):
        await answer(proxy, tenant, FIX)
        await answer(proxy, tenant, HAIKU)
    assert embeddings.inputs() == [[FIX, CODE, POEMS], [HAIKU]]
    # the coder registry now writes poems: only its new description is embedded
    embeddings.vectors["Sonnets and limericks"] = [0.1, 0.99, 0.0]
    embeddings.vectors[POEMS] = [0.0, 0.0, 1.0]  # unused: still cached for poet
    await tenant.put_registry("coder", description="Sonnets and limericks")
    await until_known(proxy, tenant)
    assert [await answer(proxy, tenant, HAIKU) for _ in range(2)] == ["Hello from coder"] * 2
    assert embeddings.inputs()[2:] == [["Sonnets and limericks"]]


async def test_the_embeddings_registry_can_be_named_by_its_provider(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    await semantic_consumer(
        proxy, tenant, pool, embeddings, {"provider": "openai", "model": "text-embedding-3-large"}
    )
    assert [await answer(proxy, tenant, HAIKU) for _ in range(2)] == ["Hello from poet"] * 2
    assert [await answer(proxy, tenant, FIX) for _ in range(2)] == ["Hello from coder"] * 2
    assert embeddings.calls[0]["body"]["model"] == "text-embedding-3-large"


async def test_failing_embeddings_degrade_to_round_robin_and_stop_being_asked(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    embeddings.status = 500
    await semantic_consumer(proxy, tenant, pool, embeddings)
    answers = [await answer(proxy, tenant, FIX) for _ in range(6)]
    assert sorted(answers) == ["Hello from coder"] * 3 + ["Hello from poet"] * 3
    assert len(embeddings.calls) == 3  # then the circuit is open: no call per request


async def test_a_hanging_embeddings_registry_is_given_up_after_its_timeout(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    embeddings.hold = True
    await semantic_consumer(
        proxy, tenant, pool, embeddings, {"provider": "openai", "timeout_ms": 100}
    )
    async with asyncio.timeout(5):  # the timeout is 100 ms; the upstream never answers
        reply = await answer(proxy, tenant, FIX)
    assert reply in ("Hello from coder", "Hello from poet")
    assert len(embeddings.calls) == 1


async def test_without_an_embeddings_registry_or_a_prompt_requests_go_round_robin(
    proxy: LocalProxy, tenant: Tenant, pool: Pool, embeddings: Embeddings
) -> None:
    await semantic_consumer(proxy, tenant, pool, embeddings, {"provider": "cohere"})
    answers = [await answer(proxy, tenant, FIX) for _ in range(4)]
    assert sorted(answers) == ["Hello from coder"] * 2 + ["Hello from poet"] * 2
    assert embeddings.calls == []


# -- what is embedded, and how close -------------------------------------------------------
@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({"prompt": "complete me"}, "complete me"),
        (
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": [{"type": "text", "text": "last"}]},
                ]
            },
            "last",
        ),
        ({"input": "a Responses prompt"}, "a Responses prompt"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "items"}]}]},
            "items",
        ),
        ({"messages": [{"role": "assistant", "content": "no user"}]}, None),
        ({"messages": [{"role": "user", "content": "   "}]}, None),
        ({"input": 5}, None),
    ],
)
def test_the_prompt_is_the_prompt_field_or_the_last_user_message(
    doc: dict[str, Any], text: str | None
) -> None:
    assert prompt_text(doc) == text


def test_cosine_of_unit_vectors() -> None:
    a, b = unit([3.0, 4.0]), unit([4.0, 3.0])
    assert a is not None and b is not None
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, b) == pytest.approx(24 / 25)
    assert unit([0.0, 0.0]) is None
    assert cosine(a, (1.0, 0.0, 0.0)) == 0.0  # sizes differ: not comparable
