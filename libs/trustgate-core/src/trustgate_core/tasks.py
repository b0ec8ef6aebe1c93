"""Ending the background tasks a service owns."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], *, again_every: float = 0.1) -> None:
    """Cancel ``task`` and return once it has ended, cancelling it again while it runs on.

    One cancellation can be swallowed: on Python 3.11 ``asyncio.wait_for`` returns (or
    raises) the awaited call's outcome when both end at once, and a library that retries
    on that error (nats-py connecting to a server that is down) then carries on.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_every)
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r", task.get_name(), task.exception())
