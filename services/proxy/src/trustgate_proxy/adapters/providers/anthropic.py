"""Anthropic's Messages API: ``https://api.anthropic.com/v1/messages`` (plain and
streamed: the body's ``stream`` decides), the key in ``x-api-key`` and the API version in
``anthropic-version`` (``2023-06-01``, or ``provider_options.version``).
``provider_options.base_url`` overrides the host, SDK-style (``https://host`` or
``https://host/v1``; a trailing ``/messages`` is dropped); ``provider_options.headers`` are
added to every request (``anthropic-beta``, …)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.models import Registry
from trustgate_core.registry_auth import api_key_credentials
from trustgate_proxy.adapters.providers.base import UpstreamTarget
from trustgate_proxy.domain.formats.base import WireFormat

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicTarget(UpstreamTarget):
    """One URL for every generation request: ``{base}/messages``."""

    __slots__ = ("_messages_url",)

    wire: WireFormat = "anthropic"

    def __init__(self, provider: str, base_url: str, headers: Mapping[str, str]) -> None:
        super().__init__(provider, base_url, headers)
        self._messages_url = f"{self.base_url}/messages"

    def generate_url(self, model: str | None, stream: bool) -> str:
        return self._messages_url

    def chat_url(self, model: str | None) -> str:
        return self._messages_url

    def embeddings_url(self, model: str | None) -> str | None:
        return None  # Anthropic has no embeddings API

    def models_url(self) -> str | None:
        return f"{self.base_url}/models"  # {"data":[{"id":…,"type":"model"}], …}


def anthropic_base_url(url: str) -> str:
    """``https://host``, ``https://host/v1`` or ``…/v1/messages`` as ``…/v1``."""
    url = url.strip().rstrip("/").removesuffix("/messages")
    return url if url.endswith("/v1") else f"{url}/v1"


def build_anthropic_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    options = registry.provider_options
    base = options.get("base_url")
    base_url = anthropic_base_url(base) if isinstance(base, str) and base else ANTHROPIC_BASE_URL
    creds, _query = api_key_credentials(auth, required=True)
    bearer = creds.pop("Authorization", None)
    if bearer is not None:  # a plain api key: Anthropic wants it in x-api-key
        creds["x-api-key"] = bearer.removeprefix("Bearer ")
    headers: dict[str, str] = {}
    extra = options.get("headers")
    if isinstance(extra, Mapping):
        headers.update({str(k): str(v) for k, v in extra.items()})
    headers["anthropic-version"] = str(options.get("version") or ANTHROPIC_VERSION)
    headers.update(creds)
    return AnthropicTarget((registry.provider or "anthropic").lower(), base_url, headers)


__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicTarget", "build_anthropic_target"]
