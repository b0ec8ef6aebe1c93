"""Awaiting several coroutines at once, cheaply when most answer without waiting.

``asyncio.gather`` makes a task of each coroutine, and tasks cost tens of microseconds
each here; on the request path most answers come from a cache and never suspend. Python
3.12's eager tasks solve this; the plane runs on 3.11, so ``eagerly`` does the same: each
coroutine runs at once up to its first suspension, and only one that suspends goes on as a
task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")


async def eagerly(coroutines: Sequence[Coroutine[Any, Any, _T]]) -> list[_T | Exception]:
    """``asyncio.gather(*coroutines, return_exceptions=True)`` (an exception that is not an
    ``Exception``, such as a cancellation, is raised), without a task for a coroutine that
    finishes without suspending. Every ``tools/call`` consults the catalog: eight tasks
    per call cost over 100 µs on a loaded 2-core machine, eight cached answers a few."""
    results: list[Any] = []  # None holds the place of a suspended one's answer
    suspended: list[tuple[int, asyncio.Future[_T]]] = []
    try:
        for i, coroutine in enumerate(coroutines):
            try:
                yielded = coroutine.send(None)
            except StopIteration as stop:
                results.append(stop.value)
            except Exception as exc:
                results.append(exc)
            else:
                results.append(None)
                suspended.append((i, asyncio.ensure_future(_Rest(coroutine, yielded))))
    except BaseException:
        for coroutine in coroutines[len(results) :]:
            coroutine.close()
        for _, future in suspended:
            future.cancel()
        raise
    if suspended:
        answers = await asyncio.gather(*(f for _, f in suspended), return_exceptions=True)
        for (i, _), answer in zip(suspended, answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, Exception):
                raise answer
            results[i] = answer
    return results


class _Rest(Coroutine[Any, Any, _T]):
    """What is left of a coroutine that already ran to its first suspension, as a
    coroutine for a task: the task's first step gets the future the coroutine yielded,
    every later send and throw (a cancellation too, even before that first step) goes to
    the coroutine."""

    __slots__ = ("_coroutine", "_yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, _T], yielded: Any) -> None:
        self._coroutine = coroutine
        self._yielded: Any = yielded

    def send(self, value: Any) -> Any:
        if self._yielded is not _DELIVERED:
            yielded, self._yielded = self._yielded, _DELIVERED
            return yielded
        return self._coroutine.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._yielded = _DELIVERED
        if val is None and tb is None:
            return self._coroutine.throw(typ)
        return self._coroutine.throw(typ, val, tb)

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, _T]:
        raise TypeError("_Rest is run by a task, not awaited")


_DELIVERED = object()
