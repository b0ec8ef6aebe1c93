"""NATS helpers: one way to connect, and streams created (or converged) idempotently."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from trustgate_core.backoff import Backoff, retry
from trustgate_core.events.subjects import StreamSpec

log = logging.getLogger(__name__)


OnReconnect = Callable[[], None]


def connect_options(
    url: str,
    *,
    name: str,
    connect_timeout: float = 2.0,
    on_reconnect: OnReconnect | None = None,
) -> dict[str, Any]:
    """Options for a connection that, once made, reconnects forever; ``on_reconnect`` runs
    after each reconnect (e.g. ``ConfigReplica.resync``)."""

    async def _on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    async def _on_disconnect() -> None:
        log.warning("nats: disconnected")

    async def _on_reconnect() -> None:
        log.info("nats: reconnected")
        if on_reconnect is not None:
            on_reconnect()

    return {
        "servers": [url],
        "name": name,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": 0.5,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "error_cb": _on_error,
        "disconnected_cb": _on_disconnect,
        "reconnected_cb": _on_reconnect,
    }


async def connect(
    url: str,
    *,
    name: str,
    connect_timeout: float = 2.0,
    on_reconnect: OnReconnect | None = None,
) -> NATS:
    """Connect now (raises if NATS is unreachable); reconnects forever afterwards."""
    options = connect_options(
        url, name=name, connect_timeout=connect_timeout, on_reconnect=on_reconnect
    )
    return await nats.connect(**options)


async def keep_connecting(
    nc: NATS,
    url: str,
    *,
    name: str,
    on_reconnect: OnReconnect | None = None,
    retry_min: float = 0.2,
    retry_max: float = 5.0,
) -> None:
    """Make the first connection of ``nc``, retrying with backoff until it succeeds (for
    services that must boot while NATS is down). Later reconnects are the client's own."""
    if nc.is_connected:
        return

    async def attempt() -> None:
        await nc.connect(**connect_options(url, name=name, on_reconnect=on_reconnect))

    await retry(
        attempt, what=f"nats: connect to {url}", backoff=Backoff(retry_min, retry_max), log=log
    )


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_age=spec.max_age_seconds,
        max_bytes=spec.max_bytes,
        duplicate_window=spec.duplicate_window_seconds,
        num_replicas=replicas,
    )


async def ensure_streams(
    js: JetStreamContext, specs: Iterable[StreamSpec], *, replicas: int | None = None
) -> None:
    """Create each stream, or update it to the spec if it exists: safe to call at every boot
    from every instance. ``replicas`` (``NATS_STREAM_REPLICAS``): how many copies each
    stream keeps in a JetStream cluster; None keeps an existing stream's count (so one set
    by hand survives every boot) and creates one with a single copy."""
    for spec in specs:
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(stream_config(spec, replicas or 1))
                log.info("created stream %s", spec.name)
                continue
            except Exception:  # lost a race with another instance: fall through to update
                log.debug("stream %s created concurrently", spec.name)
                info = await js.stream_info(spec.name)
        kept = info.config.num_replicas or 1
        await js.update_stream(stream_config(spec, replicas if replicas is not None else kept))
