"""Vertex AI's Gemini endpoint (provider ``vertex``, Gemini's wire format):
``https://{location}-aiplatform.googleapis.com/{version}/projects/{project}/locations/
{location}/publishers/google/models/{model}:generateContent`` (``:streamGenerateContent
?alt=sse`` streamed; host ``aiplatform.googleapis.com`` for location ``global``).

Options: ``location`` (required), ``project`` (else the service account's
``project_id``), ``version`` (default ``v1``), ``base_url`` (replaces the scheme and host;
for tests). Credentials: a ``gcp_service_account`` auth (the SA JSON, an object or a
string) → an OAuth access token (scope cloud-platform) minted with google-auth, whose
blocking token call runs in a thread; or a static bearer token as an ``api_key`` auth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_core.registry_auth import api_key_credentials
from trustgate_proxy.adapters.providers.base import UpstreamTarget
from trustgate_proxy.adapters.providers.gemini import GeminiTarget
from trustgate_proxy.adapters.providers.tokens import BearerCache

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_VERSION = "v1"


def _service_account(auth: Mapping[str, Any]) -> dict[str, Any]:
    raw: Any = auth.get("gcp_service_account")
    if raw is None:
        raw = {k: v for k, v in auth.items() if k != "type"}
    if isinstance(raw, (str, bytes)):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderCredentialError("vertex: the service account is not valid JSON") from None
    if not isinstance(raw, dict) or not raw.get("client_email") or not raw.get("private_key"):
        raise ProviderCredentialError(
            "vertex: the service account needs client_email and private_key"
        )
    return raw


class ServiceAccountMinter:
    """Access tokens for one service account, through google-auth (in a thread)."""

    __slots__ = ("_credentials",)

    def __init__(self, info: Mapping[str, Any]) -> None:
        from google.oauth2 import service_account  # heavy: loaded only for Vertex

        try:
            self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(info), scopes=[CLOUD_PLATFORM]
            )
        except (ValueError, KeyError, TypeError):
            raise ProviderCredentialError(
                "vertex: the service account's private key cannot be read"
            ) from None

    def _refresh(self) -> tuple[str, float]:
        import google.auth.exceptions
        import requests
        from google.auth.transport.requests import Request

        creds = self._credentials
        try:
            with requests.Session() as session:
                creds.refresh(Request(session))
        except (google.auth.exceptions.GoogleAuthError, requests.RequestException, ValueError):
            raise ProviderCredentialError(
                "vertex: could not mint an access token for the service account"
            ) from None
        token = creds.token
        if not isinstance(token, str) or not token:
            raise ProviderCredentialError("vertex: the token endpoint returned no access token")
        expiry = creds.expiry
        now = datetime.now(UTC).replace(tzinfo=None)  # google-auth's expiry is naive UTC
        lifetime = (expiry - now).total_seconds() if expiry is not None else 3600.0
        return token, lifetime

    async def __call__(self) -> tuple[str, float]:
        return await asyncio.to_thread(self._refresh)


class VertexTarget(GeminiTarget):
    """Gemini on Vertex AI with a static bearer token (in ``headers``)."""

    __slots__ = ()

    def __init__(self, models_base: str, headers: Mapping[str, str]) -> None:
        super().__init__("vertex", models_base, headers)

    def models_url(self) -> str | None:
        return None  # publisher models are listed elsewhere; bindings name their models


class VertexServiceAccountTarget(VertexTarget):
    """Gemini on Vertex AI with a service account: each request gets a cached token."""

    __slots__ = ("tokens",)

    needs_authorize = True

    def __init__(self, models_base: str, headers: Mapping[str, str], tokens: BearerCache) -> None:
        super().__init__(models_base, headers)
        self.tokens = tokens

    async def authorize(self, method: str, url: str, body: bytes) -> dict[str, str]:
        token = await self.tokens.token()
        return {**self.headers, "Authorization": f"Bearer {token}"}


def build_vertex_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    options = registry.provider_options
    if not auth:
        raise ProviderCredentialError("vertex: the registry has no credentials")
    kind = auth.get("type", "gcp_service_account")
    tokens: BearerCache | None = None
    headers: dict[str, str] = {}
    project = options.get("project")
    if kind == "gcp_service_account":
        info = _service_account(auth)
        project = project or info.get("project_id")
        tokens = BearerCache(ServiceAccountMinter(info))
    else:  # a static token: {"type":"api_key","api_key":{"api_key": token}} or a header
        headers, query = api_key_credentials(auth, required=True)
        if query:
            raise ProviderCredentialError("vertex: the token must go in a header")
    location = options.get("location")
    if not isinstance(location, str) or not location:
        raise ProviderCredentialError("vertex needs provider_options.location")
    if not isinstance(project, str) or not project:
        raise ProviderCredentialError(
            "vertex needs provider_options.project (or a service account with project_id)"
        )
    version = str(options.get("version") or DEFAULT_VERSION)
    base = options.get("base_url")
    if isinstance(base, str) and base:
        root = base.strip().rstrip("/")
    elif location == "global":
        root = "https://aiplatform.googleapis.com"
    else:
        root = f"https://{location}-aiplatform.googleapis.com"
    models_base = (
        f"{root}/{version}/projects/{quote(project, safe='')}/locations/"
        f"{quote(location, safe='')}/publishers/google/models"
    )
    extra = options.get("headers")
    if isinstance(extra, Mapping):
        headers = {**{str(k): str(v) for k, v in extra.items()}, **headers}
    if tokens is not None:
        return VertexServiceAccountTarget(models_base, headers, tokens)
    return VertexTarget(models_base, headers)
