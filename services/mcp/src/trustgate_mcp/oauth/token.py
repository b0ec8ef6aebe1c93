"""The token endpoint (RFC 6749 §3.2): an authorization code with its PKCE verifier, or a
refresh token, for an access token bound to the MCP URL and a new refresh token."""

from __future__ import annotations

from typing import Any

from trustgate_mcp.oauth.clients import client_of
from trustgate_mcp.oauth.grants import CODE, REFRESH, SCOPE, Grants, pkce_matches
from trustgate_mcp.oauth.http import BadRequest
from trustgate_mcp.oauth.keys import Sealer
from trustgate_mcp.oauth.urls import slug_of


async def exchange(
    sealer: Sealer, grants: Grants, form: dict[str, str], base: str
) -> dict[str, Any]:
    """The token response for ``form``; raises `BadRequest`."""
    client_id = form.get("client_id")
    if not client_id:
        raise BadRequest("invalid_request", "client_id is required")
    if client_of(sealer, client_id) is None:
        raise BadRequest("invalid_client", "unknown client_id", 401)
    kind = form.get("grant_type")
    if kind == "authorization_code":
        grant = await _code(grants, form, client_id)
    elif kind == "refresh_token":
        grant = await _refresh(grants, form, client_id)
    else:
        raise BadRequest(
            "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )
    resource = form.get("resource")
    if resource is not None and resource != grant.get("res"):
        raise BadRequest("invalid_target", "resource differs from the one authorized")
    slug = slug_of(str(grant.get("res")), base)
    if slug is None or grants.live_consumer(grant, slug) is None:
        raise BadRequest("invalid_grant", "the sign-in no longer opens this MCP server")
    return grants.pair(base, grant)


async def _code(grants: Grants, form: dict[str, str], client_id: str) -> dict[str, Any]:
    if not form.get("code"):
        raise BadRequest("invalid_request", "code is required")
    if not form.get("code_verifier"):
        raise BadRequest("invalid_request", "code_verifier is required (PKCE)")
    grant = await grants.redeem(CODE, form.get("code"), client_id)
    if form.get("redirect_uri") != grant.get("ru"):
        raise BadRequest("invalid_grant", "redirect_uri differs from the authorization request's")
    if not pkce_matches(form.get("code_verifier"), str(grant.get("ch"))):
        raise BadRequest("invalid_grant", "code_verifier does not match the code_challenge")
    return grant


async def _refresh(grants: Grants, form: dict[str, str], client_id: str) -> dict[str, Any]:
    if not form.get("refresh_token"):
        raise BadRequest("invalid_request", "refresh_token is required")
    scopes = (form.get("scope") or SCOPE).split()
    if any(s != SCOPE for s in scopes):
        raise BadRequest("invalid_scope", f"the only scope is {SCOPE}")
    return await grants.redeem(REFRESH, form.get("refresh_token"), client_id)
