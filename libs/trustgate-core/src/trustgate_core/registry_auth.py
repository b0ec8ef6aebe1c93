"""An LLM registry's ``api_key`` auth as what goes on the wire: the proxy's upstream
calls and the admin's connection test read it the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import ProviderCredentialError


def api_key_credentials(
    auth: Mapping[str, Any] | None, *, required: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters from an ``api_key`` auth: ``{api_key}`` as a bearer
    token, ``header_name``+``header_value``, or ``param_name``+``param_value``
    (+``param_location``: query, the default, or header)."""
    if not auth:
        if required:
            raise ProviderCredentialError("the registry has no credentials")
        return {}, {}
    kind = auth.get("type", "api_key")
    if kind != "api_key":
        raise ProviderCredentialError(f"auth type '{kind}' is not supported by this provider")
    cfg: Any = auth.get("api_key", auth)
    if isinstance(cfg, str):
        return {"Authorization": f"Bearer {cfg}"}, {}
    if not isinstance(cfg, Mapping):
        raise ProviderCredentialError("malformed api_key credentials")
    if isinstance(cfg.get("api_key"), str) and cfg["api_key"]:
        return {"Authorization": f"Bearer {cfg['api_key']}"}, {}
    if cfg.get("header_name") and isinstance(cfg.get("header_value"), str):
        return {str(cfg["header_name"]): cfg["header_value"]}, {}
    if cfg.get("param_name") and isinstance(cfg.get("param_value"), str):
        if str(cfg.get("param_location", "query")).lower() == "header":
            return {str(cfg["param_name"]): cfg["param_value"]}, {}
        return {}, {str(cfg["param_name"]): cfg["param_value"]}
    if required:
        raise ProviderCredentialError("the registry has no api key")
    return {}, {}
