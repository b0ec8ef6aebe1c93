"""The composition root: builds the MCP plane's parts and owns their lifecycle.

Like the proxy: the HTTP app answers at once (``/healthz``; ``/readyz`` says not ready);
core's replica runner connects to NATS (retrying), makes sure the streams exist and
follows the config stream; the plane serves once the replica has caught up. No database
on the request path.

``bus=False`` runs it without NATS (the in-process harness of request-path tests): the
configuration is whatever ``apply`` is given, it is ready at once, and finished calls go
to ``sink`` instead of the request-event publisher.
"""

from __future__ import annotations

from uuid import UUID

import aiohttp

from trustgate_core.access import TokenVerifier
from trustgate_core.bus import RequestEventPublisher
from trustgate_core.counters import Counters, counters_from
from trustgate_core.crypto import SecretBox
from trustgate_core.events.config import AnyConfigEvent
from trustgate_core.events.subjects import CONFIG_STREAM, requests_stream
from trustgate_core.models import Consumer
from trustgate_core.policy import Chain, PolicyDeps, PolicyEngine
from trustgate_core.policy.runners import MCP_RUNNERS, gateway_plan
from trustgate_core.pricing import PriceBook
from trustgate_core.receipts.signer import ReceiptSigner
from trustgate_core.replica import ReplicaState
from trustgate_core.service import HealthApp, Lifecycle, ReplicaRunner
from trustgate_mcp import __version__
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.adapters.upstream.auth import AUTH_REQUIRED
from trustgate_mcp.asgi.app import McpApp
from trustgate_mcp.asgi.endpoint import CallSink, Endpoint
from trustgate_mcp.domain.call import McpCall, call_traceparent, event_payload
from trustgate_mcp.domain.sessions import SessionSealer
from trustgate_mcp.handlers.config import config_listeners
from trustgate_mcp.oauth.server import OAuthServer
from trustgate_mcp.observability.metrics import McpMetrics
from trustgate_mcp.observability.sinks import NullSink
from trustgate_mcp.services.access import Access
from trustgate_mcp.services.catalog import CatalogService
from trustgate_mcp.services.dispatch import Dispatcher
from trustgate_mcp.services.plans import Plans
from trustgate_mcp.services.session_store import session_store
from trustgate_mcp.settings import McpSettings


class McpRuntime(Lifecycle):
    """Everything one MCP process holds: ``async with McpRuntime(settings) as rt``, then
    serve ``rt.app`` (traffic) and ``rt.health`` (operations port)."""

    SERVICE_NAME = "trustgate-mcp"

    def __init__(
        self, settings: McpSettings, *, bus: bool = True, sink: CallSink | None = None
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.state = ReplicaState()
        self.box = SecretBox(settings.secrets_material)
        self.counters: Counters = counters_from(settings)
        self.engine = PolicyEngine(
            MCP_RUNNERS,
            PolicyDeps(counters=self.counters, prices=PriceBook.default()),
            plane="MCP",
            gateway_runner=gateway_plan,
        )
        self.plans = Plans(self.state, self._compile_chain)
        self.oauth = OAuthServer(self.state, settings, self.counters)
        self.access = Access(
            self.state,
            self.plans,
            TokenVerifier(open_config=self.box.open_fields),
            self.oauth,
            discovery_mode=settings.discovery_mode,
            base_domain=settings.mcp_base_domain,
        )
        self.sessions = session_store(self.counters)
        self.sealer = SessionSealer(settings.secrets_material, settings.previous_keys())
        self.publisher: RequestEventPublisher[McpCall] = RequestEventPublisher(
            event_payload, call_traceparent, settings.event_queue_size
        )
        # usage receipts, as on the proxy: signed in the publisher's task, and only while
        # a gateway asks for them
        self.receipts: ReceiptSigner[McpCall] = ReceiptSigner(
            self.state, settings.secrets_material, event_payload
        )
        if sink is None:
            sink = self.publisher if settings.telemetry_enabled and bus else NullSink()
        self.sink = sink
        self.metrics = McpMetrics()
        self.upstreams: Upstreams | None = None
        self.runner = ReplicaRunner(
            settings.nats_url,
            stream_replicas=settings.stream_replicas,
            name=self.SERVICE_NAME,
            state=self.state,
            streams=[
                CONFIG_STREAM,
                requests_stream(settings.requests_max_age_seconds, settings.requests_max_bytes),
            ],
            listeners=[
                *config_listeners(self.state, self.plans, self.engine, self._forget_lists),
                self._receipts_changed,
            ],
        )
        self.http: aiohttp.ClientSession | None = None
        self.health = HealthApp(
            self.SERVICE_NAME,
            __version__,
            is_ready=lambda: self.ready,
            dependencies=self.dependencies,
            metrics=self.metrics.render,
        )
        self._app: McpApp | None = None

    @property
    def app(self) -> McpApp:
        if self._app is None:
            raise RuntimeError("the runtime is not started")
        return self._app

    @property
    def ready(self) -> bool:
        return self.runner.ready or not self.bus

    def dependencies(self) -> dict[str, str]:
        if not self.bus:
            return {"config": "ok"}
        return self.runner.dependencies()

    def _receipts_changed(self, event: AnyConfigEvent) -> None:
        self.receipts.changed(event)
        self.publisher.payload = self.receipts.payload if self.receipts.active else event_payload

    def apply(self, event: AnyConfigEvent) -> bool:
        """Apply a config event that did not come from the bus (``bus=False``); whether
        it changed the state."""
        if not self.state.apply(event):
            return False
        for listener in self.runner.listeners:
            listener(event)
        return True

    async def start(self) -> None:
        s = self.settings
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=s.upstream_pool_size),
            timeout=aiohttp.ClientTimeout(
                total=s.upstream_timeout, connect=s.upstream_connect_timeout
            ),
        )
        self.upstreams = Upstreams(
            self.http,
            self.box,
            list_ttl=s.list_ttl,
            timeout=s.upstream_timeout,
            list_timeout=s.list_timeout,
            list_backoff=s.list_backoff,
            listen=s.list_changed_stream,
            forwarded=self.oauth.upstream_tokens,
        )
        dispatcher = Dispatcher(
            self.upstreams,
            CatalogService(self.upstreams),
            self.sessions,
            self.sealer,
            session_ttl=s.session_ttl,
            server_version=__version__,
        )
        self._register_readings(dispatcher)
        endpoint = Endpoint(
            access=self.access,
            dispatcher=dispatcher,
            grants=self.oauth,
            sink=self.sink,
            metrics=self.metrics,
            is_ready=lambda: self.ready,
            max_body_bytes=s.max_body_bytes,
            public_url=s.public_url,
            resource_url=self.oauth.resource_url,
            certificates=s.client_certificates(),
        )
        self._app = McpApp(system=self.health.for_traffic(), oauth=self.oauth, endpoint=endpoint)
        if not self.bus:
            return
        self.publisher.start()
        await self.runner.start()
        assert self.runner.nc is not None
        self.publisher.attach(self.runner.nc)

    async def wait_ready(self) -> None:
        """Until the replica has caught up (wrap in ``asyncio.timeout``)."""
        if self.bus:
            await self.runner.wait_ready()

    async def stop(self) -> None:
        await self.publisher.stop()  # flushes what is buffered while the connection is up
        await self.runner.stop()
        if self.upstreams is not None:
            await self.upstreams.aclose()
        if self.http is not None:
            await self.http.close()
        await self.counters.aclose()

    # -- config ---------------------------------------------------------------------------
    def _compile_chain(self, consumer: Consumer) -> Chain:
        gateway = self.state.gateways.get(consumer.gateway_id)
        if gateway is None:
            return Chain(self.engine, ())
        return self.engine.compile(gateway, consumer, self.state.policies)

    def _forget_lists(self, registry_id: UUID) -> None:
        if self.upstreams is not None:
            self.upstreams.invalidate(registry_id)

    # -- observability --------------------------------------------------------------------
    def _register_readings(self, dispatcher: Dispatcher) -> None:
        """Values ``/metrics`` reads when scraped."""
        a = self.metrics.aggregates
        p = self.publisher
        a.counter(
            "trustgate_mcp_upstream_auth_required_total",
            "Calls and lists that needed the caller to authenticate (passthrough, exchange)"
            " or to connect their account (forwarded) at an upstream: answered -32003, or"
            " the server left out of a list.",
            lambda: sum(AUTH_REQUIRED.values()),
        )
        a.counter(
            "trustgate_mcp_sessions_initialized_total",
            "Sessions opened by initialize.",
            lambda: dispatcher.sessions_opened,
        )
        a.counter(
            "trustgate_mcp_upstream_sessions_reopened_total",
            "Upstream sessions opened after initialize (expired upstream, or down then).",
            lambda: dispatcher.upstream_reopened,
        )
        a.counter(
            "trustgate_mcp_request_events_published_total",
            "Request events published on the bus.",
            lambda: p.published,
        )
        a.counter(
            "trustgate_mcp_request_events_dropped_total",
            "Request events dropped because the publish queue was full.",
            lambda: p.dropped,
        )
        a.counter(
            "trustgate_mcp_request_events_failed_total",
            "Request events the bus refused.",
            lambda: p.failed,
        )
        a.gauge(
            "trustgate_mcp_config_ready",
            "1 once the config replica has caught up with the bus.",
            lambda: 1 if self.ready else 0,
        )
