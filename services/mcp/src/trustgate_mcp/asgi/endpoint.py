"""``/{consumer_slug}/mcp``: MCP's streamable HTTP transport, server side, without a
framework.

``POST`` carries one JSON-RPC message. A request is answered with HTTP 200 — as JSON, or
as one SSE event (``event: message``) when the client's ``Accept`` lists only
``text/event-stream`` — errors included (reference §9); a notification or a response from
the client gets 202 and no body; a batch (a JSON array, removed by the 2025-06-18
revision) is refused. ``initialize`` hands out the ``Mcp-Session-Id`` every later request
must carry (400 without one; 404 when it does not open, so the client initializes again).
``DELETE`` with a session ends it. ``GET`` is 405: the plane opens no server-initiated
stream.

The stateless revision (2026-07-28, ``domain.modern``) takes a request whose
``MCP-Protocol-Version`` names no handshake-era version, or a ``server/discover``: no
session is needed or handed out, the envelope is checked per request as the SDK's server
checks it, and errors go with the SDK's HTTP statuses (400 for a malformed or mismatched
request or an unsupported version, 404 for an unknown method; 200 otherwise).

HTTP-level refusals (no credential 401 with the OAuth challenge, another consumer's key
403, unknown path 404, wrong media types 415 and 406, a body over ``MCP_MAX_BODY_BYTES``
413) are JSON bodies ``{"error": code, "message": …}``. Every ``tools/call``,
``resources/read`` and ``prompts/get`` ends as one ``McpCall`` handed to the sink.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from time import perf_counter, time
from typing import Any, Final, Protocol

import orjson

from trustgate_core.access.mtls import ClientCertificates
from trustgate_core.errors import (
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    TrustGateError,
    Unauthenticated,
    Unavailable,
)
from trustgate_core.service.asgi import SECURITY_HEADERS, Headers, Receive, Scope, Send, send_bytes
from trustgate_mcp.asgi.certificates import XFCC, presented
from trustgate_mcp.domain.call import CALL_METHODS, McpCall
from trustgate_mcp.domain.modern import (
    HEADER_MISMATCH,
    METHOD_HEADER,
    MODERN_VERSIONS,
    NAME_HEADER,
    VERSION_HEADER,
    check_envelope,
    error_status,
    is_modern,
    shaped,
    unsupported,
)
from trustgate_mcp.domain.rpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    POLICY_BLOCKED,
    RATE_LIMITED,
    RpcError,
    error,
    error_of,
    result,
)
from trustgate_mcp.observability.metrics import McpMetrics
from trustgate_mcp.services.access import Access, Credentials
from trustgate_mcp.services.dispatch import Context, Dispatcher, SessionNotFound
from trustgate_mcp.services.ports import GrantVerifier

log = logging.getLogger(__name__)

SESSION_HEADER: Final = b"mcp-session-id"
_JSON: Final = b"application/json"
_SSE: Final = b"text/event-stream"


class CallSink(Protocol):
    def emit(self, item: McpCall) -> None: ...


class NotAcceptable(TrustGateError):
    code, status = "not_acceptable", 406


class UnsupportedMediaType(TrustGateError):
    code, status = "unsupported_media_type", 415


class _Request:
    """What this layer reads of the headers, in one pass."""

    __slots__ = (
        "accept",
        "content_length",
        "content_type",
        "credentials",
        "duplicated",
        "method",
        "name",
        "protocol_version",
        "session_id",
    )

    def __init__(self, scope: Scope, certificates: ClientCertificates) -> None:
        self.credentials = Credentials()
        xfcc: str | None = None
        self.accept: bytes | None = None
        self.content_type: bytes | None = None
        self.content_length: bytes | None = None
        self.session_id: str | None = None
        # the stateless revision's routing headers; ``duplicated``: one sent twice
        self.protocol_version: str | None = None
        self.method: str | None = None
        self.name: str | None = None
        self.duplicated: str | None = None
        c = self.credentials
        for name, value in scope["headers"]:
            if name == b"x-ag-api-key":
                c.api_key = value.decode("latin-1")
            elif name == b"authorization":
                c.authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                c.x_api_key = value.decode("latin-1")
            elif name == b"host":
                c.host = value.decode("latin-1")
            elif name == b"x-ag-gateway-slug":
                c.gateway_slug = value.decode("latin-1")
            elif name == b"accept":
                self.accept = value.lower()
            elif name == b"content-type":
                self.content_type = value.lower()
            elif name == b"content-length":
                self.content_length = value
            elif name == SESSION_HEADER:
                self.session_id = value.decode("latin-1")
            elif name == VERSION_HEADER:
                if self.protocol_version is not None:
                    self.duplicated = "mcp-protocol-version"
                self.protocol_version = value.decode("latin-1")
            elif name == METHOD_HEADER:
                if self.method is not None:
                    self.duplicated = "mcp-method"
                self.method = value.decode("latin-1")
            elif name == NAME_HEADER:
                if self.name is not None:
                    self.duplicated = "mcp-name"
                self.name = value.decode("latin-1")
            elif name == XFCC:  # one per proxy hop may come as separate headers: joined
                text = value.decode("latin-1")
                xfcc = text if xfcc is None else f"{xfcc},{text}"
        c.certificate = presented(scope, certificates, xfcc)

    def wants_sse(self) -> bool:
        """Whether the answer goes as an SSE event: ``Accept`` lists SSE and not JSON.
        No ``Accept`` at all takes JSON; one that takes neither is a 406."""
        if self.accept is None:
            return False
        types = {part.split(b";", 1)[0].strip() for part in self.accept.split(b",")}
        if _JSON in types or b"*/*" in types or b"application/*" in types:
            return False
        if _SSE in types or b"text/*" in types:
            return True
        raise NotAcceptable("accept application/json or text/event-stream")


class Endpoint:
    def __init__(
        self,
        *,
        access: Access,
        dispatcher: Dispatcher,
        grants: GrantVerifier,
        sink: CallSink,
        metrics: McpMetrics,
        is_ready: Callable[[], bool],
        max_body_bytes: int,
        public_url: str = "",
        resource_url: Callable[[Scope, str], str | None] = lambda _scope, _slug: None,
        certificates: ClientCertificates | None = None,
    ) -> None:
        self.access = access
        self.dispatcher = dispatcher
        self.grants = grants
        self.sink = sink
        self.metrics = metrics
        self.is_ready = is_ready
        self.max_body_bytes = max_body_bytes
        self.public_url = public_url.rstrip("/")
        self.resource_url = resource_url  # the OAuth server's spelling, when it has one
        # which client certificate a request presents (TLS handshake, or trusted XFCC)
        self.certificates = certificates or ClientCertificates()

    def mcp_url(self, scope: Scope, host: str | None, slug: str) -> str:
        """The consumer's MCP URL, spelt as the OAuth tokens' audience (the resource)."""
        spelt = self.resource_url(scope, slug)
        if spelt is not None:
            return spelt
        base = self.public_url or f"{scope.get('scheme', 'http')}://{host or 'localhost'}"
        return f"{base}/{slug}/mcp"

    async def __call__(self, scope: Scope, receive: Receive, send: Send, slug: str) -> None:
        started = perf_counter()
        headers: Headers = [*SECURITY_HEADERS]
        request = _Request(scope, self.certificates)
        mcp_url = self.mcp_url(scope, request.credentials.host, slug)
        gateway_id = ""
        method_label = "other"
        call: McpCall | None = None
        outcome = "refused"
        try:
            method = scope["method"]
            if method not in ("POST", "DELETE"):
                raise MethodNotAllowed("use POST (DELETE ends a session)")
            if not self.is_ready():
                raise Unavailable("configuration not loaded yet")
            gateway, consumer = self.access.consumer(slug, request.credentials)
            gateway_id = str(gateway.id)
            if method == "POST":
                self._check_media(request)
            caller, plan = await self.access.caller(gateway, consumer, request.credentials, mcp_url)
            ctx = Context(caller, plan, request_headers=scope["headers"])
            client = scope.get("client")
            if client:
                ctx.client_host = client[0]
            if method == "DELETE":
                method_label = "delete"
                await self._delete(ctx, request, send, headers)
                outcome = "ok"
                return
            sse = request.wants_sse()
            body = await self._read_body(receive, request.content_length)
            ctx.body = body
            message = _message(body)
            if isinstance(message, dict) and "method" in message and "id" in message:
                rpc_method = message["method"]
                method_label = rpc_method if isinstance(rpc_method, str) else "other"
                if method_label in CALL_METHODS:
                    call = ctx.call = _call_of(method_label, started, caller, body)
            answer, outcome, status = await self._answer(ctx, request, message, headers)
            if answer is None:
                method_label = "notification"
                await send_bytes(send, 202, b"", headers)
                return
            if status != 200:  # refused: plain JSON whatever the Accept
                if call is not None and call.error_kind is None:
                    call.status = status
                    call.error_kind = "session_not_found" if status == 404 else "invalid_request"
                await send_bytes(send, status, orjson.dumps(answer), headers)
                return
            response_bytes = await _send_answer(
                send, answer, [*headers, *ctx.response_headers], sse
            )
            if call is not None:
                call.response_bytes = response_bytes
        except TrustGateError as err:
            if isinstance(err, Unauthenticated):
                log.info("mcp: unauthenticated request (%s)", err.reason)
                headers.append((b"www-authenticate", self.grants.challenge(mcp_url).encode()))
            elif isinstance(err, MethodNotAllowed):
                headers.append((b"allow", b"POST, DELETE"))
            await send_bytes(send, err.status, orjson.dumps(err.body()), headers)
        except SessionNotFound:  # DELETE of a session that is not (or no longer) valid
            body = orjson.dumps(error(None, INVALID_REQUEST, "session not found"))
            await send_bytes(send, 404, body, headers)
        except Exception:
            log.exception("mcp: unexpected error")
            outcome = "error"
            body = orjson.dumps(error(None, INTERNAL_ERROR, "internal error"))
            await send_bytes(send, 500, body, headers)
        finally:
            ended = perf_counter()
            upstream: float | None = None
            if call is not None:
                call.ended = ended
                if call.upstream_start:
                    upstream = (call.upstream_end or ended) - call.upstream_start
                self.sink.emit(call)
            self.metrics.observe(gateway_id, method_label, outcome, ended - started, upstream)

    @staticmethod
    def _check_media(request: _Request) -> None:
        content_type = request.content_type
        if content_type is None or content_type.split(b";", 1)[0].strip() != _JSON:
            raise UnsupportedMediaType("send the JSON-RPC message as application/json")
        request.wants_sse()  # 406 before any work

    async def _answer(
        self, ctx: Context, request: _Request, message: Any, headers: Headers
    ) -> tuple[dict[str, Any] | None, str, int]:
        """The JSON-RPC answer to send (None: 202, nothing to answer), the outcome, and
        the HTTP status (200 but for a request without a valid session)."""
        method = message.get("method") if isinstance(message, dict) else None
        if is_modern(request.protocol_version, method):
            return await self._answer_modern(ctx, request, message)
        if isinstance(message, RpcError):
            return error_of(None, message), "error", 200
        if isinstance(message, list):
            return error(None, INVALID_REQUEST, "batches are not supported"), "error", 200
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), "error", 200
        if method is None and ("result" in message or "error" in message):
            return None, "ok", 202  # a response (the plane sends no requests: dropped)
        if "id" not in message:
            if isinstance(method, str):
                return None, "ok", 202  # a notification
            return error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), "error", 200
        request_id = message["id"]
        if not isinstance(method, str):
            return error(request_id, INVALID_REQUEST, "method must be a string"), "error", 200
        call = ctx.call
        try:
            if method == "initialize":
                value, session_id = await self.dispatcher.initialize(ctx, message.get("params"))
                headers.append((SESSION_HEADER, session_id.encode()))
                return result(request_id, value), "ok", 200
            if request.session_id is None:
                missing = "Mcp-Session-Id is missing: initialize first"
                return error(request_id, INVALID_REQUEST, missing), "refused", 400
            try:
                ctx.session = await self.dispatcher.session(request.session_id, ctx.caller)
            except SessionNotFound:
                gone = "session not found: initialize again"
                return error(request_id, INVALID_REQUEST, gone), "refused", 404
            if call is not None:
                call.session_id = ctx.session.claims.nonce
            value = await self.dispatcher.handle(ctx, method, message.get("params"))
            return result(request_id, value), "ok", 200
        except RpcError as err:
            if call is not None:
                call.rpc_error_code = err.code
                call.status = err.status
                call.error_kind = err.kind
            return error_of(request_id, err), _outcome_of(err), 200

    async def _answer_modern(
        self, ctx: Context, request: _Request, message: Any
    ) -> tuple[dict[str, Any] | None, str, int]:
        """`_answer` for the stateless revision: every request stands alone."""
        if isinstance(message, RpcError):
            return error_of(None, message), "error", 400
        if (
            not isinstance(message, dict)
            or message.get("jsonrpc") != "2.0"
            or not isinstance(message.get("method"), str)
        ):
            not_one = "the body must be a single JSON-RPC request or notification object"
            return error(None, INVALID_REQUEST, not_one), "error", 400
        if "id" not in message:  # a notification: nothing for the plane to act on
            if request.protocol_version not in MODERN_VERSIONS:
                return error_of(None, unsupported(request.protocol_version or "")), "refused", 400
            return None, "ok", 202
        request_id = message["id"]
        method: str = message["method"]
        try:
            if request.duplicated is not None:
                twice = f"{request.duplicated} header appears more than once"
                raise RpcError(HEADER_MISMATCH, twice, kind="invalid_request", status=400)
            check_envelope(message, request.protocol_version, request.method, request.name)
            ctx.modern = True
            if method == "server/discover":
                value = self.dispatcher.discover(ctx)
            else:
                value = await self.dispatcher.handle(ctx, method, message.get("params"))
            return result(request_id, shaped(method, value)), "ok", 200
        except RpcError as err:
            call = ctx.call
            if call is not None:
                call.rpc_error_code = err.code
                call.status = err.status
                call.error_kind = err.kind
            return error_of(request_id, err), _outcome_of(err), error_status(err.code)

    async def _delete(self, ctx: Context, request: _Request, send: Send, headers: Headers) -> None:
        if request.session_id is None:
            raise InvalidRequest("Mcp-Session-Id is missing")
        ctx.session = await self.dispatcher.session(request.session_id, ctx.caller)
        await self.dispatcher.end(ctx)
        await send_bytes(send, 200, b"", headers)

    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidRequest("the client left")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body exceeds {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)


def _outcome_of(err: RpcError) -> str:
    """The metrics' outcome of an error answer: a policy's refusals apart (``limited``:
    rate limited, -32004; ``blocked``: -32001), so dashboards can count limit rejections."""
    if err.code == RATE_LIMITED:
        return "limited"
    if err.code == POLICY_BLOCKED:
        return "blocked"
    return "error"


def _message(body: bytes) -> Any:
    """The decoded message, or the parse error to answer."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return RpcError(PARSE_ERROR, "parse error: the body is not JSON")


def _call_of(method: str, started: float, caller: Any, body: bytes) -> McpCall:
    call = McpCall(os.urandom(16).hex(), method, started, time())
    call.gateway_id = caller.gateway.id
    call.tenant_id = caller.gateway.tenant_id
    call.consumer_id = caller.consumer.id
    call.auth_id = caller.auth_id
    call.subject = caller.subject
    call.request_bytes = len(body)
    return call


async def _send_answer(send: Send, answer: dict[str, Any], headers: Headers, sse: bool) -> int:
    data = orjson.dumps(answer)
    if sse:
        body = b"event: message\ndata: " + data + b"\n\n"
        await send_bytes(send, 200, body, [*headers, (b"cache-control", b"no-cache")], _SSE)
        return len(body)
    await send_bytes(send, 200, data, headers)
    return len(data)
