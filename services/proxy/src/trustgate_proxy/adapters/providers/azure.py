"""Azure OpenAI: ``{endpoint}/openai/deployments/{model}/chat/completions?api-version=…``,
the model naming the deployment, with the ``api-key`` header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers.base import UpstreamTarget

DEFAULT_API_VERSION = "2024-10-21"


def build_azure_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    cfg: Mapping[str, Any] = {}
    if auth and isinstance(auth.get("azure"), Mapping):
        cfg = auth["azure"]
    options = registry.provider_options
    endpoint = cfg.get("endpoint") or options.get("endpoint") or options.get("base_url")
    if not isinstance(endpoint, str) or not endpoint:
        raise ProviderCredentialError("azure needs an endpoint")
    endpoint = endpoint.strip().rstrip("/")
    if "/api/projects/" in endpoint:
        endpoint = endpoint.split("/api/projects/", 1)[0]
    version = cfg.get("version") or options.get("version") or DEFAULT_API_VERSION
    key = cfg.get("api_key")
    if not isinstance(key, str) or not key:
        raise ProviderCredentialError("azure: only api_key credentials are supported by this proxy")
    return UpstreamTarget("azure", endpoint, {"api-key": key}, {"api-version": str(version)}, True)
