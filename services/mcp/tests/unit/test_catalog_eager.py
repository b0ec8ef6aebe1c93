"""``eagerly`` answers like ``gather(return_exceptions=True)``, in order, but makes a task
only of a coroutine that suspends (the catalog's lists are cached nearly always)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from trustgate_mcp.services.eager import eagerly


async def cached(value: int) -> int:
    return value


async def fetched(value: int, gate: asyncio.Event) -> int:
    await gate.wait()
    return value


async def failing(gate: asyncio.Event | None) -> int:
    if gate is not None:
        await gate.wait()
    raise LookupError("gone")


OURS = {"eagerly", "_Rest"}


@contextmanager
def counting_tasks() -> Iterator[list[object]]:
    loop = asyncio.get_running_loop()
    made: list[object] = []
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # the test's eagerly and the tasks it makes, not another test's leftover work (a
        # client's close its finalizer scheduled) running on the shared loop meanwhile
        if getattr(coro, "__name__", type(coro).__name__) in OURS:
            made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield made
    finally:
        loop.set_task_factory(previous)


async def test_answers_that_do_not_wait_cost_no_task() -> None:
    with counting_tasks() as made:
        answers = await eagerly([cached(1), cached(2), failing(None)])
    assert made == []
    assert answers[:2] == [1, 2]
    assert isinstance(answers[2], LookupError)


async def test_answers_that_wait_come_back_in_order_with_their_errors() -> None:
    gate = asyncio.Event()
    with counting_tasks() as made:
        waiting = asyncio.ensure_future(
            eagerly([fetched(1, gate), cached(2), failing(gate), fetched(4, gate)])
        )
        await asyncio.sleep(0)  # let it start; the three that wait are now tasks
        gate.set()
        answers = await waiting
    assert len(made) == 1 + 3
    assert [answers[0], answers[1], answers[3]] == [1, 2, 4]
    assert isinstance(answers[2], LookupError)


async def test_a_cancelled_wait_cancels_what_still_waits() -> None:
    gate = asyncio.Event()
    started = fetched(1, gate)
    waiting = asyncio.ensure_future(eagerly([started, cached(2)]))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # finished by the cancellation, not left suspended on the gate
    assert inspect.getcoroutinestate(started) == inspect.CORO_CLOSED
