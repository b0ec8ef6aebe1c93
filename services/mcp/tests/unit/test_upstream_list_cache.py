"""The upstream list cache: a server's lists fetched together, one fetch per server in
flight, kept per registry object, a fetch that raced a drop not trusted, and a failing
server remembered (its last lists answered to callers that fail open, retried in the
background after the backoff)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from trustgate_core.models import Registry
from trustgate_mcp.adapters.upstream.lists import KINDS, ListCache, Lists
from trustgate_mcp.services.ports import ListKind, UpstreamUnavailable
from trustgate_testkit.fixtures import wait_for

NOW = datetime.now(UTC)


def registry() -> Registry:
    return Registry(
        id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, name="r", type="MCP"
    )


class Upstream:
    """A fetch that waits for the test to release it and counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.asked: list[tuple[ListKind, ...]] = []
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def fetch(self, kinds: tuple[ListKind, ...]) -> Lists:
        self.calls += 1
        self.asked.append(kinds)
        n = self.calls
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return {kind: [{"name": f"{kind}{n}"}] for kind in kinds}


def get(cache: ListCache, reg: Registry, up: Upstream, kind: ListKind = "tools", **kw: Any) -> Any:
    return cache.get((reg.id, ""), reg, kind, up.fetch, stale_ok=kw.get("stale_ok", True))


async def test_callers_of_one_server_share_the_fetch_of_all_its_lists() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    waiters = [asyncio.create_task(get(cache, reg, upstream, kind)) for kind in KINDS * 5]
    await asyncio.sleep(0)
    upstream.release.set()
    assert [await w for w in waiters] == [[{"name": f"{k}1"}] for k in KINDS * 5]
    assert await get(cache, reg, upstream, "prompts") == [{"name": "prompts1"}]
    assert upstream.asked == [KINDS]


async def test_a_cancelled_caller_leaves_the_fetch_to_the_others() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    first = asyncio.create_task(get(cache, reg, upstream))
    second = asyncio.create_task(get(cache, reg, upstream))
    await asyncio.sleep(0)
    first.cancel()
    upstream.release.set()
    assert await second == [{"name": "tools1"}]
    assert upstream.calls == 1


async def test_a_failing_server_is_not_asked_again_during_the_backoff() -> None:
    cache, upstream, reg = ListCache(60, backoff=3600), Upstream(), registry()
    upstream.error = UpstreamUnavailable("down")
    upstream.release.set()
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable, match="down"):
            await get(cache, reg, upstream)
    assert upstream.calls == 1
    assert cache.failing((reg.id, ""), reg) is not None


async def test_a_fetch_past_the_deadline_fails_the_server() -> None:
    cache, upstream, reg = ListCache(60, deadline=0.05, backoff=3600), Upstream(), registry()
    with pytest.raises(UpstreamUnavailable, match=r"did not come within 0\.05s"):
        await get(cache, reg, upstream)
    with pytest.raises(UpstreamUnavailable):  # remembered: no second wait
        await asyncio.wait_for(get(cache, reg, upstream), 0.01)
    assert upstream.calls == 1


async def test_a_failing_server_answers_its_last_lists_to_callers_that_fail_open() -> None:
    cache, upstream, reg = ListCache(0, backoff=3600), Upstream(), registry()
    upstream.release.set()
    kept = await get(cache, reg, upstream)
    upstream.error = UpstreamUnavailable("down")
    assert await get(cache, reg, upstream) is kept  # expired, refetch failed: the old one
    with pytest.raises(UpstreamUnavailable):
        await get(cache, reg, upstream, stale_ok=False)
    assert upstream.calls == 2


async def test_after_the_backoff_a_failing_server_is_asked_in_the_background() -> None:
    cache, upstream, reg = ListCache(60, backoff=0), Upstream(), registry()
    upstream.error = UpstreamUnavailable("down")
    upstream.release.set()
    with pytest.raises(UpstreamUnavailable):
        await get(cache, reg, upstream)
    upstream.error = None
    upstream.release.clear()  # the retry hangs: the caller must not wait for it
    with pytest.raises(UpstreamUnavailable):
        await asyncio.wait_for(get(cache, reg, upstream), 1)
    assert upstream.calls == 2
    upstream.release.set()
    await wait_for(lambda: cache.failing((reg.id, ""), reg) is None and upstream.calls == 2)

    async def back() -> bool:
        return await get(cache, reg, upstream) == [{"name": "tools2"}]

    await wait_for(back, timeout=5)
    await cache.aclose()


async def test_a_fetch_that_raced_a_drop_is_returned_but_not_trusted() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    running = asyncio.create_task(get(cache, reg, upstream))
    await asyncio.sleep(0)
    cache.drop(reg.id, ("tools",))
    later = asyncio.create_task(get(cache, reg, upstream))
    await asyncio.sleep(0)
    upstream.release.set()
    assert await running == [{"name": "tools1"}]
    assert await later == [{"name": "tools2"}]
    assert await get(cache, reg, upstream) == [{"name": "tools2"}]
    assert upstream.calls == 2


async def test_a_drop_refetches_only_its_kinds_and_a_new_registry_object_everything() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    upstream.release.set()
    await get(cache, reg, upstream)
    cache.drop(reg.id, ("prompts",))
    assert await get(cache, reg, upstream) == [{"name": "tools1"}]
    assert await get(cache, reg, upstream, "prompts") == [{"name": "prompts2"}]
    assert upstream.asked == [KINDS, ("prompts",)]
    edited = reg.model_copy(update={"name": "edited"})
    assert await get(cache, edited, upstream) == [{"name": "tools3"}]
    assert upstream.asked[-1] == KINDS
    await cache.aclose()
