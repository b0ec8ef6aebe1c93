"""The upstream list cache: one fetch per key in flight, kept per registry object, and a
fetch that raced a drop not kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from trustgate_core.models import Registry
from trustgate_mcp.adapters.upstream.lists import Items, ListCache

NOW = datetime.now(UTC)


def registry() -> Registry:
    return Registry(
        id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, name="r", type="MCP"
    )


class Upstream:
    """A fetch that waits for the test to release it and counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def fetch(self) -> Items:
        self.calls += 1
        n = self.calls
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [{"name": f"t{n}"}]


async def test_callers_of_one_key_share_the_fetch_in_flight() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    key: Any = (reg.id, "", "tools")
    waiters = [asyncio.create_task(cache.get(key, reg, upstream.fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    upstream.release.set()
    assert [await w for w in waiters] == [[{"name": "t1"}]] * 10
    assert await cache.get(key, reg, upstream.fetch) == [{"name": "t1"}]
    assert upstream.calls == 1


async def test_a_cancelled_caller_leaves_the_fetch_to_the_others() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    key: Any = (reg.id, "", "tools")
    first = asyncio.create_task(cache.get(key, reg, upstream.fetch))
    second = asyncio.create_task(cache.get(key, reg, upstream.fetch))
    await asyncio.sleep(0)
    first.cancel()
    upstream.release.set()
    assert await second == [{"name": "t1"}]
    assert upstream.calls == 1


async def test_a_failed_fetch_is_not_kept() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    key: Any = (reg.id, "", "tools")
    upstream.error = RuntimeError("down")
    upstream.release.set()
    with pytest.raises(RuntimeError):
        await cache.get(key, reg, upstream.fetch)
    upstream.error = None
    assert await cache.get(key, reg, upstream.fetch) == [{"name": "t2"}]


async def test_a_fetch_that_raced_a_drop_is_returned_but_not_kept() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    key: Any = (reg.id, "", "tools")
    running = asyncio.create_task(cache.get(key, reg, upstream.fetch))
    await asyncio.sleep(0)
    cache.drop(reg.id, ("tools",))
    later = asyncio.create_task(cache.get(key, reg, upstream.fetch))
    await asyncio.sleep(0)
    upstream.release.set()
    assert await running == [{"name": "t1"}]
    assert await later == [{"name": "t2"}]
    assert await cache.get(key, reg, upstream.fetch) == [{"name": "t2"}]
    assert upstream.calls == 2


async def test_entries_belong_to_one_registry_object_and_kind() -> None:
    cache, upstream, reg = ListCache(60), Upstream(), registry()
    upstream.release.set()
    tools: Any = (reg.id, "", "tools")
    prompts: Any = (reg.id, "", "prompts")
    await cache.get(tools, reg, upstream.fetch)
    await cache.get(prompts, reg, upstream.fetch)
    cache.drop(reg.id, ("prompts",))
    assert await cache.get(tools, reg, upstream.fetch) == [{"name": "t1"}]
    assert await cache.get(prompts, reg, upstream.fetch) == [{"name": "t3"}]
    edited = reg.model_copy(update={"name": "edited"})
    assert await cache.get(tools, edited, upstream.fetch) == [{"name": "t4"}]
    await cache.aclose()
