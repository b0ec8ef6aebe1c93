"""Which credential an upstream call carries: a JWT's audience read without verification,
and the cache key that keeps one caller's lists from another's."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import uuid4

import orjson
import pytest

from trustgate_core.models import Consumer, Gateway
from trustgate_mcp.adapters.upstream.auth import audiences, credential_key, token_digest
from trustgate_mcp.services.ports import Caller

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CONSUMER = Consumer(
    id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
)


def jwt(claims: object) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.sig"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (jwt({"aud": "https://a"}), ["https://a"]),
        (jwt({"aud": ["https://a", 3, "https://b"]}), ["https://a", "https://b"]),
        (jwt({"sub": "no audience"}), []),
        (jwt(["not", "an", "object"]), []),
        ("opaque", []),
        ("a.!!!.c", []),
        ("a.bm90IGpzb24.c", []),
    ],
)
def test_audiences_of_a_token(token: str, expected: list[str]) -> None:
    assert audiences(token) == expected


def test_only_caller_credentials_split_the_cache() -> None:
    caller = Caller(gateway=GATEWAY, consumer=CONSUMER, token="tok")
    for mode in ("none", "static", "client_credentials"):
        assert credential_key(mode, caller) == ""
    for mode in ("passthrough", "exchange"):
        assert credential_key(mode, caller) == token_digest("tok") != "tok"
