"""The stateless revision (2026-07-28, "modern") as the plane speaks it: no ``initialize``
and no ``Mcp-Session-Id``; the client probes ``server/discover``, then every request is
self-contained, its ``params._meta`` naming the protocol version and the client's
capabilities, mirrored in the ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name``
headers.

The checks follow the SDK's own server (``mcp.shared.inbound.classify_inbound_request``,
same order, codes and HTTP statuses), written by hand on the raw dict: a modern request
is checked on every call, so no pydantic model is validated here.

Results carry ``resultType: "complete"``; list results and ``resources/read`` (cacheable
in this revision) carry ``ttlMs: 0`` and ``cacheScope: "private"``: what a consumer sees
depends on its credential and policies, so a client or an intermediary never keeps one
consumer's answer for another.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from trustgate_mcp.domain.rpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PROTOCOL_VERSIONS,
    RpcError,
)

MODERN_VERSIONS: Final = ("2026-07-28",)
# every version the plane speaks, handshake era first (``server/discover`` and -32022 name them)
SUPPORTED_VERSIONS: Final = (*PROTOCOL_VERSIONS, *MODERN_VERSIONS)

HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

PROTOCOL_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY: Final = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
# the envelope is for the plane: not forwarded on the upstream's handshake-era session
ENVELOPE_KEYS: Final = (
    PROTOCOL_VERSION_KEY,
    CLIENT_INFO_KEY,
    CLIENT_CAPABILITIES_KEY,
    LOG_LEVEL_KEY,
)

VERSION_HEADER: Final = b"mcp-protocol-version"
METHOD_HEADER: Final = b"mcp-method"
NAME_HEADER: Final = b"mcp-name"

# the params field ``Mcp-Name`` mirrors
NAME_BEARING: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

# the HTTP status of an error answer (the SDK's ERROR_CODE_HTTP_STATUS); others go as 200
ERROR_STATUS: Final = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

_COMPLETE: Final = {"resultType": "complete"}
_CACHEABLE: Final = {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
CACHEABLE_METHODS: Final = frozenset(
    (
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
        "resources/read",
    )
)

_B64: Final = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


def is_modern(version_header: str | None, method: object) -> bool:
    """Whether a request takes the stateless path: its ``MCP-Protocol-Version`` names
    no handshake-era version (an unknown one is told -32022 there), or it probes
    ``server/discover``. As the SDK's server routes, by the header."""
    if version_header is not None:
        return version_header not in PROTOCOL_VERSIONS
    return method == "server/discover"


def unsupported(requested: object) -> RpcError:
    return RpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        {"supported": list(SUPPORTED_VERSIONS), "requested": requested},
        kind="invalid_request",
        status=400,
    )


def _mismatch(message: str) -> RpcError:
    return RpcError(HEADER_MISMATCH, message, kind="invalid_request", status=400)


def check_envelope(
    message: dict[str, Any],
    version_header: str | None,
    method_header: str | None,
    name_header: str | None,
) -> str:
    """The protocol version of a modern request whose envelope holds; `RpcError` at the
    first check that fails (the SDK's ladder: the envelope, the headers, the version)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        raise RpcError(
            INVALID_PARAMS,
            f"params._meta must be an object carrying the required {PROTOCOL_VERSION_KEY!r} "
            f"and {CLIENT_CAPABILITIES_KEY!r} envelope keys",
            kind="invalid_request",
            status=400,
        )
    missing = [key for key in (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY) if key not in meta]
    if missing:
        raise RpcError(
            INVALID_PARAMS,
            f"params._meta is missing the required envelope key(s): {', '.join(missing)}",
            kind="invalid_request",
            status=400,
        )
    version = meta[PROTOCOL_VERSION_KEY]
    if version_header is None or version_header != version:
        raise _mismatch(
            "mcp-protocol-version header does not match the request envelope's protocol version"
        )
    method = message.get("method")
    if method_header != method:
        raise _mismatch("mcp-method header does not match the request body's method")
    name_key = NAME_BEARING.get(method) if isinstance(method, str) else None
    if name_key is not None:
        assert isinstance(params, dict)
        value = params.get(name_key)
        if value is not None and decode_header_value(name_header) != value:
            raise _mismatch(
                f"mcp-name header does not match the request body's {name_key!r} parameter"
            )
    if version not in MODERN_VERSIONS:  # a string: it equals the header
        raise unsupported(version)
    return str(version)


def decode_header_value(value: str | None) -> str | None:
    """A header value as sent: verbatim, or the UTF-8 inside ``=?base64?…?=`` (None when
    that is malformed, so it never matches a body value by accident)."""
    if value is None:
        return None
    match = _B64.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(decoded).decode("ascii") != payload:
        return None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


def upstream_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the plane's envelope keys (the rest of ``_meta``, a progress
    token for instance, still goes upstream)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    kept = {k: v for k, v in meta.items() if k not in ENVELOPE_KEYS}
    stripped = {k: v for k, v in params.items() if k != "_meta"}
    if kept:
        stripped["_meta"] = kept
    return stripped


def shaped(method: str, value: Any) -> Any:
    """A result as this revision has it (a copy: lists are the catalog's own)."""
    if not isinstance(value, dict):
        return value
    return {**value, **(_CACHEABLE if method in CACHEABLE_METHODS else _COMPLETE)}


def discover_result(server_name: str, server_version: str) -> dict[str, Any]:
    """``server/discover``: what the plane speaks and serves, its identity in ``_meta``."""
    return {
        "supportedVersions": list(SUPPORTED_VERSIONS),
        "capabilities": {
            "tools": {"listChanged": False},
            "resources": {"listChanged": False},
            "prompts": {"listChanged": False},
        },
        **_CACHEABLE,
        "_meta": {SERVER_INFO_KEY: {"name": server_name, "version": server_version}},
    }


def error_status(code: int) -> int:
    return ERROR_STATUS.get(code, 200)
