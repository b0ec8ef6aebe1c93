"""Dynamic client registration (RFC 7591) without a database: a client id IS its
registration (redirect URIs and name), sealed, so any replica reads it back.

Only public clients (``token_endpoint_auth_method: none``, PKCE protects the code); a
client asking for a secret-based method is registered as a public one, as RFC 7591 §3.2.1
allows. Redirect URIs must be https, or http on the loopback interface (native apps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.urls import loopback

PURPOSE = b"client"
GRANT_TYPES = ("authorization_code", "refresh_token")
_MAX_URIS = 10
_MAX_URI = 2000
_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    redirect_uris: tuple[str, ...]
    name: str


def _invalid(description: str) -> BadRequest:
    return BadRequest("invalid_redirect_uri", description)


def check_redirect_uri(uri: Any) -> str:
    if not isinstance(uri, str) or not uri or len(uri) > _MAX_URI:
        raise _invalid("each redirect URI must be a non-empty string")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise _invalid("a redirect URI is not a valid URL") from exc
    if parts.fragment or "#" in uri:
        raise _invalid("a redirect URI must not have a fragment")
    if not host:
        raise _invalid("a redirect URI must name a host")
    if parts.scheme == "https" or (parts.scheme == "http" and loopback(host)):
        return uri
    raise _invalid("redirect URIs must be https, or http on localhost or 127.0.0.1")


def register(sealer: Sealer, doc: Any) -> dict[str, Any]:
    """The registration response for the request ``doc``; raises `BadRequest`."""
    if not isinstance(doc, dict):
        raise BadRequest("invalid_client_metadata", "send the client metadata as a JSON object")
    uris = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise _invalid("redirect_uris is required (a non-empty list)")
    if len(uris) > _MAX_URIS:
        raise _invalid(f"at most {_MAX_URIS} redirect URIs")
    redirect_uris = [check_redirect_uri(u) for u in uris]
    grants = doc.get("grant_types") or ["authorization_code", "refresh_token"]
    if not isinstance(grants, list) or any(g not in GRANT_TYPES for g in grants):
        raise BadRequest(
            "invalid_client_metadata", "grant_types may only be authorization_code, refresh_token"
        )
    responses = doc.get("response_types") or ["code"]
    if responses != ["code"]:
        raise BadRequest("invalid_client_metadata", 'response_types may only be ["code"]')
    name = doc.get("client_name") or "An MCP client"
    if not isinstance(name, str) or len(name) > _MAX_NAME:
        raise BadRequest("invalid_client_metadata", f"client_name: at most {_MAX_NAME} characters")
    now = int(time.time())
    client_id = sealer.seal(PURPOSE, {"r": redirect_uris, "n": name, "t": now})
    answer: dict[str, Any] = {
        "client_id": client_id,
        "client_id_issued_at": now,
        "client_name": name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": grants,
        "response_types": ["code"],
    }
    if isinstance(doc.get("scope"), str):
        answer["scope"] = doc["scope"]
    return answer


def client_of(sealer: Sealer, client_id: str | None) -> Client | None:
    """The registration a client id carries, or None if it is not one of ours."""
    if not client_id:
        return None
    doc = sealer.open(PURPOSE, client_id)
    if not isinstance(doc, dict):
        return None
    return Client(client_id, tuple(doc.get("r") or ()), str(doc.get("n") or "An MCP client"))
