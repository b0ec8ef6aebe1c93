"""OAuth 2.1 through the real plane: the MCP SDK's client, given only the consumer's MCP
URL, is refused (401 with the challenge), discovers the plane's metadata, registers,
sends the person to the connect page (the API key typed there), gets a token and calls
tools with it; the token opens no other consumer's URL."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane

REDIRECT = "http://127.0.0.1:33418/callback"


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def oauth_agent(url: str, key: str, storage: MemoryStorage, visits: list[str]) -> Client:
    """The SDK's client with its OAuth provider; the "person" signs in with ``key``."""
    answers: list[dict[str, str]] = []

    async def redirect_handler(authorize_url: str) -> None:
        visits.append(authorize_url)
        async with httpx.AsyncClient() as browser:
            page = await browser.get(authorize_url)
            assert page.status_code == 200, page.text
            form = re.search(r'name="form" value="([^"]+)"', page.text)
            assert form is not None
            action = urlsplit(authorize_url)._replace(query="").geturl()
            back = await browser.post(
                action, data={"form": html.unescape(form.group(1)), "api_key": key}
            )
        assert back.status_code == 302, back.text
        answers.append(dict(parse_qsl(urlsplit(back.headers["location"]).query)))

    async def callback_handler() -> AuthorizationCodeResult:
        answer = answers.pop()
        return AuthorizationCodeResult(code=answer["code"], state=answer["state"])

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=[AnyUrl(REDIRECT)], client_name="t"),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(20))
    return Client(streamable_http_client(url, http_client=http), mode="legacy")


async def test_the_sdk_client_signs_in_with_oauth_and_calls_tools(
    plane: LocalPlane, tenant: Tenant
) -> None:
    url = plane.mcp_url(tenant)
    storage, visits = MemoryStorage(), list[str]()
    async with oauth_agent(url, tenant.keys["agent"], storage, visits) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "weather_search" in names
        result = await client.call_tool("weather_search", {"query": "rain"})
        assert result.is_error is False
    assert len(visits) == 1
    assert dict(parse_qsl(urlsplit(visits[0]).query))["resource"] == url
    assert storage.tokens is not None

    # the call was recorded as the consumer's, through the API-key auth signed in with
    calls = [c for c in plane.sink.calls if c.consumer_id == tenant.consumers["agent"].id]
    assert calls and all(c.auth_id == tenant.auths["agent"].id for c in calls)

    # the token is for this MCP URL only
    await tenant.add_consumer("other", ["weather"], type="MCP")
    other = plane.mcp_url(tenant, "other")
    async with httpx.AsyncClient() as raw:
        refused = await raw.post(
            other,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={
                "authorization": f"Bearer {storage.tokens.access_token}",
                "accept": "application/json, text/event-stream",
            },
        )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{plane.url}/.well-known/oauth-protected-resource'
        f'/{tenant.consumers["other"].slug}/mcp"'
    )
