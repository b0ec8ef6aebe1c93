"""Who a data-plane request is for and who sends it: gateway discovery (header or Host,
with the base domain as a parameter), consumer API-key authentication, OIDC/OAuth2 bearer
tokens (JWKS or introspection) and the roles a token's claims select. Pure but for the
IdP calls the token verifier makes; shared by the proxy and the MCP plane."""

from trustgate_core.access.auth import api_key_from_headers, authenticate, bearer_token
from trustgate_core.access.discovery import DiscoveryMode, discover_gateway, ensure_active
from trustgate_core.access.idp_http import FetchJson, IdpError, http_fetcher
from trustgate_core.access.roles import matching_roles, role_matches
from trustgate_core.access.tokens import (
    ASYMMETRIC_ALGORITHMS,
    TOKEN_AUTH_TYPES,
    TokenVerifier,
    Verified,
    looks_like_jwt,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "TOKEN_AUTH_TYPES",
    "DiscoveryMode",
    "FetchJson",
    "IdpError",
    "TokenVerifier",
    "Verified",
    "api_key_from_headers",
    "authenticate",
    "bearer_token",
    "discover_gateway",
    "ensure_active",
    "http_fetcher",
    "looks_like_jwt",
    "matching_roles",
    "role_matches",
]
