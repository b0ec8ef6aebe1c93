"""A mock of Microsoft Entra ID's token endpoint (the OAuth 2.0 client-credentials grant of
an Azure service principal), and an ``azure`` registry that authenticates through it; for
tests.

Path: ``POST /{tenant}/oauth2/v2.0/token`` (an ``azure`` registry's ``authority_host``
points at the mock's URL).

Fixtures' provenance: Microsoft identity platform, OAuth 2.0 client credentials flow: form
``grant_type``, ``client_id``, ``client_secret``, ``scope`` (``…/.default``); answer
``{token_type, expires_in, ext_expires_in, access_token}``; an unknown tenant 400
``invalid_request`` (AADSTS90002); a bad secret 401 ``invalid_client`` (AADSTS7000215).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from trustgate_testkit.proxy.mock_base import serve_app
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.providers import ProviderMock

ENTRA_TENANT = "mock-tenant"
ENTRA_CLIENT_ID = "00000000-0000-0000-0000-00000000c11e"
ENTRA_SECRET = "mock~entra~secret~0123456789"


@dataclass
class EntraMock:
    """Entra ID's token endpoint for one tenant and one service principal."""

    url: str = ""
    mints: int = 0
    expires_in: list[int] = field(default_factory=list)  # per mint, then 3599
    tokens: list[str] = field(default_factory=list)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.match_info["tenant"] != ENTRA_TENANT:
            return web.json_response(
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS90002: Tenant not found.",
                    "error_codes": [90002],
                },
                status=400,
            )
        if form.get("grant_type") != "client_credentials" or not str(
            form.get("scope", "")
        ).endswith("/.default"):
            return web.json_response(
                {"error": "invalid_request", "error_description": "AADSTS900144: bad request"},
                status=400,
            )
        if form.get("client_id") != ENTRA_CLIENT_ID or form.get("client_secret") != ENTRA_SECRET:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
                status=401,
            )
        lifetime = self.expires_in[self.mints] if self.mints < len(self.expires_in) else 3599
        self.mints += 1
        token = f"eyJ0eXAiOiJKV1Qi.entra-{self.mints}.sig"
        self.tokens.append(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )


@asynccontextmanager
async def serve_entra_mock() -> AsyncIterator[EntraMock]:
    mock = EntraMock()
    app = web.Application()
    app.router.add_post("/{tenant}/oauth2/v2.0/token", mock.token)
    async with serve_app(app) as url:
        mock.url = url
        yield mock


def azure_entra_auth(chat_url: str) -> dict[str, Any]:
    """An ``azure`` registry's service-principal credentials for the OpenAI mock at
    ``chat_url``, which this mock's Entra endpoint mints tokens for."""
    return {
        "type": "azure",
        "azure": {
            "endpoint": chat_url.removesuffix("/v1"),
            "client_id": ENTRA_CLIENT_ID,
            "client_secret": ENTRA_SECRET,
            "tenant_id": ENTRA_TENANT,
        },
    }


@asynccontextmanager
async def serve_azure_entra_mock(name: str = "azure") -> AsyncIterator[ProviderMock]:
    """An ``azure`` registry with an Entra ID service principal: the OpenAI mock's
    deployment paths accept the bearer tokens this mock's Entra endpoint minted."""
    async with serve_mock(name) as chat, serve_entra_mock() as entra:
        chat.entra_tokens = entra.tokens
        yield ProviderMock(
            provider="azure",
            wire="openai_chat",
            options={"authority_host": entra.url},
            auth=azure_entra_auth(chat.url),
            requests=chat.recorded,
            name=name,
        )
