"""The proxy's use case: one request, from who it is for to the answer the client gets.

Read ``handle`` top to bottom for the lifecycle (seed 001, "Request lifecycle"):

1. **discover** the gateway (``X-AG-Gateway-Slug`` or the Host);
2. **authenticate** the consumer's key or bearer token (OIDC/OAuth2; a role-based
   consumer's plan then comes from the roles its claims select), find the consumer by its
   slug and its compiled **plan** (bindings, router, policy chain), then refuse a disabled
   gateway — every failure before that is one 401 answer, so a caller without a key learns
   nothing of which gateways and consumers exist;
3. **read** the body (bounded in size) and **parse** it (bounded in depth);
4. the chain's **pre_request** stage, then the cache's lookups on the request as the stage
   left it (a hit answers the call itself, through ``pre_response`` and the response
   filters like an upstream's answer);
5. **route**: the router orders the candidates into attempts; each is **opened** (sent,
   status and headers read, classified) and the next one tried while the outcome is
   retryable — nothing has reached the client yet;
6. the chain's **post_request** and **pre_response** stages;
7. **relay** the reply (streamed chunk by chunk when asked);
8. the chain's **post_response** stage.

The ASGI layer parses HTTP into a ``ClientRequest``, renders every error raised here, and
hands the finished ``Call`` to the sink (metrics, traces, the request event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from time import perf_counter
from typing import Any, Final

import orjson
from cryptography import x509

from trustgate_core.access import (
    DiscoveryMode,
    api_key_from_headers,
    authenticate,
    bearer_token,
    discover_gateway,
    ensure_active,
)
from trustgate_core.access.mtls import verify_client_certificate
from trustgate_core.errors import (
    Forbidden,
    InvalidModel,
    InvalidRequest,
    MethodNotAllowed,
    NoBackendAvailable,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    UpstreamTimeout,
)
from trustgate_core.models import Gateway
from trustgate_core.policy.exchange import ResponseFilter
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import send_bytes, send_json
from trustgate_proxy.domain.call import AttemptRecord, Call
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, InboundCodec, WireFormat
from trustgate_proxy.domain.nesting import MAX_DEPTH, nested_deeper_than
from trustgate_proxy.domain.routing import SUCCESS, Candidates, Route
from trustgate_proxy.services.cache import run_lookups
from trustgate_proxy.services.config_view import ConfigView, ConsumerPlan
from trustgate_proxy.services.forward import (
    Attempt,
    DisconnectGuard,
    Forwarders,
    UpstreamReply,
    client_left,
    prepare_body,
    retry_after_seconds,
)
from trustgate_proxy.services.forward.common import filter_chunk, filter_end, filter_whole
from trustgate_proxy.services.models import ModelLister
from trustgate_proxy.services.ports import (
    NO_SESSIONS,
    Chain,
    CorsPolicy,
    Header,
    Headers,
    Receive,
    Send,
    SessionPort,
    Upstream,
)

CHAT: Final = "/v1/chat/completions"
MESSAGES: Final = "/v1/messages"
COUNT_TOKENS: Final = "/v1/messages/count_tokens"
RESPONSES: Final = "/v1/responses"
EMBEDDINGS: Final = "/v1/embeddings"
MODELS: Final = "/v1/models"
POSTS = frozenset({CHAT, MESSAGES, COUNT_TOKENS, RESPONSES, EMBEDDINGS})
# The client's wire format, by route (the others pass through to one kind of provider).
INBOUND_FORMAT: dict[str, WireFormat] = {
    CHAT: "openai_chat",
    MESSAGES: "anthropic",
    RESPONSES: "openai_responses",
}


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class ClientShapedError(InvalidRequest):
    """A request that cannot be served, its body in the client format's error shape, so
    the client's SDK shows why (a translation the provider's format cannot express)."""

    def __init__(self, cause: InvalidRequest, body: dict[str, Any]) -> None:
        super().__init__(cause.message)
        self._body = body

    def body(self) -> dict[str, Any]:
        return self._body


class ClientRequest:
    """What the HTTP layer read of a request besides its route (``Call.path``): the
    consumer slug from the path, the headers the pipeline looks at, and all of them as
    received (``headers``, for policies); the client certificate the caller presented
    (``peer_cert``, with ``peer_chain`` the intermediates it sent): from this listener's
    TLS handshake, or ``X-Forwarded-Client-Cert`` from a trusted peer (``xfcc``: whether
    it came from there) — for mtls auths to verify."""

    __slots__ = (
        "api_key",
        "authorization",
        "client_host",
        "content_length",
        "gateway_slug",
        "headers",
        "host",
        "origin",
        "peer_cert",
        "peer_chain",
        "slug",
        "x_api_key",
        "xfcc",
    )

    def __init__(self, slug: str, headers: Sequence[Header] = ()) -> None:
        self.slug = slug
        self.headers = headers
        self.origin: str | None = None  # a browser's Origin
        self.client_host: str | None = None  # the TCP peer's address
        self.gateway_slug: str | None = None
        self.host: str | None = None
        self.api_key: str | None = None  # X-AG-API-Key
        self.x_api_key: str | None = None
        self.authorization: str | None = None
        self.content_length: bytes | None = None
        self.peer_cert: x509.Certificate | None = None
        self.peer_chain: Sequence[x509.Certificate] = ()
        self.xfcc = False


class Pipeline:
    def __init__(
        self,
        *,
        state: ReplicaState,
        view: ConfigView,
        forwarders: Forwarders,
        models: ModelLister,
        is_ready: Callable[[], bool],
        discovery_mode: DiscoveryMode = "header",
        base_domain: str = "llm.neuraltrust.ai",
        max_body_bytes: int = 8 << 20,
        max_json_depth: int = MAX_DEPTH,
        disconnect_check_after: float = 0.25,
        sessions: SessionPort = NO_SESSIONS,
    ) -> None:
        self.state = state
        self.view = view
        self.forwarders = forwarders
        self.models = models
        self.is_ready = is_ready
        self.discovery_mode: DiscoveryMode = discovery_mode
        self.base_domain = base_domain
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        # a plain call runs this long before a client disconnect is watched for
        self.disconnect_check_after = disconnect_check_after
        self.sessions = sessions

    async def handle(
        self, call: Call, request: ClientRequest, receive: Receive, send: Send, headers: Headers
    ) -> None:
        """Serve one proxied request; ``headers`` go on every response. Raises a
        ``TrustGateError`` (rendered by the caller) only before anything was written."""
        if not self.is_ready():
            raise Unavailable("configuration not loaded yet")
        state = self.state
        gateway = discover_gateway(
            state, self.discovery_mode, request.gateway_slug, request.host, self.base_domain
        )
        call.gateway_id = gateway.id
        call.tenant_id = gateway.tenant_id
        consumer = state.consumer_by_slug(gateway.id, request.slug)
        if consumer is None or consumer.type != "LLM":
            raise Unauthenticated("unknown_consumer")  # not a 404: consumers stay unlisted
        call.consumer_id = consumer.id
        plan = self.view.plan(consumer)
        chain = plan.chain
        if request.origin is not None and chain.stages:
            cors: CorsPolicy | None = chain.find("cors")
            if cors is not None:  # on every answer to an allowed origin, a 401 included
                headers.extend(cors.allow(request.origin))
        plan = await self._authenticate(call, request, gateway, plan)
        chain = plan.chain
        ensure_active(gateway)  # said only to a caller holding a credential of the gateway

        if call.path == MODELS:
            call.status = 200
            call.response_bytes = await send_json(
                send, 200, await self.models.listing(plan), headers
            )
            return

        exchange = Exchange(call, gateway, consumer, request.headers)
        exchange.client_host = request.client_host
        self._parse(exchange, await self._read_body(receive, request.content_length))
        await self.sessions.begin(exchange, headers)
        if exchange.dirty:
            _encode_again(exchange)
        if not chain.stages:
            candidates = plan.candidates(call.requested_model or None)
            await self._forward(exchange, plan, candidates, receive, send, headers)
            return
        call.policy_chain = exchange.records
        try:
            if "pre_request" in chain.stages:
                if await self._pre_request(exchange, plan, send, headers):
                    return
            candidates = plan.candidates(call.requested_model or None)
            await self._forward(exchange, plan, candidates, receive, send, headers)
        finally:
            # after every call that reached the policies, whatever its outcome: a budget
            # is settled or released (the engine records, never raises, at this stage)
            if "post_response" in chain.stages:
                await chain.run("post_response", exchange)
            call.policies_time = exchange.policies_time

    async def _authenticate(
        self, call: Call, request: ClientRequest, gateway: Gateway, plan: ConsumerPlan
    ) -> ConsumerPlan:
        """The caller's credential, in the reference's order: an API key, another bearer
        token (OIDC/OAuth2, against the consumer's token auths), then a client
        certificate (its mtls auths). Returns the plan to serve: a role-based consumer's
        comes from the roles the token's claims select (a key or a certificate has no
        claims: 403)."""
        consumer = plan.consumer
        key = api_key_from_headers(request.api_key, request.x_api_key, request.authorization)
        token = None if key is not None else bearer_token(request.authorization)
        if (
            token is not None
            and not plan.token_auths
            and plan.certificate_auths
            and request.peer_cert is not None
        ):
            # a client with a certificate whose SDK sends a placeholder bearer
            # (openai's api_key): the consumer takes no tokens, the certificate decides
            token = None
        if key is not None:
            call.auth_id = authenticate(self.state, gateway, consumer, plan.auth_ids, key).id
        elif token is not None:
            verified = await self.view.tokens.verify(token, plan.token_auths)
            call.auth_id = verified.auth.id
            call.subject = verified.subject
            if not consumer.active:
                raise Forbidden("consumer is inactive")
            if consumer.routing_mode == "role_based":
                return self.view.role_plan(consumer, verified.claims)
            return plan
        else:
            certificate = request.peer_cert
            if certificate is None or not plan.certificate_auths:
                raise Unauthenticated("missing_key")
            chain = request.peer_chain
            identity = next(
                (
                    found
                    for auth in plan.certificate_auths
                    if (found := verify_client_certificate(auth, certificate, chain)) is not None
                ),
                None,
            )
            if identity is None:
                raise Unauthenticated("bad_certificate")
            call.auth_id = identity.auth_id
            call.subject = identity.subject
            if not consumer.active:
                raise Forbidden("consumer is inactive")
        if consumer.routing_mode == "role_based":
            raise Forbidden("forbidden")  # roles come from a token's claims
        return plan

    async def preflight(
        self, call: Call, request: ClientRequest, send: Send, headers: Headers
    ) -> None:
        """A browser's CORS preflight (``OPTIONS``, which carries no key): answered by the
        consumer's ``cors`` policy once the gateway is discovered, before any key check.
        Without one, ``OPTIONS`` is not a method the route takes (405)."""
        if not self.is_ready():
            raise Unavailable("configuration not loaded yet")
        gateway = discover_gateway(
            self.state, self.discovery_mode, request.gateway_slug, request.host, self.base_domain
        )
        call.gateway_id = gateway.id
        call.tenant_id = gateway.tenant_id
        consumer = self.state.consumer_by_slug(gateway.id, request.slug)
        cors: CorsPolicy | None = None
        if consumer is not None and consumer.type == "LLM":
            call.consumer_id = consumer.id
            cors = self.view.plan(consumer).chain.find("cors")
        allow = "GET" if call.path == MODELS else "POST"
        if cors is None or request.origin is None:
            raise MethodNotAllowed(f"use {allow}", allow=allow)
        answer = cors.preflight(
            request.origin,
            _header(request.headers, b"access-control-request-method"),
            _header(request.headers, b"access-control-request-headers"),
        )
        call.status = answer.status
        call.response_bytes = len(answer.body)
        await send_bytes(send, answer.status, answer.body, [*headers, *answer.headers])

    async def _pre_request(
        self, exchange: Exchange, plan: ConsumerPlan, send: Send, headers: Headers
    ) -> bool:
        """Run ``pre_request``; whether a policy answered the call itself. What policies
        add to the response's headers goes on every answer from here on, errors
        included; a document they rewrote is sent encoded again."""
        call = exchange.call
        if call.requested_model is None:  # what budgets and allow-lists price and check
            routes = plan.candidates(None).routes
            exchange.default_model = routes[0].model if routes else None
        try:
            await plan.chain.run("pre_request", exchange)
            # the cache looks the request up as the whole stage left it (pii-masked)
            await run_lookups(exchange)
        finally:
            headers.extend(exchange.response_headers)
            exchange.response_headers.clear()
            if exchange.dirty:  # a refusing policy's rewrite too (a PII block masks first)
                _encode_again(exchange)
        answer = exchange.answer
        if answer is None:
            return False
        # an answer may name its content type (a cache hit replayed as a stream)
        kind = next((v for k, v in answer.headers if k == b"content-type"), b"application/json")
        extra = [h for h in answer.headers if h[0] != b"content-type"]
        body = await self._as_answered(exchange, plan.chain, answer.body, kind, headers)
        call.status = answer.status
        call.response_bytes = len(body)
        await send_bytes(send, answer.status, body, [*headers, *extra], kind)
        return True

    async def _as_answered(
        self, exchange: Exchange, chain: Chain, body: bytes, kind: bytes, headers: Headers
    ) -> bytes:
        """A policy's answer (a cache hit: a model's answer) as an upstream's reaches the
        client: the ``pre_response`` stage runs and the response filters read it (pii
        masks it and restores this call's own placeholders; a response rewrite applies)."""
        if "pre_response" in chain.stages:
            try:
                await chain.run("pre_response", exchange)
            finally:
                headers.extend(exchange.response_headers)
                exchange.response_headers.clear()
        filters = exchange.response_filters
        if not filters:
            return body
        if kind.startswith(b"text/event-stream"):
            return filter_end(filters, filter_chunk(filters, body))
        return filter_whole(filters, body)

    # -- reading the request ---------------------------------------------------------------
    def _parse(self, exchange: Exchange, body: bytes) -> None:
        call = exchange.call
        exchange.body = body
        call.request_bytes = len(body)
        if exchange.gateway.telemetry is not None:
            call.body_limit = self.view.body_limit(exchange.gateway)
            if call.body_limit:
                call.request_body = body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not JSON") from None
        if not isinstance(doc, dict):
            raise InvalidRequest("the body is not a JSON object")
        if nested_deeper_than(body, doc, self.max_json_depth):
            raise InvalidRequest(f"the body's JSON nests deeper than {self.max_json_depth} levels")
        if "modelId" in doc:
            raise InvalidModel("use 'model', not 'modelId'")
        model = doc.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidRequest("'model' must be a string")
        exchange.doc = doc
        # embeddings and count_tokens answer whole
        call.stream = doc.get("stream") is True and call.path in INBOUND_FORMAT
        call.requested_model = model

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

    # -- routing, opening, relaying --------------------------------------------------------
    async def _forward(
        self,
        exchange: Exchange,
        plan: ConsumerPlan,
        candidates: Candidates,
        receive: Receive,
        send: Send,
        headers: Headers,
    ) -> None:
        """Open attempts on the routes the router gives until one succeeds or it gives no
        more (retries, the next route, the fallback chain: ``services.resilience``), then
        relay: the success, else the last answer an upstream gave; with none at all, the
        failure (one route) or 503 ``no_backend_available`` (several). Every attempt is
        recorded on the call and reported to the router. A client that disconnects
        cancels the upstream call (recorded as 499)."""
        call = exchange.call
        chain = plan.chain
        attempts = plan.router.attempts(candidates, exchange)
        guard = DisconnectGuard(receive, 0.0 if call.stream else self.disconnect_check_after)
        reply: UpstreamReply | None = None
        answered: UpstreamReply | None = None  # the last attempt an upstream answered
        try:
            while (route := await attempts.next()) is not None:
                if reply is not None:  # a failed attempt: what it recorded is not the call's
                    if reply is not answered:
                        reply.release()
                    call.error_kind = None
                    call.upstream_ttfb = call.upstream_end = 0.0
                attempt = self._attempt(exchange, route, headers)
                started = perf_counter()
                reply = await attempt.forwarder.open(attempt)
                latency = perf_counter() - started
                resp = reply.resp
                reply.outcome = attempts.report(
                    route,
                    reply.status,
                    reply.data,
                    isinstance(reply.error, UpstreamTimeout),
                    retry_after_seconds(resp),
                    latency,
                )
                binding = route.binding
                call.attempts.append(
                    AttemptRecord(
                        binding.registry.id,
                        binding.provider,
                        call.model,
                        reply.outcome,
                        reply.status,
                        latency,
                        attempts.number,
                        attempts.fallback,
                    )
                )
                if resp is not None:
                    if answered is not None:
                        answered.release()
                    answered = reply
                if reply.outcome == SUCCESS:
                    break
            if reply is None:
                raise NoBackendAvailable("no backend available for this consumer")
            if reply.error is not None:  # the last attempt got no answer
                if answered is None:
                    if len({a.registry_id for a in call.attempts}) > 1:
                        raise NoBackendAvailable("no backend answered")
                    raise reply.error
                reply = _relaying(call, answered)
            if "post_request" in chain.stages or "pre_response" in chain.stages:
                await self._response_stages(exchange, chain, reply.attempt, headers)
            if exchange.response_filters:  # set at pre_request or pre_response
                reply.attempt.filters = exchange.response_filters
                if call.response_body is not None:
                    call.response_body = _scrubbed(exchange.response_filters, call.response_body)
            await reply.attempt.forwarder.relay(reply, send, guard)
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            client_left(call, reply.resp if reply is not None else None)
        finally:
            guard.disarm()
            attempts.close()
            if reply is not None:
                reply.release()
            if answered is not None and answered is not reply:
                answered.release()

    async def _response_stages(
        self, exchange: Exchange, chain: Chain, attempt: Attempt, headers: Headers
    ) -> None:
        """``post_request`` and ``pre_response``: the headers they add go on the answer
        (or on the error they raise)."""
        try:
            if "post_request" in chain.stages:
                await chain.run("post_request", exchange)
            if "pre_response" in chain.stages:
                await chain.run("pre_response", exchange)
        finally:
            added = exchange.response_headers
            if added:
                attempt.headers.extend(added)
                headers.extend(added)
                added.clear()

    def _attempt(self, exchange: Exchange, route: Route, headers: Headers) -> Attempt:
        """The upstream request for ``route``: the body passed through when client and
        provider speak the same format, translated otherwise."""
        attempt = self._attempt_for(exchange, route, headers)
        attempt.timeouts = self.forwarders.timeouts.of(route.binding.registry)
        return attempt

    def _attempt_for(self, exchange: Exchange, route: Route, headers: Headers) -> Attempt:
        call = exchange.call
        binding = route.binding
        call.registry_id = binding.registry.id
        call.provider = binding.provider
        out = [*headers, (b"x-selected-provider", binding.provider.encode())]
        inbound = INBOUND_FORMAT.get(call.path)
        if inbound is None:
            return self._other(exchange, route, out)
        target = self.view.target(binding.registry).for_inbound(inbound)
        if target.wire != inbound:
            return self._translated(exchange, route, inbound, target, out)
        stream = call.stream
        body, model, hide_usage = prepare_body(exchange.body, exchange.doc, route, stream, inbound)
        _selected(call, model, out)
        url = target.generate_url(model, stream)
        attempt = Attempt(
            self.forwarders.passthrough, call, route, target, url, body, stream, out, inbound
        )
        attempt.hide_usage = hide_usage
        return attempt

    def _translated(
        self,
        exchange: Exchange,
        route: Route,
        inbound: WireFormat,
        target: Upstream,
        out: Headers,
    ) -> Attempt:
        """Client and provider formats differ: decode into the internal model, encode for
        the provider. What cannot be translated is refused in the client's error shape."""
        call = exchange.call
        client = INBOUND.get(inbound)
        provider = OUTBOUND.get(target.wire)
        if client is None or provider is None:
            raise InvalidRequest(f"translating {inbound} to {target.wire} is not supported")
        try:
            decoded = exchange.request
            if decoded is None:  # decoded once, whatever the number of attempts
                decoded = exchange.request = client.decode_request(exchange.doc)
            # each attempt encodes its own copy: encoders note what they drop on it
            request = replace(
                decoded, model=route.model or decoded.model, dropped=list(decoded.dropped)
            )
            _selected(call, request.model or None, out)
            body = orjson.dumps(provider.encode_request(request))
        except InvalidRequest as err:
            raise _refused(call, client, err) from None
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            # a codec met a shape it does not expect: the body is wrong, not the proxy
            wrong = InvalidRequest(f"the body is not a {inbound} request the proxy can translate")
            raise _refused(call, client, wrong) from None
        stream = request.stream
        attempt = Attempt(
            self.forwarders.translate,
            call,
            route,
            target,
            target.generate_url(request.model, stream),
            body,
            stream,
            out,
            inbound,
        )
        attempt.client = client
        attempt.provider = provider
        if stream:
            attempt.encoder = client.stream_encoder(request.model, request.stream_usage)
        return attempt

    def _other(self, exchange: Exchange, route: Route, out: Headers) -> Attempt:
        """``/v1/embeddings`` (OpenAI-format providers) and ``/v1/messages/count_tokens``
        (Anthropic providers), passed through; other providers get a 400 that says so."""
        call = exchange.call
        binding = route.binding
        target = self.view.target(binding.registry)
        url: str | None
        if call.path == EMBEDDINGS:
            body, model, _ = prepare_body(exchange.body, exchange.doc, route, False)
            url = target.embeddings_url(model) if target.wire == "openai_chat" else None
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
            body, model, _ = prepare_body(exchange.body, exchange.doc, route, False, "anthropic")
            base, sep, query = target.generate_url(model, False).partition("?")
            url = f"{base}/count_tokens{sep}{query}"
        _selected(call, model, out)
        return Attempt(self.forwarders.passthrough, call, route, target, url, body, False, out)


def _encode_again(exchange: Exchange) -> None:
    """The document a policy or the session store rewrote, as the body to send."""
    doc = exchange.doc
    exchange.body = orjson.dumps(doc)
    exchange.dirty = False
    if exchange.call.request_body is not None:  # telemetry records the body as sent (masked)
        exchange.call.request_body = exchange.body
    model = doc.get("model")
    exchange.call.requested_model = model if isinstance(model, str) else None


def _scrubbed(filters: Sequence[ResponseFilter], body: bytes) -> bytes:
    """The answer's body as telemetry records it: a filter that hides data (``pii``'s
    ``scrub``) hides it there too."""
    for f in filters:
        scrub = getattr(f, "scrub", None)
        if scrub is not None:
            body = scrub(body)
    return body


def _relaying(call: Call, reply: UpstreamReply) -> UpstreamReply:
    """An earlier attempt's answer, relayed after later attempts got none: the call
    names its route again."""
    attempt = reply.attempt
    binding = attempt.route.binding
    call.registry_id = binding.registry.id
    call.provider = binding.provider
    call.status = reply.status
    for record in reversed(call.attempts):
        if record.registry_id == binding.registry.id and record.status == reply.status:
            call.model = record.model
            break
    return reply


def _header(headers: Sequence[Header], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _refused(call: Call, client: InboundCodec, error: InvalidRequest) -> ClientShapedError:
    """``error`` as a 400 in the client format's error shape, so its SDK shows why."""
    call.error_kind = error.code
    return ClientShapedError(error, client.error_body(400, error.message or "invalid request"))


def _selected(call: Call, model: str | None, out: Headers) -> None:
    """Record the model sent upstream; name it in ``X-Selected-Model`` when printable."""
    call.model = model
    if model and model.isprintable():
        out.append((b"x-selected-model", model.encode()))
