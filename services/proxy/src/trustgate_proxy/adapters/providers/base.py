"""What the proxy needs to call one registry: URLs and headers, built once per registry.

A target is built from the registry and its opened (decrypted) ``auth`` when the registry
is first used, and rebuilt after the registry changes; the hot path only reads it.

Every target names the wire format it speaks (``wire``); the forwarder passes a body
through untouched when the client speaks the same one, and translates otherwise. A
provider whose requests need per-request credentials (a SigV4 signature over the body, a
short-lived OAuth token) sets ``needs_authorize`` and implements ``authorize``; for the
others the hot path never awaits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from trustgate_core.models import Registry
from trustgate_proxy.domain.formats.base import WireFormat


class UpstreamTarget:
    """One registry's endpoint. This base class speaks OpenAI's Chat Completions wire
    format (``openai`` and its family, ``openai_compatible``, ``azure``); providers of
    other formats subclass it and override ``wire``, ``generate_url`` and, when they must,
    ``authorize``."""

    __slots__ = ("_chat_url", "base_url", "deployment_in_path", "headers", "provider", "query")

    wire: WireFormat = "openai_chat"
    needs_authorize = False

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
        deployment_in_path: bool = False,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json", **headers}
        self.query = "?" + urlencode(query) if query else ""
        self.deployment_in_path = deployment_in_path
        self._chat_url = f"{self.base_url}/chat/completions{self.query}"

    def chat_url(self, model: str | None) -> str:
        if self.deployment_in_path:
            return f"{self.base_url}/openai/deployments/{quote(model or '', safe='')}/chat/completions{self.query}"
        return self._chat_url

    def generate_url(self, model: str | None, stream: bool) -> str:
        """Where a generation request (plain or streamed) for ``model`` goes."""
        return self.chat_url(model)

    def for_inbound(self, inbound: WireFormat) -> UpstreamTarget:
        """The target that serves a client speaking ``inbound``: this one, unless the
        registry offers several APIs (``openai`` without ``provider_options.api`` sends
        Responses API clients to its Responses API, and the others to chat). The
        forwarder calls it once per request, before comparing ``wire`` with ``inbound``."""
        return self

    def embeddings_url(self, model: str | None) -> str | None:
        """Where an OpenAI-format embeddings request goes (``None``: not offered)."""
        if self.deployment_in_path:
            deployment = quote(model or "", safe="")
            return f"{self.base_url}/openai/deployments/{deployment}/embeddings{self.query}"
        return f"{self.base_url}/embeddings{self.query}"

    async def authorize(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """The headers for one request (only awaited when ``needs_authorize``): e.g. a
        SigV4 signature over ``body``, or a freshly minted bearer token."""
        return self.headers

    def models_url(self) -> str | None:
        if self.deployment_in_path:
            return None
        return f"{self.base_url}/models{self.query}"

    def model_names(self, doc: Any) -> list[str]:
        """The model names in the answer of ``models_url()`` (OpenAI's shape,
        ``{"data":[{"id":…}]}``, which Anthropic's list shares)."""
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            return []
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


class TargetBuilder(Protocol):
    def __call__(self, registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget: ...


def normalise_base_url(url: str) -> str:
    """An SDK-style base URL (``…/v1``): a bare host gets ``/v1``; a trailing
    ``/chat/completions`` is dropped."""
    url = url.strip().rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    _scheme, sep, rest = url.partition("://")
    if sep and "/" not in rest:
        url += "/v1"
    return url
