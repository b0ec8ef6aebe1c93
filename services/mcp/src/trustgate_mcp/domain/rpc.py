"""JSON-RPC 2.0 as the plane speaks it: error codes (reference §9), the shapes of answers,
protocol-version negotiation and the hand-written checks of a request's ``params``.

Requests are plain dicts (orjson): no model is validated per call. A failure anywhere on
the request path is an `RpcError`, rendered once into the answer the client gets."""

from __future__ import annotations

from typing import Any, Final

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
POLICY_BLOCKED: Final = -32001
RESOURCE_NOT_FOUND: Final = -32002
CONSENT_REQUIRED: Final = -32003
RATE_LIMITED: Final = -32004
UNAVAILABLE: Final = -32005

# the handshake-era revisions (``initialize``), oldest to newest
PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION: Final = PROTOCOL_VERSIONS[-1]


class RpcError(Exception):
    """A JSON-RPC error answer. ``kind`` is the request event's ``error_kind`` and
    ``status`` the HTTP status the event reports for a refused call (the answer itself
    goes out with HTTP 200)."""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        kind: str | None = None,
        status: int = 200,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.kind = kind
        self.status = status


def auth_required(server: str | None, message: str, connect_url: str | None) -> RpcError:
    """-32003: the upstream ``server`` needs the caller to authenticate. With
    ``connect_url`` (mode forwarded) the user has to connect their own account at that
    server: opening the URL in a browser starts the sign-in, after which the call is
    retried. Without it (passthrough, exchange) the caller has to come back with a bearer
    token the server's auth can use (an API key is not enough)."""
    data: dict[str, Any] = {
        "error": "consent_required" if connect_url else "authentication_required",
        "server": server,
    }
    if connect_url:
        data["connect_url"] = connect_url
    return RpcError(CONSENT_REQUIRED, message, data, kind="upstream_auth_required", status=401)


def result(request_id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def error_of(request_id: Any, err: RpcError) -> dict[str, Any]:
    return error(request_id, err.code, err.message, err.data)


def negotiate(requested: object) -> str:
    """The version the plane answers ``initialize`` with: the client's if the plane speaks
    it, else the latest (the client then decides whether it can go on)."""
    if isinstance(requested, str) and requested in PROTOCOL_VERSIONS:
        return requested
    return LATEST_VERSION


# -- params, checked by hand -------------------------------------------------------------
def params_object(params: object) -> dict[str, Any]:
    """``params`` absent is ``{}``; anything but an object is invalid."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    return params


def required_string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise RpcError(INVALID_PARAMS, f"params.{name} must be a non-empty string")
    return value


def optional_object(params: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is not None and not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, f"params.{name} must be an object")
    return value


def string_values(params: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An object whose values are strings (``prompts/get``'s ``arguments``)."""
    value = optional_object(params, name)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise RpcError(INVALID_PARAMS, f"params.{name} must map names to strings")
    return value
