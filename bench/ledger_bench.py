"""The usage ledger's throughput (issue 17 §Performance: 2,000 request events per second
on one core).

Publishes ``--events`` realistic request events (usage, cost, attempts, a policy chain,
cache outcomes; spread over gateways, consumers, models, providers and hours) to a
private NATS JetStream, then runs the admin's ledger alone in this process against a
new, migrated database on the local Postgres (``TEST_POSTGRES_DSN``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and measures how long it takes to
count the backlog: events per second (wall clock) and this process's CPU time per event
(Postgres and NATS run in their own processes). Pin it to one core with taskset::

    taskset -c 0 .venv/bin/python bench/ledger_bench.py --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats

from trustgate_admin.adapters.db.engine import create_engine, session_factory
from trustgate_admin.adapters.db.migrate import migrate
from trustgate_admin.governance.ledger import Ledger
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_core.bus import ensure_streams
from trustgate_core.crypto import SecretBox
from trustgate_core.events.subjects import requests_stream, requests_subject
from trustgate_testkit.admin import admin_settings
from trustgate_testkit.fixtures import (
    DEFAULT_POSTGRES_DSN,
    NatsServer,
    create_database,
    drop_database,
    wait_for,
)

TARGET_PER_SECOND = 2000.0


def realistic_events(count: int, hours: int = 48, seed: int = 3) -> list[bytes]:
    """Request events as the proxy encodes them (orjson of its plain mapping), started
    within the last ``hours`` (48: a backlog whose batches touch many rollup rows)."""
    import orjson

    rng = random.Random(seed)
    gateways = [str(uuid.uuid4()) for _ in range(10)]
    consumers = [str(uuid.uuid4()) for _ in range(50)]
    registries = [str(uuid.uuid4()) for _ in range(4)]
    models = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic"), ("gemini", "google")]
    now = datetime.now(UTC)
    out = []
    for _ in range(count):
        model, provider = rng.choice(models)
        started = now - timedelta(seconds=rng.randrange(0, hours * 3600))
        prompt, completion = rng.randrange(10, 4000), rng.randrange(0, 800)
        total_usd = round(prompt * 1.5e-7 + completion * 6e-7, 9)
        status = rng.choice([200] * 18 + [429, 502])
        event: dict[str, Any] = {
            "schema_version": 1,
            "kind": "llm",
            "trace_id": uuid.uuid4().hex,
            "gateway_id": rng.choice(gateways),
            "tenant_id": "bench",
            "consumer_id": rng.choice(consumers),
            "registry_id": rng.choice(registries),
            "auth_id": str(uuid.uuid4()),
            "method": "POST",
            "path": "/v1/chat/completions",
            "provider": provider,
            "requested_model": model,
            "model": model,
            "status": status,
            "stream": rng.random() < 0.3,
            "error_kind": None if status == 200 else "upstream_status",
            "timings": {
                "total_ms": 812.4,
                "upstream_ttfb_ms": 301.2,
                "upstream_ms": 805.1,
                "gateway_ms": 1.9,
                "policies_ms": 0.8,
            },
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cached_input_tokens": rng.choice([None, 0, 128]),
            },
            "cost": {
                "prompt_usd": prompt * 1.5e-7,
                "completion_usd": completion * 6e-7,
                "cached_usd": 0.0,
                "total_usd": total_usd,
                "currency": "USD",
            },
            "policy_chain": [
                {
                    "policy_id": str(uuid.uuid4()),
                    "name": "limits",
                    "plugin": "rate_limiter",
                    "stage": "pre_request",
                    "decision": "pass",
                    "latency_ms": 0.21,
                },
                {
                    "policy_id": str(uuid.uuid4()),
                    "name": "budget",
                    "plugin": "token_rate_limiter",
                    "stage": "post_response",
                    "decision": "pass",
                    "latency_ms": 0.35,
                },
            ],
            "sizes": {"request_bytes": 1840, "response_bytes": 2311},
            "started_at": started.isoformat(),
            "ended_at": (started + timedelta(milliseconds=812)).isoformat(),
            "attempts": [
                {
                    "registry_id": registries[0],
                    "provider": provider,
                    "attempt": 1,
                    "fallback": False,
                    "route_model": model,
                    "outcome": "success",
                    "status_code": status,
                    "latency_ms": 805.1,
                },
            ],
            "outcome": "success",
            "session_id": None,
            "cache": rng.choice([None, {"outcome": "miss"}, {"outcome": "hit", "similarity": 1.0}]),
        }
        out.append(orjson.dumps(event))
    return out


async def publish(nats_url: str, payloads: list[bytes]) -> None:
    import orjson

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, [requests_stream()])
        for start in range(0, len(payloads), 500):
            chunk = payloads[start : start + 500]
            await asyncio.gather(
                *(js.publish(requests_subject(orjson.loads(p)["gateway_id"]), p) for p in chunk)
            )
    finally:
        await nc.close()


async def run(events: int, batch: int, hours: int = 48) -> dict[str, float]:
    server_dsn = os.environ.get("TEST_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN
    bus = NatsServer()
    bus.start()
    dsn = await create_database(server_dsn, "tg_ledger_bench")
    try:
        payloads = realistic_events(events, hours)
        await publish(bus.url, payloads)
        settings = admin_settings(
            dsn,
            bus.url,
            LEDGER_DURABLE="bench-ledger",
            LEDGER_BATCH_SIZE=batch,
            LEDGER_FETCH_WAIT=0.2,
        )
        engine = create_engine(dsn, pool_size=4)
        await migrate(engine)
        nc = await nats.connect(bus.url)
        deps = GovernanceDeps(
            settings, engine, session_factory(engine), SecretBox(settings.secrets_material), nc
        )
        ledger = Ledger(deps, sinks=[], after=[])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await ledger.start()
        try:
            await wait_for(lambda: ledger.stats.counted >= events, timeout=600, interval=0.01)
        finally:
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            await ledger.stop()
            await nc.close()
            await engine.dispose()
        return {
            "events": float(ledger.stats.counted),
            "seconds": wall,
            "events_per_second": events / wall,
            "cpu_seconds": cpu,
            "cpu_us_per_event": cpu / events * 1e6,
            "events_per_cpu_second": events / cpu,
        }
    finally:
        await drop_database(server_dsn, dsn)
        bus.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="LEDGER_BATCH_SIZE")
    parser.add_argument(
        "--hours", type=int, default=48, help="events started within the last N hours"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.events, args.batch, args.hours))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"cores allowed: {cores}")
    print(
        f"ledger: {result['events']:.0f} events in {result['seconds']:.2f} s = "
        f"{result['events_per_second']:.0f} events/s; CPU {result['cpu_seconds']:.2f} s = "
        f"{result['cpu_us_per_event']:.0f} us/event ({result['events_per_cpu_second']:.0f} "
        "events per CPU-second)"
    )
    ok = result["events_per_second"] >= TARGET_PER_SECOND
    print(f"target {TARGET_PER_SECOND:.0f} events/s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
