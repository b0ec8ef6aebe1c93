"""The proxy's HTTP surface: a plain ASGI callable, no framework on the request path.

Routes under ``/{consumer_slug}``: ``/v1/chat/completions`` (OpenAI Chat),
``/v1/messages`` (Anthropic Messages) and its ``/count_tokens``, ``/v1/responses`` (OpenAI
Responses), ``/v1/embeddings`` (OpenAI embeddings), all POST, and ``/v1/models`` (GET);
each also without ``/v1`` as seed 000's SDK snippet addresses them. And ``/healthz``,
``/health``, ``/readyz``, ``/metrics``. Anything else → 404.

The route names the client's wire format, the chosen target's ``wire`` the provider's:
the same → the body passes through; different → it is translated (``services.forward``).
The request path: discovery → key → consumer → auth → route → upstream → response, then
one request event handed to the publisher (never awaited).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from time import perf_counter, time
from typing import Any

import orjson

from trustgate_core.errors import (
    InvalidModel,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TrustGateError,
    Unauthenticated,
    Unavailable,
)
from trustgate_core.replica import ReplicaState
from trustgate_proxy import __version__
from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.asgi.responses import SECURITY_HEADERS, send_bytes, send_error, send_json
from trustgate_proxy.asgi.types import Headers, Receive, Scope, Send
from trustgate_core.access import api_key_from_headers, authenticate
from trustgate_proxy.domain.call import Call
from trustgate_core.access import DiscoveryMode, discover_gateway, ensure_active
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, WireFormat
from trustgate_proxy.domain.routing import Balancer, Route
from trustgate_proxy.services.config_view import ConfigView
from trustgate_proxy.services.forward import Forwarder, prepare_body
from trustgate_proxy.services.models import ModelLister
from trustgate_proxy.services.ports import EventSink

log = logging.getLogger(__name__)

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
MODELS = "/v1/models"
# The client's wire format, by route.
INBOUND_FORMAT: dict[str, WireFormat] = {
    CHAT: "openai_chat",
    MESSAGES: "anthropic",
    RESPONSES: "openai_responses",
}
POSTS = frozenset({CHAT, MESSAGES, COUNT_TOKENS, RESPONSES, EMBEDDINGS})
# Seed 000's SDK snippet sets base_url to ``.../{consumer_slug}`` without ``/v1``.
UNVERSIONED = {route.removeprefix("/v1"): route for route in (*POSTS, MODELS)}


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class ProxyApp:
    def __init__(
        self,
        *,
        state: ReplicaState,
        view: ConfigView,
        balancer: Balancer,
        forwarder: Forwarder,
        models: ModelLister,
        events: EventSink,
        is_ready: Callable[[], bool],
        dependencies: Callable[[], dict[str, str]],
        metrics: Callable[[], tuple[bytes, str]],
        discovery_mode: DiscoveryMode = "header",
        base_domain: str = "llm.neuraltrust.ai",
        max_body_bytes: int = 8 << 20,
        lifespan: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.state = state
        self.view = view
        self.balancer = balancer
        self.forwarder = forwarder
        self.models = models
        self.events = events
        self.is_ready = is_ready
        self.dependencies = dependencies
        self.metrics = metrics
        self.discovery_mode: DiscoveryMode = discovery_mode
        self.base_domain = base_domain
        self.max_body_bytes = max_body_bytes
        self._lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan_protocol(receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/":
            path = path.rstrip("/") or "/"
        slash = path.find("/", 1)
        if slash < 0:
            await self._system(path, scope["method"], send)
            return
        slug = path[1:slash]
        route = path[slash:]
        route = UNVERSIONED.get(route, route)
        method: str = scope["method"]
        trace_id = os.urandom(16).hex()
        call = Call(trace_id, method, route, perf_counter(), time())
        headers: Headers = [(b"x-ag-trace-id", trace_id.encode()), *SECURITY_HEADERS]
        try:
            if route in POSTS:
                if method != "POST":
                    raise MethodNotAllowed("use POST", allow="POST")
            elif route == MODELS:
                if method != "GET":
                    raise MethodNotAllowed("use GET", allow="GET")
            else:
                raise NotFound("not_found")
            await self._proxy(call, slug, route, scope, receive, send, headers)
        except TrustGateError as err:
            call.status = err.status
            if call.error_kind is None:
                call.error_kind = err.code
            call.response_bytes = await send_error(send, err, headers)
        except ClientGone:
            call.status = 499
            call.error_kind = "client_disconnected"
        except Exception:
            log.exception("proxy: unexpected error")
            call.status = 500
            call.error_kind = "internal_error"
            try:
                await send_error(send, TrustGateError("internal error"), headers)
            except Exception:  # the response had started: nothing more to say
                log.debug("proxy: could not send the error response", exc_info=True)
        finally:
            call.ended = perf_counter()
            self.events.emit(call)

    async def _proxy(
        self,
        call: Call,
        slug: str,
        route: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
    ) -> None:
        gw_slug = host = ag_key = x_key = authz = length = None
        for name, value in scope["headers"]:
            if name == b"x-ag-gateway-slug":
                gw_slug = value.decode("latin-1")
            elif name == b"x-ag-api-key":
                ag_key = value.decode("latin-1")
            elif name == b"x-api-key":
                x_key = value.decode("latin-1")
            elif name == b"authorization":
                authz = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        if not self.is_ready():
            raise Unavailable("configuration not loaded yet")
        state = self.state
        gateway = discover_gateway(state, self.discovery_mode, gw_slug, host, self.base_domain)
        call.gateway_id = gateway.id
        call.tenant_id = gateway.tenant_id
        ensure_active(gateway)
        key = api_key_from_headers(ag_key, x_key, authz)
        if key is None:
            raise Unauthenticated("unauthenticated")
        consumer = state.consumer_by_slug(gateway.id, slug)
        if consumer is None or consumer.type != "LLM":
            raise NotFound("consumer not found")
        call.consumer_id = consumer.id
        plan = self.view.plan(consumer)
        auth = authenticate(state, gateway, consumer, plan.auth_ids, key)
        call.auth_id = auth.id

        if route == MODELS:
            call.status = 200
            call.response_bytes = await send_json(
                send, 200, await self.models.listing(plan), headers
            )
            return

        body = await self._read_body(receive, length)
        call.request_bytes = len(body)
        if gateway.telemetry is not None:
            call.body_limit = self.view.body_limit(gateway)
            if call.body_limit:
                call.request_body = body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not JSON") from None
        if not isinstance(doc, dict):
            raise InvalidRequest("the body is not a JSON object")
        if "modelId" in doc:
            raise InvalidModel("use 'model', not 'modelId'")
        model = doc.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidRequest("'model' must be a string")
        stream = doc.get("stream") is True
        call.stream = stream
        call.requested_model = model
        chosen = self.balancer.pick(plan.candidates(model or None))
        binding = chosen.binding
        call.registry_id = binding.registry.id
        call.provider = binding.provider
        out = [*headers, (b"x-selected-provider", binding.provider.encode())]
        inbound = INBOUND_FORMAT.get(route)
        if inbound is None:
            call.stream = False
            await self._other(call, route, chosen, body, doc, out, receive, send)
            return
        target = self.view.target(binding.registry).for_inbound(inbound)
        if target.wire != inbound:
            await self._translate(call, inbound, target, chosen, doc, out, receive, send)
            return
        body, sent_model, injected = prepare_body(body, doc, chosen, stream, inbound)
        call.model = sent_model
        if sent_model and sent_model.isprintable():
            out.append((b"x-selected-model", sent_model.encode()))
        await self.forwarder.passthrough.forward(
            call,
            target,
            target.generate_url(sent_model, stream),
            body,
            stream,
            out,
            receive,
            send,
            injected,
            inbound,
        )

    async def _translate(
        self,
        call: Call,
        inbound: WireFormat,
        target: UpstreamTarget,
        chosen: Route,
        doc: dict[str, Any],
        headers: Headers,
        receive: Receive,
        send: Send,
    ) -> None:
        """Client and provider formats differ: decode, encode, call, translate back."""
        client = INBOUND.get(inbound)
        provider = OUTBOUND.get(target.wire)
        if client is None or provider is None:
            raise InvalidRequest(f"translating {inbound} to {target.wire} is not supported")
        try:
            request = client.decode_request(doc)
            if chosen.model is not None:
                request.model = chosen.model
            call.model = request.model or None
            if request.model.isprintable():
                headers.append((b"x-selected-model", request.model.encode()))
            encoder = (
                client.stream_encoder(request.model, request.stream_usage)
                if request.stream
                else None
            )
            await self.forwarder.translate.forward(
                call, target, client, provider, request, encoder, headers, receive, send
            )
        except InvalidRequest as err:  # raised before anything was written
            # in the client's error shape, so its SDK shows why (Untranslatable included)
            call.status = 400
            call.error_kind = err.code
            call.response_bytes = await send_json(
                send, 400, client.error_body(400, err.message or "invalid request"), headers
            )

    async def _other(
        self,
        call: Call,
        route: str,
        chosen: Route,
        body: bytes,
        doc: dict[str, Any],
        headers: Headers,
        receive: Receive,
        send: Send,
    ) -> None:
        """``/v1/embeddings`` (OpenAI-format providers) and ``/v1/messages/count_tokens``
        (Anthropic providers), passed through; other providers get a 400 that says so."""
        binding = chosen.binding
        target = self.view.target(binding.registry)
        url: str | None
        if route == EMBEDDINGS:
            body, sent_model, _ = prepare_body(body, doc, chosen, False)
            url = target.embeddings_url(sent_model) if target.wire == "openai_chat" else None
            if url is None:
                raise InvalidRequest(
                    f"embeddings are offered by OpenAI-format providers; '{binding.provider}'"
                    " is not one"
                )
        else:  # COUNT_TOKENS
            target = target.for_inbound("anthropic")
            if target.wire != "anthropic":
                raise InvalidRequest(
                    "count_tokens is offered when the route's provider is Anthropic;"
                    f" '{binding.provider}' is not"
                )
            body, sent_model, _ = prepare_body(body, doc, chosen, False, "anthropic")
            base, sep, query = target.generate_url(sent_model, False).partition("?")
            url = f"{base}/count_tokens{sep}{query}"
        call.model = sent_model
        if sent_model and sent_model.isprintable():
            headers.append((b"x-selected-model", sent_model.encode()))
        await self.forwarder.passthrough.forward(
            call, target, url, body, False, headers, receive, send
        )

    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(f"the body exceeds {limit} bytes")
            return body
        parts = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body exceeds {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    # -- health, readiness, metrics ---------------------------------------------------------
    async def _system(self, path: str, method: str, send: Send) -> None:
        headers = SECURITY_HEADERS
        now = datetime.now(UTC).isoformat()
        if path in ("/healthz", "/health"):
            await send_json(
                send, 200, {"status": "healthy", "version": __version__, "time": now}, headers
            )
        elif path == "/readyz":
            ready = self.is_ready()
            await send_json(
                send,
                200 if ready else 503,
                {
                    "status": "ready" if ready else "not_ready",
                    "version": __version__,
                    "time": now,
                    "dependencies": self.dependencies(),
                },
                headers,
            )
        elif path == "/metrics":
            body, content_type = self.metrics()  # Prometheus text format
            await send_bytes(send, 200, body, headers, content_type.encode())
        else:
            await send_error(send, NotFound("not_found"), headers)

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            kind = message["type"].rsplit(".", 1)[-1]  # startup | shutdown
            try:
                if self._lifespan is not None:
                    await self._lifespan(kind)
            except Exception as exc:
                await send({"type": f"lifespan.{kind}.failed", "message": str(exc)})
                return
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
