"""Telemetry tests: a private NATS per test (no other traffic reaches the durable consumer),
the shared Kafka-protocol broker (a unique topic per test) or a private tansu, the proxy
driven by the official openai SDK against a mock upstream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from openai import AsyncOpenAI

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import requests_stream
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import RunningProxy, run_proxy
from trustgate_testkit.proxy.tenant import Tenant

pytest_plugins = ["trustgate_testkit.fixtures"]


@pytest.fixture
def topic() -> str:
    return f"trustgate.requests.test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka(infra: Any) -> str:
    return str(infra.kafka_bootstrap)


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[NATS]:
    nc = await connect(nats_server.url, name="telemetry-tests")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    try:
        yield nc
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    async with serve_mock("mock") as mock:
        yield mock


@pytest_asyncio.fixture
async def proxy(nats_server: NatsServer, bus: NATS) -> AsyncIterator[RunningProxy]:
    async with run_proxy(nats_server.url, tracing_env={}) as running:
        async with asyncio.timeout(10):
            await running.runtime.wait_ready()
        yield running


def sdk(proxy: RunningProxy, tenant: Tenant, consumer: str = "app") -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(tenant.consumers[consumer]),
            api_key="unused",
            max_retries=0,
            timeout=10,
            default_headers={
                "X-AG-Gateway-Slug": tenant.slug,
                "X-AG-API-Key": tenant.keys[consumer],
            },
        )
    )


Chat = Callable[[RunningProxy, Tenant], Awaitable[tuple[str, float]]]


@pytest.fixture
def chat() -> Chat:
    """One completion through the proxy with the openai SDK: (trace id, seconds taken)."""

    async def call(proxy: RunningProxy, tenant: Tenant) -> tuple[str, float]:
        client = sdk(proxy, tenant)
        started = time.perf_counter()
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
            )
            raw.parse()
        finally:
            await client.close()
        return raw.headers["x-ag-trace-id"], time.perf_counter() - started

    return call
