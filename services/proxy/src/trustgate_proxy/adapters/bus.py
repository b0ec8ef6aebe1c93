"""The proxy's NATS connection.

``trustgate_core.bus.connect`` passes ``retry_on_failed_connect``, which nats-py 2.16 does
not accept; until core is fixed the proxy connects here with the same reconnect policy and
retries the first connect itself (see ``bootstrap``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import nats
from nats.aio.client import Client as NATS

log = logging.getLogger(__name__)


async def connect_nats(
    url: str,
    *,
    name: str,
    connect_timeout: float = 2.0,
    on_reconnect: Callable[[], None] | None = None,
) -> NATS:
    async def _on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def _on_disconnect() -> None:
        log.warning("nats: disconnected")

    async def _on_reconnect() -> None:
        log.info("nats: reconnected")
        if on_reconnect is not None:
            on_reconnect()

    return await nats.connect(
        servers=[url],
        name=name,
        connect_timeout=connect_timeout,  # type: ignore[arg-type]
        reconnect_time_wait=0.5,  # type: ignore[arg-type]
        max_reconnect_attempts=-1,
        allow_reconnect=True,
        error_cb=_on_error,
        disconnected_cb=_on_disconnect,
        reconnected_cb=_on_reconnect,
    )
