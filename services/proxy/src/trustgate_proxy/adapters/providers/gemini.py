"""The Gemini API (provider codes ``gemini`` and ``google``):
``https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, the key in ``x-goog-api-key``. The model goes in the
URL, not the body. ``provider_options.base_url`` overrides the host (tests, proxies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from trustgate_core.models import Registry
from trustgate_core.registry_auth import api_key_credentials
from trustgate_proxy.adapters.providers.base import UpstreamTarget
from trustgate_proxy.domain.formats.base import WireFormat

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
GEMINI_VERSION = "v1beta"


class GeminiTarget(UpstreamTarget):
    """A target whose URL names the model: ``{models_base}/{model}:{action}``."""

    __slots__ = ("models_base",)

    wire: WireFormat = "gemini"

    def __init__(
        self,
        provider: str,
        models_base: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(provider, models_base, headers, query)
        self.models_base = models_base.rstrip("/")

    def generate_url(self, model: str | None, stream: bool) -> str:
        name = (model or "").removeprefix("models/")
        url = f"{self.models_base}/{quote(name, safe='')}"
        if stream:
            return f"{url}:streamGenerateContent?alt=sse" + self.query.replace("?", "&", 1)
        return f"{url}:generateContent{self.query}"

    def chat_url(self, model: str | None) -> str:
        return self.generate_url(model, False)

    def embeddings_url(self, model: str | None) -> str | None:
        return None  # embedContent is not the OpenAI embeddings format

    def models_url(self) -> str | None:
        return f"{self.models_base}{self.query}"

    def model_names(self, doc: Any) -> list[str]:
        """The names in a ``models.list`` answer (``{"models":[{"name":"models/…"}]}``)."""
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, list):
            return []
        return [
            m["name"].removeprefix("models/")
            for m in models
            if isinstance(m, dict) and isinstance(m.get("name"), str)
        ]


def build_gemini_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    options = registry.provider_options
    base = options.get("base_url")
    base_url = base.strip().rstrip("/") if isinstance(base, str) and base else GEMINI_BASE_URL
    version = str(options.get("version") or GEMINI_VERSION)
    if not base_url.endswith(f"/{version}"):
        base_url = f"{base_url}/{version}"
    headers, query = api_key_credentials(auth, required=True)
    bearer = headers.pop("Authorization", None)
    if bearer is not None:  # a plain api key: Google wants it in its own header
        headers["x-goog-api-key"] = bearer.removeprefix("Bearer ")
    extra = options.get("headers")
    if isinstance(extra, Mapping):
        headers = {**{str(k): str(v) for k, v in extra.items()}, **headers}
    return GeminiTarget(
        (registry.provider or "gemini").lower(), f"{base_url}/models", headers, query
    )


__all__ = ["GEMINI_BASE_URL", "GeminiTarget", "build_gemini_target"]
