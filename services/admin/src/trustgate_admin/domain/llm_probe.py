"""The cheapest authenticated call to an LLM provider: listing its models.

Base URLs and credential headers follow the proxy's provider adapters
(``trustgate_proxy.adapters.providers``; the admin does not import the proxy). Providers
whose adapter has no models list (Azure deployments, Bedrock, Vertex, Cohere) are
answered as unsupported rather than with a call that proves nothing.

Pure: the documents are already opened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.registry_auth import api_key_credentials as wire_credentials

#: OpenAI-compatible providers and their public base URL (None: ``base_url`` is required).
OPENAI_FAMILY: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "openai_compatible": None,
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "xai": "https://api.x.ai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}
ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
GEMINI_VERSION = "v1beta"


class ProbeConfigError(Exception):
    """The registry's settings cannot make the call (no key, an auth type the provider
    does not take): the message names the field, never a value."""


class Unsupported(Exception):
    """The provider has no models list the proxy uses."""


@dataclass(frozen=True)
class ModelsRequest:
    url: str
    headers: dict[str, str]
    params: dict[str, str]


def models_request(
    provider: str, options: Mapping[str, Any], auth: Mapping[str, Any] | None
) -> ModelsRequest:
    """``GET`` this to list the provider's models with the registry's credentials."""
    code = provider.strip().lower()
    extra = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
    base = options.get("base_url")
    base = base.strip().rstrip("/") if isinstance(base, str) and base.strip() else None
    if code in OPENAI_FAMILY:
        base_url = _openai_base(base) if base else OPENAI_FAMILY[code]
        if base_url is None:
            raise ProbeConfigError("provider_options.base_url: is required")
        creds, query = api_key_credentials(auth, required=code != "openai_compatible")
        return ModelsRequest(f"{base_url}/models", {**extra, **creds}, query)
    if code == "anthropic":
        base_url = _anthropic_base(base) if base else ANTHROPIC_BASE_URL
        creds, query = api_key_credentials(auth, required=True)
        _move_bearer(creds, "x-api-key")
        version = str(options.get("version") or ANTHROPIC_VERSION)
        return ModelsRequest(
            f"{base_url}/models", {**extra, "anthropic-version": version, **creds}, query
        )
    if code in ("google", "gemini"):
        version = str(options.get("version") or GEMINI_VERSION)
        base_url = base or GEMINI_BASE_URL
        if not base_url.endswith(f"/{version}"):
            base_url = f"{base_url}/{version}"
        creds, query = api_key_credentials(auth, required=True)
        _move_bearer(creds, "x-goog-api-key")
        return ModelsRequest(f"{base_url}/models", {**extra, **creds}, query)
    raise Unsupported(f"provider {code}: no models list to test the connection with")


def _openai_base(url: str) -> str:
    """An SDK-style base (``…/v1``): a bare host gets ``/v1``; a trailing
    ``/chat/completions`` or ``/responses`` is dropped."""
    url = url.removesuffix("/responses").removesuffix("/chat/completions")
    _scheme, sep, rest = url.partition("://")
    return f"{url}/v1" if sep and "/" not in rest else url


def _anthropic_base(url: str) -> str:
    url = url.removesuffix("/messages")
    return url if url.endswith("/v1") else f"{url}/v1"


def _move_bearer(creds: dict[str, str], header: str) -> None:
    """A plain key goes in the provider's own header rather than as a bearer."""
    bearer = creds.pop("Authorization", None)
    if bearer is not None:
        creds[header] = bearer.removeprefix("Bearer ")


def api_key_credentials(
    auth: Mapping[str, Any] | None, *, required: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters of an ``api_key`` auth, as the proxy sends them
    (core's rule); a credential that cannot work is a configuration error of the test."""
    try:
        return wire_credentials(auth, required=required)
    except ProviderCredentialError as error:
        raise ProbeConfigError(f"auth: {error.message}") from None
