"""Start a TrustGate proxy preconfigured for a benchmark mock, without the admin plane.

1. starts a private nats-server (JetStream, temporary store) *detached* from this process
   tree, so a harness that measures this process's CPU and memory measures the proxy only;
2. publishes the config as the admin's outbox would: gateway ``bench``, one
   ``openai_compatible`` registry per upstream (``anthropic`` for kinds named
   ``anthropic…``, whose clients call ``/bench/v1/messages``), consumer ``bench`` (slug
   ``bench``) whose model policies route model ``<kind>`` to the upstream of that kind,
   and a fixed key;
3. runs the proxy in this process (uvloop, httptools) until SIGINT/SIGTERM, then stops
   nats-server.

``--jwt`` lets the consumer also authenticate with ``jwt_bench.token()`` (an OIDC token
verified against a public key of its auth; issue 13's benchmark). ``--routing`` serves model ``json`` through a weighted two-member pool with passive health
and an untriggered fallback chain (issue 12's benchmark). ``--policies`` attaches a ``rate_limiter`` and a ``token_rate_limiter`` to the consumer
(limits far above what a run sends, so every request is checked and none refused), with
their counters in a private ``redis-server`` started like nats-server (``--redis-cpus``,
default core 0, the load generator's).

Upstreams come from ``--upstream kind=url`` or from ``BENCH_MOCK_JSON``, ``BENCH_MOCK_SSE``,
``BENCH_MOCK_JSON_SLOW`` and ``BENCH_MOCK_SSE_SLOW`` (what the shared harness sets).

    python bench/serve_trustgate.py --port 18141 --upstream json=http://127.0.0.1:18101/v1
    curl -s http://127.0.0.1:18141/bench/v1/chat/completions \\
      -H 'X-AG-Gateway-Slug: bench' -H "X-AG-API-Key: $BENCH_KEY" \\
      -d '{"model":"json","messages":[{"role":"user","content":"hi"}]}'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime

import jwt_bench  # bench/, beside this file

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.embedded import find_nats_server, free_port, wait_port
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.subjects import requests_stream
from trustgate_core.ids import uuid7
from trustgate_core.models import (
    Auth,
    Fallback,
    HealthChecks,
    LbConfig,
    LbMember,
    ModelPolicy,
    RegistryBinding,
)
from trustgate_proxy.main import serve_settings
from trustgate_proxy.settings import ProxySettings
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

BENCH_KEY = "ag_benchmark-key-0123456789abcdefghijklmnopqrstuv"
SLUG = "bench"
KINDS = ("json", "sse", "json_slow", "sse_slow", "anthropic_json", "anthropic_sse")


def start_nats(store: str, cpus: str | None, attached: bool) -> tuple[int, str]:
    """A nats-server reparented away from us (``sh`` backgrounds it and exits), or with
    ``attached`` our own child (then a harness measuring our process tree counts it)."""
    port = free_port()
    argv = [find_nats_server(), "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    log = os.path.join(store, "nats.log")
    if attached:
        with open(log, "ab") as out:
            pid = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT).pid
    else:
        script = " ".join(f"'{a}'" for a in argv) + f" >'{log}' 2>&1 & echo $!"
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
        pid = int(done.stdout.strip())
    wait_port("127.0.0.1", port, timeout=15)
    return pid, f"nats://127.0.0.1:{port}"


#: limits no run reaches: every request is counted, none refused
POLICIES = (
    ("bench-rate", "rate_limiter", {"limit": 1_000_000_000, "window": "1m"}),
    (
        "bench-budget",
        "token_rate_limiter",
        {"aggregate": {"max": 1_000_000_000_000, "time_window": "1h"}},
    ),
)


def start_redis(store: str, cpus: str | None) -> tuple[int, str]:
    """A redis-server (no persistence) reparented away from us, as nats-server is."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--policies needs redis-server on PATH (scripts/services.py ensure)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    script = " ".join(f"'{a}'" for a in argv) + f" >'{store}/redis.log' 2>&1 & echo $!"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    wait_port("127.0.0.1", port, timeout=15)
    return int(done.stdout.strip()), f"redis://127.0.0.1:{port}/0"


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


async def resilient(tenant: Tenant, url: str) -> None:
    """``--routing``: model ``json`` served by a weighted two-member pool (registries
    ``json`` and ``json-b``, weights 3:1, both on the JSON mock) with passive health on
    both, and a fallback chain (``json-fallback``) that a healthy mock never triggers."""
    checks = HealthChecks(passive=True, threshold=3, interval=60)
    for name in ("json-b", "json-fallback"):
        await tenant.add_registry(name, url, api_key="bench-upstream-key")
    for name in ("json", "json-b", "json-fallback"):
        await tenant.put_registry(name, health_checks=checks)
    ids = {name: tenant.registries[name].id for name in ("json", "json-b", "json-fallback")}
    consumer = tenant.consumers[SLUG]
    await tenant.put_consumer(
        SLUG,
        registries=[
            *consumer.registries,
            RegistryBinding(registry_id=ids["json-b"]),
        ],
        model_policies=[
            *consumer.model_policies,
            ModelPolicy(registry_id=ids["json-b"], allowed=["json"], default="json"),
            ModelPolicy(registry_id=ids["json-fallback"], allowed=["json"], default="json"),
        ],
        lb_config=LbConfig(
            enabled=True,
            algorithm="weighted-round-robin",
            members=[
                LbMember(registry_id=ids["json"], model="json", weight=3),
                LbMember(registry_id=ids["json-b"], model="json", weight=1),
            ],
        ),
        fallback=Fallback(enabled=True, triggers=["http_5xx"], chain=[ids["json-fallback"]]),
    )


async def token_auth(tenant: Tenant) -> None:
    """``--jwt``: the consumer also takes OIDC tokens signed by ``jwt_bench``'s key."""
    now = datetime.now(UTC)
    config = {
        "issuer": jwt_bench.ISSUER,
        "audiences": [jwt_bench.AUDIENCE],
        "public_keys": [{"kid": "bench", "pem": jwt_bench.public_key_pem()}],
        "allowed_algorithms": ["RS256"],
    }
    auth = Auth(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name="bench-oidc",
        type="oidc",
        config={"oidc": config},
    )
    tenant.auths[auth.name] = auth
    await tenant.put_auth(auth.name)
    consumer = tenant.consumers[SLUG]
    await tenant.put_consumer(SLUG, auth_ids=[*consumer.auth_ids, auth.id])


async def seed(
    nats_url: str,
    upstreams: dict[str, str],
    secret: str,
    *,
    policies: bool = False,
    routing: bool = False,
    jwt: bool = False,
) -> None:
    nc = await connect(nats_url, name="bench-seed")
    try:
        await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
        tenant = await new_tenant(nc, secret, slug=SLUG)
        for kind, url in upstreams.items():
            if kind.startswith("anthropic"):  # Anthropic's Messages API: /v1/messages
                await tenant.add_registry(
                    kind, url, provider="anthropic", api_key="bench-upstream-key"
                )
            else:
                await tenant.add_registry(kind, url, api_key="bench-upstream-key")
        await tenant.add_consumer(
            SLUG,
            list(upstreams),
            policies={kind: ([kind], kind) for kind in upstreams},
            slug=SLUG,
            key=BENCH_KEY,
        )
        if jwt:
            await token_auth(tenant)
        if routing and "json" in upstreams:
            await resilient(tenant, upstreams["json"])
        if policies:
            for name, plugin, settings in POLICIES:
                await tenant.add_policy(name, plugin, settings, consumers=[SLUG])
        await nc.flush()
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18141)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", action="append", default=[], metavar="KIND=URL")
    parser.add_argument(
        "--nats-cpus", default=None, help="CPUs for nats-server (default: inherit ours)"
    )
    parser.add_argument(
        "--nats-attached",
        action="store_true",
        help="run nats-server as our child (counted with us by a process-tree measurement)",
    )
    parser.add_argument(
        "--policies",
        action="store_true",
        help="attach a rate limiter and a token budget, counters in a private Redis",
    )
    parser.add_argument("--redis-cpus", default="0", help="CPUs for redis-server")
    parser.add_argument(
        "--jwt",
        action="store_true",
        help="the consumer also takes bench/jwt_bench.py's OIDC token (Authorization: Bearer)",
    )
    parser.add_argument(
        "--routing",
        action="store_true",
        help="model json through a weighted two-member pool, passive health, a fallback chain",
    )
    args = parser.parse_args()

    upstreams = {
        k: os.environ[f"BENCH_MOCK_{k.upper()}"]
        for k in KINDS
        if f"BENCH_MOCK_{k.upper()}" in os.environ
    }
    for item in args.upstream:
        kind, _, url = item.partition("=")
        upstreams[kind] = url
    if not upstreams:
        raise SystemExit("no upstream: pass --upstream kind=url or set BENCH_MOCK_JSON")

    store = tempfile.mkdtemp(prefix="trustgate-bench-nats-")
    nats_pid, nats_url = start_nats(store, args.nats_cpus, args.nats_attached)
    redis_pid: int | None = None
    try:
        env = {
            "NATS_URL": nats_url,
            "SERVER_PROXY_HOST": args.host,
            "SERVER_PROXY_PORT": str(args.port),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        }
        if args.policies:
            redis_pid, env["REDIS_URL"] = start_redis(store, args.redis_cpus)
        settings = ProxySettings(**env)  # type: ignore[arg-type]
        asyncio.run(
            seed(
                nats_url,
                upstreams,
                settings.secrets_material,
                policies=args.policies,
                routing=args.routing,
                jwt=args.jwt,
            )
        )
        serve_settings(settings)
    finally:
        stop(nats_pid)
        if redis_pid is not None:
            stop(redis_pid)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
