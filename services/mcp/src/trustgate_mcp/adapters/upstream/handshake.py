"""The ``initialize`` handshake, built and checked with the SDK's types: once per upstream
session, off the request path, so the SDK's validation costs nothing per call."""

from __future__ import annotations

from typing import Any

import mcp.types as types
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError

from trustgate_mcp import __version__
from trustgate_mcp.services.ports import UpstreamUnavailable

INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def initialize_message(request_id: int) -> dict[str, Any]:
    request = types.InitializeRequest(
        params=types.InitializeRequestParams(
            protocol_version=LATEST_HANDSHAKE_VERSION,
            capabilities=types.ClientCapabilities(),
            client_info=types.Implementation(name="trustgate", version=__version__),
        )
    )
    message = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {"jsonrpc": "2.0", "id": request_id, **message}


def negotiated_version(result: dict[str, Any]) -> str:
    """The protocol version the upstream chose; it must be one we speak over a handshake."""
    try:
        answer = types.InitializeResult.model_validate(result)
    except ValidationError:
        raise UpstreamUnavailable("the upstream's initialize answer is malformed") from None
    version = answer.protocol_version
    if version not in HANDSHAKE_PROTOCOL_VERSIONS:
        raise UpstreamUnavailable(
            f"the upstream speaks an unsupported protocol version {version!r}"
        )
    return str(version)
