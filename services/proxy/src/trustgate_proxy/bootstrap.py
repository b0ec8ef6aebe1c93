"""The composition root: builds the proxy's parts and owns their lifecycle.

The HTTP app is usable at once (``/healthz`` answers, ``/readyz`` says not ready); the
replica runner (core's) connects to NATS (retrying), makes sure the streams exist, and starts
the config replica. The proxy serves traffic once the replica has caught up, and keeps
serving from it if NATS goes away. Once caught up it keeps a sealed snapshot of its config
on disk (``PROXY_CONFIG_SNAPSHOT``); a proxy that cannot reach NATS when it starts serves
from that snapshot until NATS returns.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from nats.aio.client import Client as NATS

from trustgate_core.bus import RequestEventPublisher
from trustgate_core.counters import Counters, counters_from
from trustgate_core.crypto import SecretBox
from trustgate_core.events.config import AnyConfigEvent
from trustgate_core.events.subjects import CONFIG_STREAM, requests_stream
from trustgate_core.models import Consumer
from trustgate_core.models.base import EntityKind
from trustgate_core.observability.tracing import Tracing, setup_tracing
from trustgate_core.policy import PolicyDeps, PolicyEngine
from trustgate_core.policy.runners import LLM_RUNNERS, gateway_plan
from trustgate_core.policy.runners.cache import PORT as CACHE_PORT
from trustgate_core.pricing import PriceBook
from trustgate_core.receipts.signer import ReceiptSigner
from trustgate_core.replica import ConfigReplica, ReplicaState
from trustgate_core.replica.snapshot import SnapshotFile, SnapshotKeeper
from trustgate_core.service import HealthApp, Lifecycle, ReplicaRunner
from trustgate_proxy import __version__
from trustgate_proxy.adapters.providers import BUILDERS
from trustgate_proxy.adapters.upstream import make_session
from trustgate_proxy.asgi.app import ProxyApp
from trustgate_proxy.domain.call import Call, event_payload
from trustgate_proxy.handlers.config import config_listeners
from trustgate_proxy.observability.metrics import ProxyMetrics
from trustgate_proxy.observability.recorder import CallRecorder
from trustgate_proxy.observability.tracing import CallTracer, call_traceparent
from trustgate_proxy.services.cache import CacheService
from trustgate_proxy.services.config_view import ConfigView, RouterFactory
from trustgate_proxy.services.forward import Forwarders
from trustgate_proxy.services.models import ModelLister
from trustgate_proxy.services.pipeline import Pipeline
from trustgate_proxy.services.ports import NO_POLICIES, CallSink, Chain, ChainCompiler, NullSink
from trustgate_proxy.services.resilience import Routing
from trustgate_proxy.services.sessions import Sessions
from trustgate_proxy.settings import ProxySettings

log = logging.getLogger(__name__)


class ProxyRuntime(Lifecycle):
    """Everything one proxy process holds. ``async with ProxyRuntime(settings) as rt``
    then serve ``rt.app``.

    Tracing is configured from ``tracing_env`` (default: the process environment; see
    `trustgate_core.observability.tracing`) when the runtime starts.

    ``bus=False`` runs it without NATS (the in-process harness of request-path tests): the
    configuration is whatever ``apply`` is given, it is ready at once, and finished calls
    go to ``sink`` instead of the request-event publisher."""

    SERVICE_NAME = "trustgate-proxy"

    def __init__(
        self,
        settings: ProxySettings,
        *,
        router: RouterFactory | None = None,
        chain: ChainCompiler | None = None,
        tracing_env: Mapping[str, str] | None = None,
        bus: bool = True,
        sink: CallSink | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.tracing_env = tracing_env
        self.tracing: Tracing | None = None
        self.state = ReplicaState()
        box = SecretBox(settings.secrets_material)
        self.counters: Counters = counters_from(settings)
        self.engine = PolicyEngine(
            LLM_RUNNERS,
            PolicyDeps(counters=self.counters, prices=PriceBook.default()),
            plane="LLM",
            gateway_runner=gateway_plan,
        )
        self.routing = Routing.from_settings(settings, self.counters)
        # the semantic cache's port: the bus and the embedder are read when a call needs them
        self.engine.deps.extra[CACHE_PORT] = CacheService(
            lambda: self.runner.nc, self.routing.deps, settings.semantic_cache_lookup_timeout
        )
        self.sessions = Sessions.from_settings(settings, self.counters)
        self.view = ConfigView(
            self.state,
            box,
            BUILDERS,
            router=router or self.routing.router_factory,
            chain=chain or self._compile_chain,
        )
        self.publisher: RequestEventPublisher[Call] = RequestEventPublisher(
            event_payload, call_traceparent, settings.event_queue_size
        )
        # usage receipts: signed in the publisher's task; while no gateway asks for them
        # the publisher builds events without the signer in between
        self.receipts: ReceiptSigner[Call] = ReceiptSigner(
            self.state, settings.secrets_material, event_payload
        )
        if sink is None:
            sink = self.publisher if settings.telemetry_enabled and bus else NullSink()
        self.observed = ProxyMetrics(before_collect=self._drain_recorder)
        self.observed.watch_routing(self.routing)
        # metrics and spans are taken from each finished call in the background
        self.recorder = CallRecorder(sink, self.observed)
        self.events: CallSink = self.recorder
        self._register_readings()
        self.runner = ReplicaRunner(
            settings.nats_url,
            stream_replicas=settings.stream_replicas,
            name=self.SERVICE_NAME,
            state=self.state,
            streams=[
                CONFIG_STREAM,
                requests_stream(settings.requests_max_age_seconds, settings.requests_max_bytes),
            ],
            listeners=[*config_listeners(self.view), self._config_changed, self._receipts_changed],
            on_ready=self._caught_up,
        )
        self.snapshots: SnapshotKeeper | None = None
        if bus and settings.config_snapshot:
            file = SnapshotFile(Path(settings.config_snapshot).expanduser(), box)
            self.snapshots = SnapshotKeeper(file, self.runner, self.apply)
        self.session: aiohttp.ClientSession | None = None
        self._app: ProxyApp | None = None

    @property
    def app(self) -> ProxyApp:
        if self._app is None:
            raise RuntimeError("the runtime is not started")
        return self._app

    @property
    def nc(self) -> NATS | None:
        return self.runner.nc

    @property
    def replica(self) -> ConfigReplica | None:
        return self.runner.replica

    @property
    def ready(self) -> bool:
        return self.runner.ready or not self.bus or self.serving_snapshot

    @property
    def serving_snapshot(self) -> bool:
        """Serving the config snapshot: NATS was unreachable at start and still is."""
        return self.snapshots is not None and self.snapshots.serving

    def apply(self, event: AnyConfigEvent) -> bool:
        """Apply a config event that did not come from the bus (``bus=False``, or the
        snapshot); whether it changed the state."""
        if not self.state.apply(event):
            return False
        for listener in self.runner.listeners:
            listener(event)
        return True

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self.session = make_session(
            pool_size=s.upstream_pool_size,
            keepalive=s.upstream_keepalive,
            connect_timeout=s.provider_connect_timeout,
            read_timeout=s.provider_request_timeout,
        )
        self.health = HealthApp(
            self.SERVICE_NAME,
            __version__,
            is_ready=lambda: self.ready,
            dependencies=self.dependencies,
            metrics=self.observed.render,
        )
        self.pipeline = Pipeline(
            state=self.state,
            view=self.view,
            forwarders=Forwarders(self.session),
            models=ModelLister(self.view, self.session),
            is_ready=lambda: self.ready,
            discovery_mode=s.discovery_mode,
            base_domain=s.gateway_base_domain,
            max_body_bytes=s.max_body_bytes,
            sessions=self.sessions,
        )
        traffic = self.health.for_traffic()  # /metrics is on the operations port only
        self._app = ProxyApp(
            pipeline=self.pipeline,
            events=self.events,
            system=traffic,
            certificates=s.client_certificates(),
        )
        self.tracing = setup_tracing(self.SERVICE_NAME, self.tracing_env)
        if self.tracing is not None:
            tracer = CallTracer(self.tracing)
            self.recorder.tracer = tracer
            self.publisher.sampled = tracer.sampled  # the event's traceparent flag
        self.recorder.start()
        await self.routing.start(self.view, self.pipeline.forwarders)
        await self.sessions.start()
        if not self.bus:
            return
        self.publisher.start()
        await self.runner.start()
        assert self.runner.nc is not None
        self.publisher.attach(self.runner.nc)  # it publishes once the connection is up
        if self.snapshots is not None:
            self.snapshots.start()

    async def wait_ready(self) -> None:
        """Until the replica has caught up (wrap in ``asyncio.timeout``)."""
        if self.bus:
            await self.runner.wait_ready()

    async def stop(self) -> None:
        await self.recorder.stop()
        await self.publisher.stop()  # flushes what is buffered while the connection is up
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        if self.snapshots is not None:
            await self.snapshots.stop()  # writes a change still pending
        await self.runner.stop()
        if self.session is not None:
            await self.session.close()
        await self.routing.stop()
        await self.sessions.stop()
        await self.counters.aclose()

    # -- observability --------------------------------------------------------------------
    def dependencies(self) -> dict[str, str]:
        if not self.bus:  # configuration applied in process
            return {"config": "ok"}
        dependencies = self.runner.dependencies()
        if self.serving_snapshot:
            dependencies["config"] = "snapshot"
        return dependencies

    # -- config changes -------------------------------------------------------------------
    def _compile_chain(self, consumer: Consumer) -> Chain:
        gateway = self.state.gateways.get(consumer.gateway_id)
        if gateway is None:
            return NO_POLICIES
        return self.engine.compile(gateway, consumer, self.state.policies)

    def _config_changed(self, event: AnyConfigEvent) -> None:
        if event.kind is EntityKind.policy:
            self.engine.forget(self.state.policies)
        if self.snapshots is not None:
            self.snapshots.changed(event)

    def _receipts_changed(self, event: AnyConfigEvent) -> None:
        self.receipts.changed(event)
        self.publisher.payload = self.receipts.payload if self.receipts.active else event_payload

    def _caught_up(self) -> None:
        if self.snapshots is not None:
            self.snapshots.caught_up()
        _freeze_startup_objects()

    def _drain_recorder(self) -> None:
        self.recorder.drain()

    def _register_readings(self) -> None:
        """Values ``/metrics`` reads when scraped."""
        a = self.observed.aggregates
        p = self.publisher
        a.counter(
            "trustgate_proxy_request_events_published_total",
            "Request events published on the bus.",
            lambda: p.published,
        )
        a.counter(
            "trustgate_proxy_request_events_dropped_total",
            "Request events dropped because the publish queue was full.",
            lambda: p.dropped,
        )
        a.counter(
            "trustgate_proxy_request_events_failed_total",
            "Request events the bus refused.",
            lambda: p.failed,
        )
        engine = self.engine
        counters = self.counters
        a.counter(
            "trustgate_proxy_policy_failed_open_total",
            "Calls a limit policy let through because its counters were unreachable"
            " (on_error: fail_open).",
            lambda: sum(engine.failed_open.values()),
        )
        a.counter(
            "trustgate_proxy_counters_unavailable_total",
            "Counter operations that failed (Redis unreachable, slow or erroring).",
            lambda: counters.unavailable_total,
        )
        a.gauge(
            "trustgate_proxy_request_events_pending",
            "Request events waiting to be published.",
            lambda: p.pending,
        )
        a.counter(
            "trustgate_proxy_calls_unrecorded_total",
            "Finished calls left out of metrics and traces (recorder queue full).",
            lambda: self.recorder.unrecorded,
        )
        a.counter(
            "trustgate_proxy_config_events_applied_total",
            "Config events applied to the replica.",
            lambda: self.runner.applied,
        )
        a.gauge(
            "trustgate_proxy_config_ready",
            "1 once the config replica has caught up with the bus.",
            lambda: 1 if self.ready else 0,
        )


def _freeze_startup_objects() -> None:
    """Once the replica has caught up: what exists now (modules, config) lives as long as
    the process, so keep it out of the collector's way and full collections stay short on
    the request path."""
    gc.collect()
    gc.freeze()
