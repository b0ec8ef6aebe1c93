"""One MCP call as policies see it (plane ``MCP``): ``McpExchange``.

A call is one JSON-RPC request to ``POST /{consumer_slug}/mcp``. The plane builds the
exchange from what it already decoded (no copy, no validation: the hot path), runs the
consumer's chain (``Chain.run("pre_request", x)``), and after the upstream answered sets
``status`` and ``is_error`` and runs ``post_response``.

Refusals work as on the LLM plane: ``Chain.run`` raises a ``TrustGateError`` carrying an
HTTP-style ``status``, ``body()`` and ``headers`` (a policy's ``PolicyRejected``, or
``RateLimitUnavailable`` when a ``fail_closed`` limit cannot reach its counters). The
plane answers it as a JSON-RPC error (HTTP 200), mapped by ``rpc_error``:

- status 429 (a rate limit, the gateway's plan) → ``-32004`` "rate limited", ``data``
  ``{"retry_after": <seconds from the Retry-After header>, ...the policy's body}``;
- any other status (403 tool not allowed, 413 too large, 411, 503 fail_closed, ...) →
  ``-32001`` "policy blocked", ``data`` the policy's body and its ``status``.

No MCP runner answers a call itself (``answer`` stays ``None``). What policies add to
``response_headers`` (``X-RateLimit-*``) goes on the HTTP response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final
from uuid import UUID

from trustgate_core.errors import TrustGateError
from trustgate_core.models import Consumer, Gateway
from trustgate_core.policy.exchange import Header, Plane, PolicyExchange

RPC_POLICY_BLOCKED: Final = -32001
RPC_RATE_LIMITED: Final = -32004

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
#: The parameter naming what a method acts on: the tool, the prompt, the resource.
_TARGET_PARAM: Final[dict[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}


def call_target(method: str, params: Mapping[str, Any]) -> str | None:
    """What a call acts on as the client named it: the tool of ``tools/call``, the prompt
    of ``prompts/get``, the URI of ``resources/read``; ``None`` for other methods (or a
    malformed parameter)."""
    key = _TARGET_PARAM.get(method)
    if key is None:
        return None
    value = params.get(key)
    return value if isinstance(value, str) else None


class McpExchange(PolicyExchange):
    """``body`` is the JSON-RPC request as received (what ``request_size_limiter``
    measures); ``params`` its parameters, read-only; ``tool`` the exposed name the
    client called (see ``call_target``), the name ``tool_allowlist`` and
    ``per_tool_rate_limiter`` judge."""

    plane: ClassVar[Plane] = "MCP"

    __slots__ = (
        "_status",
        "auth_id",
        "client_host",
        "is_error",
        "method",
        "params",
        "subject",
        "tool",
    )

    def __init__(
        self,
        gateway: Gateway,
        consumer: Consumer,
        request_headers: Sequence[Header],
        *,
        method: str,
        body: bytes,
        params: Mapping[str, Any] | None = None,
        auth_id: UUID | None = None,
        subject: str | None = None,
        client_host: str | None = None,
    ) -> None:
        super().__init__(gateway, consumer, request_headers)
        self.body = body
        self.method = method
        self.params: Mapping[str, Any] = _EMPTY if params is None else MappingProxyType(params)
        self.tool = call_target(method, self.params)
        self.auth_id = auth_id  # the auth (API key, OAuth2, mTLS) the caller came in with
        self.subject = subject  # who the caller is within it (a token's sub), if known
        self.client_host = client_host
        self._status = 0
        #: after the call: the upstream's result had ``isError`` or was a JSON-RPC error
        self.is_error: bool | None = None

    @property
    def request_size(self) -> int:
        """The JSON-RPC request's size in bytes."""
        return len(self.body)

    @property
    def path(self) -> str:
        return f"/{self.consumer.slug}/mcp"

    @property
    def status(self) -> int:
        """The HTTP status the client got (0 until known)."""
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value


def rpc_error(refusal: TrustGateError) -> dict[str, Any]:
    """The JSON-RPC ``error`` object answering a policy's refusal (see the module's
    docstring for the mapping)."""
    body = refusal.body()
    if refusal.status == 429:
        retry = _retry_after(refusal.headers)
        data: dict[str, Any] = {**body, "retry_after": retry}
        return {"code": RPC_RATE_LIMITED, "message": _message(body, "rate limited"), "data": data}
    return {
        "code": RPC_POLICY_BLOCKED,
        "message": _message(body, "policy blocked"),
        "data": {**body, "status": refusal.status},
    }


def _retry_after(headers: Sequence[Header]) -> int:
    for name, value in headers:
        if name == b"retry-after" and value.isdigit():
            return int(value)
    return 1


def _message(body: Mapping[str, Any], default: str) -> str:
    message = body.get("message")
    return message if isinstance(message, str) and message else default
