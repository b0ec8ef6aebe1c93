"""Providers that speak OpenAI's Chat Completions wire format at a fixed public URL, and the
generic ``openai_compatible`` one (vLLM, Ollama, Together, …) with its own base URL.

``provider_options.api`` picks the API a registry is called through: ``completions``
(Chat Completions, ``{base}/chat/completions``) or ``responses`` (the Responses API,
``{base}/responses``, wire ``openai_responses``). Unset, an ``openai`` registry serves
each client in its own API: ``/v1/responses`` requests go to its Responses API, all others
to chat (``UpstreamTarget.for_inbound``); the other providers use chat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_core.registry_auth import api_key_credentials
from trustgate_proxy.adapters.providers.base import (
    UpstreamTarget,
    normalise_base_url,
)
from trustgate_proxy.domain.formats.base import WireFormat

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
        base = base.strip().rstrip("/")
        base_url = normalise_base_url(base.removesuffix("/responses"))
    elif provider in PUBLIC_BASE_URLS:
        base_url = PUBLIC_BASE_URLS[provider]
    else:
        raise ProviderCredentialError("provider_options.base_url is required")
    headers = _static_headers(registry)
    creds, query = api_key_credentials(auth, required=provider != "openai_compatible")
    headers.update(creds)
    api = registry.provider_options.get("api")
    if api == "responses":
        return ResponsesTarget(provider, base_url, headers, query)
    if api is None and provider == "openai":
        return ChatOrResponsesTarget(provider, base_url, headers, query)
    if api not in (None, "completions"):
        raise ProviderCredentialError("provider_options.api must be completions or responses")
    return UpstreamTarget(provider, base_url, headers, query)


class ResponsesTarget(UpstreamTarget):
    """OpenAI's Responses API: ``{base}/responses``, plain or streamed."""

    __slots__ = ("_responses_url",)

    wire: WireFormat = "openai_responses"

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(provider, base_url, headers, query)
        self._responses_url = f"{self.base_url}/responses{self.query}"

    def generate_url(self, model: str | None, stream: bool) -> str:
        return self._responses_url


class ChatOrResponsesTarget(UpstreamTarget):
    """An ``openai`` registry without ``provider_options.api``: chat for every client,
    except those speaking the Responses API, served by the Responses API (same format,
    so their bodies pass through)."""

    __slots__ = ("responses",)

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(provider, base_url, headers, query)
        self.responses = ResponsesTarget(provider, base_url, headers, query)

    def for_inbound(self, inbound: WireFormat) -> UpstreamTarget:
        return self.responses if inbound == "openai_responses" else self
