"""``GET /{slug}/v1/models`` on a registry that is not OpenAI-shaped: the proxy reads the
provider's own models list (Anthropic's ``data[].id``, Google's ``models[].name``) and
answers in OpenAI's list shape; a provider without a list (Vertex) is skipped cleanly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from trustgate_core.errors import BackendError, ProviderCredentialError
from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.adapters.providers.gemini import GeminiTarget
from trustgate_proxy.services.models import ModelLister
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.mock_gemini import GEMINI_KEY, serve_google_mock
from trustgate_testkit.proxy.providers import MOCKS
from trustgate_testkit.proxy.sdk_clients import openai_sdk, route_to
from trustgate_testkit.proxy.server import RunningProxy
from trustgate_testkit.proxy.tenant import Tenant

# request-path tests: the proxy in process, configuration applied without the bus
proxy, tenant, bus, events = local_fixtures()


async def test_an_anthropic_registry_lists_anthropics_models(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["anthropic"]() as mock:
        await route_to(proxy, tenant, mock, "claude")
        models = [m async for m in openai_sdk(proxy, tenant).models.list()]
    assert [(m.id, m.owned_by) for m in models] == [("claude-mock-1", "anthropic")]


async def test_a_gemini_registry_lists_googles_models_without_the_models_prefix(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["gemini"]() as mock:
        await route_to(proxy, tenant, mock, "gemini")
        models = [m async for m in openai_sdk(proxy, tenant).models.list()]
    assert [(m.id, m.owned_by) for m in models] == [("gemini-2.5-flash", "gemini")]


async def test_a_vertex_registry_with_a_service_account_is_skipped_in_the_listing(
    proxy: RunningProxy, tenant: Tenant
) -> None:
    async with MOCKS["vertex"]() as mock:
        await route_to(proxy, tenant, mock, "vertex")
        models = [m async for m in openai_sdk(proxy, tenant).models.list()]
    assert models == []


class _MintedGemini(GeminiTarget):
    """A Gemini target whose key comes from ``authorize`` (as a minted token would)."""

    __slots__ = ("asked", "key")

    needs_authorize = True

    def __init__(self, url: str, key: str | None) -> None:
        super().__init__("gemini", f"{url}/v1beta/models", {})
        self.key = key
        self.asked: list[tuple[str, str, bytes]] = []

    async def authorize(self, method: str, url: str, body: bytes) -> dict[str, str]:
        self.asked.append((method, url, body))
        if self.key is None:
            raise ProviderCredentialError("no token could be minted")
        return {**self.headers, "x-goog-api-key": self.key}


async def _listing(target: UpstreamTarget) -> Any:
    registry = SimpleNamespace(id="r", name="r")
    binding = SimpleNamespace(allowed=(), default=None, provider="gemini", registry=registry)
    view = SimpleNamespace(target=lambda registry: target)
    async with aiohttp.ClientSession() as session:
        lister = ModelLister(view, session)  # type: ignore[arg-type]
        return await lister.listing(SimpleNamespace(bindings=[binding]))  # type: ignore[arg-type]


async def test_a_target_needing_per_request_credentials_lists_with_the_authorized_headers() -> None:
    async with serve_google_mock() as mock:
        target = _MintedGemini(mock.url, GEMINI_KEY)
        listing = await _listing(target)
    assert [m["id"] for m in listing["data"]] == ["gemini-2.5-flash"]
    assert target.asked == [("GET", f"{mock.url}/v1beta/models", b"")]


async def test_a_target_whose_credentials_cannot_be_minted_is_reported() -> None:
    async with serve_google_mock() as mock:
        with pytest.raises(BackendError) as raised:
            await _listing(_MintedGemini(mock.url, None))
    assert raised.value.extra["errors"] == [{"registry": "r", "error": "credentials unavailable"}]
