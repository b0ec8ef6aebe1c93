"""The registry of provider mocks, so one matrix test drives every provider.

Each mock module (``mock_upstream`` for OpenAI Chat and Azure, ``mock_anthropic``,
``mock_responses``, ``mock_gemini``, ``mock_bedrock``) serves its provider's exact wire
format and yields a ``ProviderMock``: what a registry needs to reach it (``provider``,
``options``, ``auth`` in clear) and every request it received, decoded into a
``Recorded``. ``MOCKS`` maps a name to a function opening one (``async with
MOCKS["openai"]() as mock``).

The behaviour contract every mock follows, by the model it receives (after model
mapping):

- anything: the text ``Hello from <name>``, streamed in at least three deltas (``Hello``,
  `` from``, `` <name>``), a natural stop, usage input 11 / output 7 (cached 3 where the
  format reports cache reads);
- ``…-tools``: without a tool result in the request, one ``get_weather`` call with
  arguments ``{"city":"Paris"}`` (streamed in ≥2 argument deltas) and the provider's
  tool-use finish reason; with one, the text ``The weather is <tool result text>``;
- ``…-long``: finished by max tokens (the provider's reason for it);
- ``…-cut``: a stream sends its first delta, then the connection is aborted;
- ``…-ratelimited``: 429 with the provider's error body and ``Retry-After: 7``;
- ``…-thinking`` (where the format has reasoning): a thinking block, then the text.

Wrong credentials get the provider's own auth error (status and body shape).

Modules are imported when a mock is opened, not here: the mock modules import
``ProviderMock`` and ``Recorded`` from this one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from trustgate_proxy.domain.formats.base import WireFormat


@dataclass
class Recorded:
    """One request as the provider received it."""

    path: str  # path and query
    headers: dict[str, str]
    body: dict[str, Any]  # the decoded provider body
    system: str | None = None  # the system prompt as the provider got it
    has_image: bool = False  # an image part reached the provider
    tool_result: str | None = None  # the text of a tool result in the request, if any


@dataclass
class ProviderMock:
    """A running mock and what a registry needs to reach it."""

    provider: str  # the registry's provider code
    wire: WireFormat
    options: dict[str, Any]  # the registry's provider_options (base_url → the mock, …)
    auth: dict[str, Any]  # the registry's auth, in clear
    requests: list[Recorded] = field(default_factory=list)
    supports_images: bool = True
    name: str = "mock"  # in the answer text: "Hello from <name>"


MockOpener = Callable[[], AbstractAsyncContextManager[ProviderMock]]


def _mock(module: str, function: str) -> MockOpener:
    """``trustgate_testkit.proxy.<module>.<function>``, imported when first opened."""

    def open_mock() -> AbstractAsyncContextManager[ProviderMock]:
        opener: MockOpener = getattr(
            importlib.import_module(f"trustgate_testkit.proxy.{module}"), function
        )
        return opener()

    open_mock.__name__ = function
    return open_mock


# One line per provider mock (each provider's helper adds its own).
MOCKS: dict[str, MockOpener] = {
    "openai": _mock("mock_upstream", "serve_openai_mock"),
    "azure": _mock("mock_upstream", "serve_azure_mock"),
    "anthropic": _mock("mock_anthropic", "serve_anthropic_mock"),
    "responses": _mock("mock_responses", "serve_responses_mock"),
    "bedrock": _mock("mock_bedrock", "serve_bedrock_mock"),
    "gemini": _mock("mock_gemini", "serve_gemini_mock"),
    "vertex": _mock("mock_gemini", "serve_vertex_mock"),
    "azure_entra": _mock("mock_entra", "serve_azure_entra_mock"),
}
