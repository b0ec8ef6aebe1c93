"""The proxy's HTTP surface: a plain ASGI callable, no framework on the request path.

Routes under ``/{consumer_slug}``: ``/v1/chat/completions`` (OpenAI Chat),
``/v1/messages`` (Anthropic Messages) and its ``/count_tokens``, ``/v1/responses`` (OpenAI
Responses), ``/v1/embeddings`` (OpenAI embeddings), all POST, and ``/v1/models`` (GET);
each also without ``/v1`` as seed 000's SDK snippet addresses them. Paths with no consumer
slug (``/healthz``, ``/health``, ``/readyz``, ``/metrics``) go to the service's health app.

This layer only parses HTTP (path, method, the headers the pipeline reads) and renders
errors, in one place (Anthropic's error shape on ``/v1/messages``); the request's
lifecycle is ``services.pipeline``. Every proxied call ends as one ``Call`` handed to the
sink (never awaited).
"""

from __future__ import annotations

import logging
import os
from time import perf_counter, time

from trustgate_core.access.mtls import ClientCertificates
from trustgate_core.errors import MethodNotAllowed, NotFound, TrustGateError, Unauthenticated
from trustgate_core.service import HealthApp
from trustgate_proxy.asgi.responses import SECURITY_HEADERS, send_error
from trustgate_proxy.domain.call import Call
from trustgate_proxy.services.pipeline import (
    MESSAGES,
    MODELS,
    POSTS,
    ClientGone,
    ClientRequest,
    Pipeline,
)
from trustgate_proxy.services.ports import CallSink, Headers, Receive, Scope, Send

log = logging.getLogger(__name__)

# Seed 000's SDK snippet sets base_url to ``.../{consumer_slug}`` without ``/v1``.
UNVERSIONED = {route.removeprefix("/v1"): route for route in (*POSTS, MODELS)}


class ProxyApp:
    """``certificates`` says which client certificate a request presents (its TLS
    handshake's, or ``X-Forwarded-Client-Cert`` from a trusted peer)."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        events: CallSink,
        system: HealthApp,
        certificates: ClientCertificates | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.events = events
        self.system = system
        self.certificates = certificates or ClientCertificates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/":
            path = path.rstrip("/") or "/"
        slash = path.find("/", 1)
        if slash < 0:
            await self.system(scope, receive, send)
            return
        route = path[slash:]
        route = UNVERSIONED.get(route, route)
        method: str = scope["method"]
        trace_id = os.urandom(16).hex()
        call = Call(trace_id, method, route, perf_counter(), time())
        headers: Headers = [(b"x-ag-trace-id", trace_id.encode()), *SECURITY_HEADERS]
        try:
            if route in POSTS:
                expected = "POST"
            elif route == MODELS:
                expected = "GET"
            else:
                raise NotFound("not_found")
            request = _request(scope, path[1:slash], self.certificates)
            if method == expected:
                await self.pipeline.handle(call, request, receive, send, headers)
            elif method == "OPTIONS":
                await self.pipeline.preflight(call, request, send, headers)
            else:
                raise MethodNotAllowed(f"use {expected}", allow=expected)
        except TrustGateError as err:
            call.status = err.status
            if call.error_kind is None:
                call.error_kind = err.code
            if isinstance(err, Unauthenticated):  # the client is told less than this
                log.info("proxy: unauthenticated request (%s)", err.reason)
            call.response_bytes = await send_error(
                send, err, headers, anthropic=route.startswith(MESSAGES)
            )
        except ClientGone:
            call.status = 499
            call.error_kind = "client_disconnected"
        except Exception:
            log.exception("proxy: unexpected error")
            call.status = 500
            call.error_kind = "internal_error"
            try:
                await send_error(
                    send,
                    TrustGateError("internal error"),
                    headers,
                    anthropic=route.startswith(MESSAGES),
                )
            except Exception:  # the response had started: nothing more to say
                log.debug("proxy: could not send the error response", exc_info=True)
        finally:
            call.ended = perf_counter()
            self.events.emit(call)


def _request(scope: Scope, slug: str, certificates: ClientCertificates) -> ClientRequest:
    """The headers the pipeline reads, in one pass; the client certificate presented."""
    request = ClientRequest(slug, scope["headers"])
    client = scope.get("client")
    if client:
        request.client_host = client[0]
    xfcc: str | None = None
    for name, value in scope["headers"]:
        if name == b"x-ag-gateway-slug":
            request.gateway_slug = value.decode("latin-1")
        elif name == b"x-ag-api-key":
            request.api_key = value.decode("latin-1")
        elif name == b"x-api-key":
            request.x_api_key = value.decode("latin-1")
        elif name == b"authorization":
            request.authorization = value.decode("latin-1")
        elif name == b"host":
            request.host = value.decode("latin-1")
        elif name == b"content-length":
            request.content_length = value
        elif name == b"origin":
            request.origin = value.decode("latin-1")
        elif name == b"x-forwarded-client-cert":
            text = value.decode("latin-1")
            xfcc = text if xfcc is None else f"{xfcc},{text}"
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    if xfcc is not None or tls is not None:
        chain = tls.get("client_cert_chain") if tls else None
        presented = certificates.presented(chain, xfcc, request.client_host)
        if presented is not None:
            request.peer_cert, request.peer_chain, request.xfcc = presented
    return request
