"""The MCP plane's OAuth 2.1 settings (authorization server and protected resource)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OAuthSettings(BaseSettings):
    """``MCP_OAUTH_*`` and ``MCP_DEFAULT_IDP_*``."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # the external base URL of this plane (``https://mcp.example.com``); empty: taken from
    # each request's scheme and Host
    public_url: str = Field("", alias="MCP_PUBLIC_URL")
    # lifetime of an access token the plane issues, seconds
    oauth_token_ttl: float = Field(3600.0, alias="MCP_OAUTH_TOKEN_TTL", gt=0)
