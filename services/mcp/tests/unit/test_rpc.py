"""JSON-RPC helpers: version negotiation and the hand-written checks of params."""

from __future__ import annotations

import pytest

from trustgate_mcp.domain.rpc import (
    INVALID_PARAMS,
    LATEST_VERSION,
    RpcError,
    error,
    negotiate,
    optional_object,
    params_object,
    required_string,
    string_values,
)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_a_handshake_version_the_plane_speaks_is_kept(version: str) -> None:
    assert negotiate(version) == version


@pytest.mark.parametrize("asked", ["2026-07-28", "1999-01-01", None, 3, ""])
def test_any_other_version_gets_the_latest(asked: object) -> None:
    assert negotiate(asked) == LATEST_VERSION == "2025-11-25"


def test_params_are_checked_with_a_message_naming_the_field() -> None:
    assert params_object(None) == {}
    with pytest.raises(RpcError) as not_object:
        params_object([1])
    assert not_object.value.code == INVALID_PARAMS
    with pytest.raises(RpcError, match=r"params\.name"):
        required_string({"name": 3}, "name")
    with pytest.raises(RpcError, match=r"params\.arguments"):
        optional_object({"arguments": "x"}, "arguments")
    with pytest.raises(RpcError, match="strings"):
        string_values({"arguments": {"city": 1}}, "arguments")
    assert string_values({"arguments": {"city": "Rome"}}, "arguments") == {"city": "Rome"}


def test_an_error_carries_data_only_when_there_is_some() -> None:
    assert error(1, -32601, "nope") == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32601, "message": "nope"},
    }
    assert error(None, -32002, "x", {"uri": "u"})["error"]["data"] == {"uri": "u"}
