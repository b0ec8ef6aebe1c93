"""The MCP plane's OAuth 2.1 settings (authorization server and protected resource)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OAuthSettings(BaseSettings):
    """``MCP_OAUTH_*``, ``MCP_CONNECT_*`` and ``MCP_DEFAULT_IDP_*``."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # the external base URL of this plane (``https://mcp.example.com``); empty: taken from
    # each request's scheme and Host
    public_url: str = Field("", alias="MCP_PUBLIC_URL")
    # lifetime of an access token the plane issues, seconds
    oauth_token_ttl: float = Field(3600.0, alias="MCP_OAUTH_TOKEN_TTL", gt=0)
    # lifetime of a refresh token (each use hands out a new one), seconds
    oauth_refresh_ttl: float = Field(30 * 86400.0, alias="MCP_OAUTH_REFRESH_TTL", gt=0)
    # sign-in attempts on the connect page per client IP and minute
    connect_rate_limit_per_minute: int = Field(10, alias="MCP_CONNECT_RATE_LIMIT_PER_MINUTE", gt=0)
    # an upstream identity provider users may sign in with instead of an API key (all of
    # issuer, client id and secret, authorize, token and JWKS URLs; none: API keys only)
    default_idp_issuer: str = Field("", alias="MCP_DEFAULT_IDP_ISSUER")
    default_idp_name: str = Field("", alias="MCP_DEFAULT_IDP_NAME")
    default_idp_client_id: str = Field("", alias="MCP_DEFAULT_IDP_CLIENT_ID")
    default_idp_client_secret: str = Field("", alias="MCP_DEFAULT_IDP_CLIENT_SECRET", repr=False)
    default_idp_authorize_url: str = Field("", alias="MCP_DEFAULT_IDP_AUTHORIZE_URL")
    default_idp_token_url: str = Field("", alias="MCP_DEFAULT_IDP_TOKEN_URL")
    default_idp_jwks_url: str = Field("", alias="MCP_DEFAULT_IDP_JWKS_URL")
    default_idp_scope: str = Field("openid", alias="MCP_DEFAULT_IDP_SCOPE")

    def idp_configured(self) -> bool:
        return all(
            (
                self.default_idp_issuer,
                self.default_idp_client_id,
                self.default_idp_client_secret,
                self.default_idp_authorize_url,
                self.default_idp_token_url,
                self.default_idp_jwks_url,
            )
        )
