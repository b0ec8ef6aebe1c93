"""Shared helpers for admin tests: reading the config stream, building a replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from trustgate_core.events import CONFIG_STREAM, decode_config_event
from trustgate_core.replica import ConfigReplica


async def read_stream(nats_url: str, gateway_id: str, *, last_per_subject: bool = False) -> list[Any]:
    """Every config event currently in the stream for one gateway, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(CONFIG_STREAM.name)
        if info.state.messages == 0:
            return []
        sub = await js.pull_subscribe(
            f"trustgate.config.*.{gateway_id}.*",
            stream=CONFIG_STREAM.name,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else DeliverPolicy.ALL
            ),
        )
        events: list[Any] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=0.3)
            except TimeoutError:
                break
            for msg in msgs:
                events.append(decode_config_event(msg.data))
                await msg.ack()
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


@asynccontextmanager
async def replica(nats_url: str) -> AsyncIterator[ConfigReplica]:
    nc = await nats.connect(nats_url)
    rep = ConfigReplica(nc)
    try:
        await rep.start()
        await rep.wait_ready(10)
        yield rep
    finally:
        await rep.stop()
        await nc.close()
