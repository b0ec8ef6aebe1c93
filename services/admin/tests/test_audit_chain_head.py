"""The chain's head on the bus: published at start and whenever it moved, stored once
however many admin replicas publish it, and a NATS outage only delays it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import nats
import pytest

from trustgate_admin.governance.chain import HeadPublisher, verify_database
from trustgate_admin.governance.chain_verify import Anchor
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_core.events.audit import decode_audit_head
from trustgate_core.events.subjects import AUDIT_HEAD_SUBJECT, audit_head_stream
from trustgate_testkit.admin import RunningAdmin
from trustgate_testkit.fixtures import NatsServer, wait_for

STREAM = audit_head_stream().name


@pytest.fixture
async def replicas(
    admin: RunningAdmin, nats_server: NatsServer
) -> AsyncIterator[list[HeadPublisher]]:
    """Two publishers over the admin's database, each with its own NATS connection (two
    admin replicas), publishing every 0.1 s."""
    settings = admin.settings.model_copy(update={"audit_head_interval": 0.1})
    connections = [await nats.connect(nats_server.url) for _ in range(2)]
    container = admin.container
    base = GovernanceDeps(
        settings, container.engine, container.sessions, container.box, connections[0]
    )
    publishers = [HeadPublisher(replace(base, nc=nc)) for nc in connections]
    try:
        yield publishers
    finally:
        for publisher in publishers:
            await publisher.stop()
        for nc in connections:
            await nc.close()


async def _heads(nats_url: str) -> list[Any]:
    """Every head the stream holds, oldest first."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        count = (await js.stream_info(STREAM)).state.messages
        sub = await js.subscribe(AUDIT_HEAD_SUBJECT, ordered_consumer=True)
        try:
            return [decode_audit_head((await sub.next_msg(timeout=2)).data) for _ in range(count)]
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


async def test_two_replicas_publishing_the_same_heads_store_each_once(
    admin: RunningAdmin, api: Any, nats_server: NatsServer, replicas: list[HeadPublisher]
) -> None:
    await api.post("/v1/gateways", json={})  # the chain is not empty
    for publisher in replicas:
        await publisher.start()
    first = await verify_database(admin.settings.dsn)

    def published(seq: int) -> bool:
        return all(p.published is not None and p.published.seq >= seq for p in replicas)

    await wait_for(lambda: published(first.head_seq), timeout=10, message="no head at start")
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    assert (await api.delete(f"/v1/gateways/{gw}")).status_code == 204
    moved = await verify_database(admin.settings.dsn)
    await wait_for(lambda: published(moved.head_seq), timeout=10, message="the moved head")

    heads = await _heads(nats_server.url)
    seqs = [h.seq for h in heads]
    assert len(seqs) == len(set(seqs)), "a head stored twice"
    assert heads[-1].seq == moved.head_seq and heads[-1].hash == moved.head_hash
    assert (await verify_database(admin.settings.dsn, [])).ok
    # each published head anchors the chain
    anchors = [Anchor(h.seq, h.hash) for h in heads]
    assert (await verify_database(admin.settings.dsn, anchors)).ok


async def test_nats_down_skips_the_head_and_a_later_tick_publishes_it(
    admin: RunningAdmin, api: Any, nats_server: NatsServer, replicas: list[HeadPublisher]
) -> None:
    publisher = replicas[0]
    await api.post("/v1/gateways", json={})
    nats_server.stop()
    await wait_for(lambda: not publisher.deps.nc.is_connected, timeout=10)
    assert await publisher.publish_once() is None  # skipped, not raised
    nats_server.start()
    event = await wait_for(publisher.publish_once, timeout=20, message="never published")
    head = await verify_database(admin.settings.dsn)
    assert event.seq == head.head_seq
    assert [h.seq for h in await _heads(nats_server.url)] == [head.head_seq]
