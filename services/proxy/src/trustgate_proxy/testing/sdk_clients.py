"""The official SDKs pointed at a running proxy, and a tenant routed to a provider mock:
the setup the SDK tests share (tests cannot import each other under
``--import-mode=importlib``).

Needs the ``openai`` and ``anthropic`` SDKs (the workspace's dev dependencies).
"""

from __future__ import annotations

from typing import Any

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from trustgate_proxy.testing.providers import ProviderMock
from trustgate_proxy.testing.server import RunningProxy, until_known
from trustgate_proxy.testing.tenant import Tenant


def gateway_headers(tenant: Tenant, consumer: str = "app") -> dict[str, str]:
    """The gateway's slug and the consumer's key, as headers."""
    return {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys[consumer]}


def openai_sdk(
    proxy: RunningProxy, tenant: Tenant, consumer: str = "app", *, timeout: float = 15
) -> AsyncOpenAI:
    """The ``openai`` SDK at the consumer's ``…/{slug}/v1``, no retries."""
    return AsyncOpenAI(
        base_url=proxy.base_url(tenant.consumers[consumer]),
        api_key="unused",
        max_retries=0,
        timeout=timeout,
        default_headers=gateway_headers(tenant, consumer),
    )


def anthropic_sdk(
    proxy: RunningProxy, tenant: Tenant, consumer: str = "app", *, timeout: float = 15
) -> AsyncAnthropic:
    """The ``anthropic`` SDK at the consumer's ``…/{slug}`` (it adds ``/v1``), no retries."""
    return AsyncAnthropic(
        base_url=f"{proxy.url}/{tenant.consumers[consumer].slug}",
        api_key="unused",
        max_retries=0,
        timeout=timeout,
        default_headers=gateway_headers(tenant, consumer),
    )


async def route_to(
    proxy: RunningProxy,
    tenant: Tenant,
    mock: ProviderMock,
    registry: str = "upstream",
    *,
    options: dict[str, Any] | None = None,
    consumer: str = "app",
) -> Tenant:
    """A registry for ``mock`` (its options, updated by ``options``) and a consumer bound
    to it, known to the proxy."""
    await tenant.add_registry(
        registry,
        "",
        provider=mock.provider,
        options={**mock.options, **(options or {})},
        auth=mock.auth,
    )
    await tenant.add_consumer(consumer, [registry])
    await until_known(proxy, tenant)
    return tenant


# -- what the SDK tests send ---------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
"""A 1x1 PNG, base64."""

WEATHER_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}
CHAT_WEATHER_TOOL: Any = {  # the ``openai`` SDK's chat completions shape
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": WEATHER_PARAMETERS,
    },
}
MESSAGES_WEATHER_TOOL: Any = {  # the ``anthropic`` SDK's messages shape
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": WEATHER_PARAMETERS,
}
RESPONSES_WEATHER_TOOL: Any = {  # the ``openai`` SDK's responses shape
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": WEATHER_PARAMETERS,
    "strict": False,
}
