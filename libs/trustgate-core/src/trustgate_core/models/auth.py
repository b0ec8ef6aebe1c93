from __future__ import annotations

from typing import Any, Literal

from trustgate_core.models.base import Entity

AuthType = Literal["api_key", "oauth2", "oidc", "mtls"]


class Auth(Entity):
    """A credential that authenticates as a consumer.

    An API key travels only as ``key_hash`` (hex SHA-256) and a preview; ``config``
    carries its secret fields sealed.
    """

    name: str
    type: AuthType
    enabled: bool = True
    key_hash: str | None = None
    key_prefix: str | None = None
    key_suffix: str | None = None
    config: dict[str, Any] | None = None
