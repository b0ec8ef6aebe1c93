"""The catalog service asks every server for its lists at once, skips a dead server under
``fail_mode`` open and fails under closed, reads an unimplemented list as empty, and does
not rebuild a catalog whose lists did not change. The upstream port is faked: it is our
own seam (the real one is tested against real MCP servers)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, get_args
from uuid import UUID

import pytest

from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.services.catalog import CatalogService
from trustgate_mcp.services.ports import (
    Caller,
    ListKind,
    RpcFailure,
    UpstreamSession,
    UpstreamUnavailable,
)
from trustgate_testkit.fixtures import wait_for

NOW = datetime.now(UTC)
GW = UUID(int=1)
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="demo")


def registry(n: int, name: str) -> Registry:
    return Registry(
        id=UUID(int=n), gateway_id=GW, created_at=NOW, updated_at=NOW, name=name, type="MCP"
    )


WEATHER = registry(11, "weather")
DOCS = registry(12, "docs")


def caller(*registries: Registry, **fields: Any) -> Caller:
    consumer = Consumer(
        id=UUID(int=7),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="agent",
        slug="agent",
        type="MCP",
        registries=[{"registry_id": r.id} for r in registries],
        **fields,
    )
    return Caller(GATEWAY, consumer)


Answer = list[dict[str, Any]] | Exception


class FakeUpstreams:
    """Answers each (registry, kind) with a fixed list (the same object every time, as
    the real cache does) or raises the configured exception."""

    def __init__(self, answers: dict[UUID, dict[ListKind, Answer]]) -> None:
        self.answers = answers
        for lists in answers.values():
            for kind in get_args(ListKind):
                lists.setdefault(kind, [])
        self.asked: list[tuple[UUID, ListKind]] = []
        self.cancelled: list[tuple[UUID, ListKind]] = []
        # answer once that many listings are in flight (None: at once, as from the cache)
        self.barrier: asyncio.Barrier | None = None
        self.hang = False

    async def listing(
        self, registry: Registry, caller: Caller, kind: ListKind
    ) -> list[dict[str, Any]]:
        self.asked.append((registry.id, kind))
        if self.barrier is not None:
            async with asyncio.timeout(2):
                await self.barrier.wait()
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append((registry.id, kind))
                raise
        answer = self.answers[registry.id][kind]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def open(self, registry: Registry, caller: Caller) -> UpstreamSession:
        raise NotImplementedError

    async def request(
        self,
        registry: Registry,
        session: UpstreamSession | None,
        caller: Caller,
        method: str,
        params: dict[str, Any] | None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self, registry: Registry, session: UpstreamSession, caller: Caller) -> None:
        raise NotImplementedError


def two_servers() -> FakeUpstreams:
    return FakeUpstreams(
        {
            WEATHER.id: {
                "tools": [{"name": "search"}, {"name": "forecast"}],
                "resources": [{"uri": "weather://today"}],
            },
            DOCS.id: {
                "tools": [{"name": "search"}],
                "prompts": [{"name": "summarize"}],
                "resource_templates": [{"uriTemplate": "docs://{page}"}],
            },
        }
    )


async def test_every_list_of_every_server_is_asked_for_at_once() -> None:
    upstreams = two_servers()
    # each listing waits until all eight are in flight: one at a time would time out
    upstreams.barrier = asyncio.Barrier(8)
    catalog = await CatalogService(upstreams).catalog(caller(WEATHER, DOCS), [WEATHER, DOCS])
    assert len(upstreams.asked) == 8
    assert [t["name"] for t in catalog.tools] == ["weather_search", "forecast", "docs_search"]
    assert [p["name"] for p in catalog.prompts] == ["summarize"]
    assert catalog.resource("docs://intro") is not None
    assert catalog.skipped == ()


@pytest.mark.parametrize("fail_mode", ["open", None])
@pytest.mark.parametrize("fetched", [True, False], ids=["fetched", "cached"])
async def test_a_dead_server_is_skipped_when_the_consumer_fails_open(
    fail_mode: str | None, fetched: bool
) -> None:
    upstreams = two_servers()
    upstreams.barrier = asyncio.Barrier(8) if fetched else None
    upstreams.answers[DOCS.id]["tools"] = UpstreamUnavailable("docs: connection refused")
    service = CatalogService(upstreams)
    catalog = await service.catalog(caller(WEATHER, DOCS, fail_mode=fail_mode), [WEATHER, DOCS])
    # the shared name is no longer shared: weather's tool keeps its own name
    assert [t["name"] for t in catalog.tools] == ["search", "forecast"]
    assert catalog.prompts == []
    assert catalog.skipped == (DOCS.id,)


@pytest.mark.parametrize("fetched", [True, False], ids=["fetched", "cached"])
async def test_a_dead_server_fails_the_catalog_when_the_consumer_fails_closed(
    fetched: bool,
) -> None:
    upstreams = two_servers()
    upstreams.barrier = asyncio.Barrier(8) if fetched else None
    upstreams.answers[DOCS.id]["prompts"] = UpstreamUnavailable("docs: timed out")
    service = CatalogService(upstreams)
    with pytest.raises(UpstreamUnavailable, match="docs: timed out"):
        await service.catalog(caller(WEATHER, DOCS, fail_mode="closed"), [WEATHER, DOCS])


async def test_a_list_the_server_does_not_implement_is_empty() -> None:
    upstreams = two_servers()
    upstreams.answers[WEATHER.id]["prompts"] = RpcFailure(-32601, "Method not found")
    upstreams.answers[WEATHER.id]["resource_templates"] = RpcFailure(-32601, "Method not found")
    catalog = await CatalogService(upstreams).catalog(
        caller(WEATHER, DOCS, fail_mode="closed"), [WEATHER, DOCS]
    )
    assert [r["uri"] for r in catalog.resources] == ["weather://today"]
    assert [p["name"] for p in catalog.prompts] == ["summarize"]
    assert catalog.skipped == ()


async def test_a_server_whose_list_fails_otherwise_counts_as_unavailable() -> None:
    upstreams = two_servers()
    upstreams.answers[DOCS.id]["tools"] = RpcFailure(-32603, "Internal error")
    service = CatalogService(upstreams)
    catalog = await service.catalog(caller(WEATHER, DOCS), [WEATHER, DOCS])
    assert catalog.skipped == (DOCS.id,)
    with pytest.raises(UpstreamUnavailable, match="-32603"):
        await service.catalog(caller(WEATHER, DOCS, fail_mode="closed"), [WEATHER, DOCS])


async def test_an_unchanged_catalog_is_not_rebuilt() -> None:
    upstreams = two_servers()
    service = CatalogService(upstreams)
    who = caller(WEATHER, DOCS)
    first = await service.catalog(who, [WEATHER, DOCS])
    assert await service.catalog(who, [WEATHER, DOCS]) is first


async def test_a_new_list_a_new_consumer_version_or_a_new_registry_rebuilds_it() -> None:
    upstreams = two_servers()
    service = CatalogService(upstreams)
    who = caller(WEATHER, DOCS)
    first = await service.catalog(who, [WEATHER, DOCS])
    # the upstream's cache was refreshed: a new list object
    upstreams.answers[DOCS.id]["tools"] = [{"name": "read_page"}]
    refreshed = await service.catalog(who, [WEATHER, DOCS])
    assert refreshed is not first
    assert [t["name"] for t in refreshed.tools] == ["search", "forecast", "read_page"]
    prefixed = await service.catalog(caller(WEATHER, DOCS, always_prefix=True), [WEATHER, DOCS])
    assert prefixed.tools[0]["name"] == "weather_search"
    renamed = WEATHER.model_copy(update={"name": "meteo"})
    again = await service.catalog(caller(renamed, DOCS, always_prefix=True), [renamed, DOCS])
    assert again.tools[0]["name"] == "meteo_search"


async def test_a_skipped_server_stays_memoized_while_it_stays_down() -> None:
    upstreams = two_servers()
    upstreams.answers[DOCS.id]["tools"] = UpstreamUnavailable("down")
    service = CatalogService(upstreams)
    who = caller(WEATHER, DOCS)
    first = await service.catalog(who, [WEATHER, DOCS])
    upstreams.answers[DOCS.id]["tools"] = UpstreamUnavailable("still down")
    assert await service.catalog(who, [WEATHER, DOCS]) is first
    # back up: its tools return
    upstreams.answers[DOCS.id]["tools"] = [{"name": "search"}]
    back = await service.catalog(who, [WEATHER, DOCS])
    assert back.skipped == ()
    assert [t["name"] for t in back.tools] == ["weather_search", "forecast", "docs_search"]


async def test_the_allow_list_view_is_kept_for_the_same_allow_list() -> None:
    service = CatalogService(two_servers())
    who = caller(WEATHER, DOCS)

    def allowed(name: str) -> bool:
        return name != "forecast"

    first = await service.catalog(who, [WEATHER, DOCS], allowed_tool=allowed)
    assert [t["name"] for t in first.tools] == ["weather_search", "docs_search"]
    assert first.tool("forecast") is None
    assert await service.catalog(who, [WEATHER, DOCS], allowed_tool=allowed) is first
    everything = await service.catalog(who, [WEATHER, DOCS])
    assert [t["name"] for t in everything.tools] == ["weather_search", "forecast", "docs_search"]


async def test_a_cancelled_catalog_cancels_the_lists_still_in_flight() -> None:
    upstreams = two_servers()
    upstreams.hang = True
    task = asyncio.ensure_future(
        CatalogService(upstreams).catalog(caller(WEATHER, DOCS), [WEATHER, DOCS])
    )
    await wait_for(lambda: len(upstreams.asked) == 8, timeout=2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(upstreams.cancelled) == sorted(upstreams.asked)
