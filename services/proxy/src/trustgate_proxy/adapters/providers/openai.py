"""Providers that speak OpenAI's Chat Completions wire format at a fixed public URL, and the
generic ``openai_compatible`` one (vLLM, Ollama, Together, …) with its own base URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers.base import (
    UpstreamTarget,
    api_key_credentials,
    normalise_base_url,
)

PUBLIC_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "xai": "https://api.x.ai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}


def _static_headers(registry: Registry) -> dict[str, str]:
    extra = registry.provider_options.get("headers")
    if isinstance(extra, Mapping):
        return {str(k): str(v) for k, v in extra.items()}
    return {}


def build_openai_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    provider = (registry.provider or "").lower()
    base = registry.provider_options.get("base_url")
    if isinstance(base, str) and base:
        base_url = normalise_base_url(base)
    elif provider in PUBLIC_BASE_URLS:
        base_url = PUBLIC_BASE_URLS[provider]
    else:
        raise ProviderCredentialError("provider_options.base_url is required")
    headers = _static_headers(registry)
    creds, query = api_key_credentials(auth, required=provider != "openai_compatible")
    headers.update(creds)
    return UpstreamTarget(provider, base_url, headers, query)
