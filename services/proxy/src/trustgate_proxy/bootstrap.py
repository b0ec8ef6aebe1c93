"""The composition root: builds the proxy's parts and owns their lifecycle.

The HTTP app is usable at once (``/healthz`` answers, ``/readyz`` says not ready); a
background task connects to NATS (retrying), makes sure the streams exist, and starts the
config replica. The proxy serves traffic once the replica has caught up, and keeps serving
from it if NATS goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Mapping
from types import TracebackType

import aiohttp
from nats.aio.client import Client as NATS

from trustgate_core.bus import ensure_streams, keep_connecting
from trustgate_core.crypto import SecretBox
from trustgate_core.events.subjects import CONFIG_STREAM, requests_stream
from trustgate_core.observability.tracing import Tracing, setup_tracing
from trustgate_core.replica import ConfigReplica, ReplicaState
from trustgate_proxy.adapters.upstream import make_session
from trustgate_proxy.asgi.app import ProxyApp
from trustgate_proxy.domain.routing import Balancer, RoundRobin
from trustgate_proxy.handlers.config import follow_config
from trustgate_proxy.handlers.request_events import RequestEventPublisher
from trustgate_proxy.observability.metrics import ProxyMetrics
from trustgate_proxy.observability.recorder import CallRecorder
from trustgate_proxy.observability.tracing import CallTracer
from trustgate_proxy.services.config_view import ConfigView
from trustgate_proxy.services.forward import Forwarder
from trustgate_proxy.services.models import ModelLister
from trustgate_proxy.services.ports import EventSink, NullSink
from trustgate_proxy.settings import ProxySettings

log = logging.getLogger(__name__)

_RETRY_MIN, _RETRY_MAX = 0.2, 5.0


class ProxyRuntime:
    """Everything one proxy process holds. ``async with ProxyRuntime(settings) as rt``
    then serve ``rt.app``.

    Tracing is configured from ``tracing_env`` (default: the process environment; see
    `trustgate_core.observability.tracing`) when the runtime starts."""

    SERVICE_NAME = "trustgate-proxy"

    def __init__(
        self,
        settings: ProxySettings,
        *,
        balancer: Balancer | None = None,
        tracing_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.tracing_env = tracing_env
        self.tracing: Tracing | None = None
        self.state = ReplicaState()
        self.view = ConfigView(self.state, SecretBox(settings.secrets_material))
        self.publisher = RequestEventPublisher(settings.event_queue_size)
        sink: EventSink = self.publisher if settings.telemetry_enabled else NullSink()
        self.observed = ProxyMetrics(before_collect=self._drain_recorder)
        # metrics and spans are taken from each finished call in the background
        self.recorder = CallRecorder(sink, self.observed)
        self.events: EventSink = self.recorder
        self._register_readings()
        self.balancer: Balancer = balancer or RoundRobin()
        self.nc: NATS | None = None
        self.replica: ConfigReplica | None = None
        self.session: aiohttp.ClientSession | None = None
        self._boot: asyncio.Task[None] | None = None
        self._app: ProxyApp | None = None
        self._replica_set = asyncio.Event()

    @property
    def app(self) -> ProxyApp:
        if self._app is None:
            raise RuntimeError("the runtime is not started")
        return self._app

    @property
    def ready(self) -> bool:
        return self.replica is not None and self.replica.ready

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self.session = make_session(
            pool_size=s.upstream_pool_size,
            keepalive=s.upstream_keepalive,
            connect_timeout=s.provider_connect_timeout,
            read_timeout=s.provider_request_timeout,
        )
        self._app = ProxyApp(
            state=self.state,
            view=self.view,
            balancer=self.balancer,
            forwarder=Forwarder(self.session),
            models=ModelLister(self.view, self.session),
            events=self.events,
            is_ready=lambda: self.ready,
            dependencies=self.dependencies,
            metrics=self.observed.render,
            discovery_mode=s.discovery_mode,
            base_domain=s.gateway_base_domain,
            max_body_bytes=s.max_body_bytes,
        )
        self.tracing = setup_tracing(self.SERVICE_NAME, self.tracing_env)
        if self.tracing is not None:
            tracer = CallTracer(self.tracing)
            self.recorder.tracer = tracer
            self.publisher.sampled = tracer.sampled  # the event's traceparent flag
        self.recorder.start()
        self.publisher.start()
        self._boot = asyncio.create_task(self._connect(), name="proxy-boot")

    async def wait_ready(self) -> None:
        """Until the replica has caught up (wrap in ``asyncio.timeout``)."""
        await self._replica_set.wait()
        assert self.replica is not None
        await self.replica.wait_ready()

    async def stop(self) -> None:
        if self._boot is not None:
            self._boot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._boot
            self._boot = None
        await self.recorder.stop()
        await self.publisher.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        if self.replica is not None:
            await self.replica.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.session is not None:
            await self.session.close()

    async def __aenter__(self) -> ProxyRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _connect(self) -> None:
        s = self.settings
        self.nc = NATS()
        await keep_connecting(
            self.nc, s.nats_url, name="trustgate-proxy", on_reconnect=self._on_reconnect
        )
        self.publisher.attach(self.nc)
        delay = _RETRY_MIN
        while True:
            replica = ConfigReplica(self.nc, state=self.state)
            follow_config(replica, self.view)
            try:
                await ensure_streams(
                    self.nc.jetstream(),
                    [
                        CONFIG_STREAM,
                        requests_stream(s.requests_max_age_seconds, s.requests_max_bytes),
                    ],
                )
                await replica.start()
            except Exception as exc:
                log.warning("proxy: config replica not started (%s); retrying", exc)
                await replica.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            self.replica = replica
            self._replica_set.set()
            await replica.wait_ready()
            # What exists now (modules, config) lives as long as the process: keep it out of
            # the collector's way, so full collections stay short on the request path.
            gc.collect()
            gc.freeze()
            return

    def _on_reconnect(self) -> None:
        """After a reconnect, changes made during the outage arrive at once."""
        if self.replica is not None:
            self.replica.resync()

    # -- observability --------------------------------------------------------------------
    def dependencies(self) -> dict[str, str]:
        return {
            "nats": "ok" if self.nc is not None and self.nc.is_connected else "unavailable",
            "config": "ok" if self.ready else "unavailable",
        }

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
            lambda: self.replica.applied if self.replica else 0,
        )
        a.gauge(
            "trustgate_proxy_config_ready",
            "1 once the config replica has caught up with the bus.",
            lambda: 1 if self.ready else 0,
        )
