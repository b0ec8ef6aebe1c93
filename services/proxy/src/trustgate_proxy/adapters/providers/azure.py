"""Azure OpenAI: ``{endpoint}/openai/deployments/{model}/chat/completions?api-version=…``,
the model naming the deployment.

Credentials (``auth.azure``, exactly one): ``api_key`` (the ``api-key`` header); a service
principal ``client_id``+``client_secret``+``tenant_id`` (Entra ID client credentials: a
bearer token from ``{authority_host}/{tenant}/oauth2/v2.0/token``, scope
``provider_options.scope`` or ``https://ai.azure.com/.default``; ``authority_host``
defaults to ``https://login.microsoftonline.com`` and may be set in the auth or the
options, for sovereign clouds and tests); or ``use_managed_identity`` (a token from the
instance metadata service, when the host has one). Tokens are cached until shortly before
they expire; minting never blocks the loop (aiohttp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers.base import UpstreamTarget
from trustgate_proxy.adapters.providers.tokens import BearerCache, Mint

DEFAULT_API_VERSION = "2024-10-21"
DEFAULT_SCOPE = "https://ai.azure.com/.default"  # the reference's; cognitiveservices also works
AUTHORITY_HOST = "https://login.microsoftonline.com"
IMDS_URL = "http://169.254.169.254/metadata/identity/oauth2/token"
_TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=15)
_IMDS_TIMEOUT = aiohttp.ClientTimeout(total=2)


def _token_of(doc: Any, who: str) -> tuple[str, float]:
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise ProviderCredentialError(f"azure: {who} returned no access token")
    try:
        lifetime = float(doc.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    return token, lifetime


def client_credentials_minter(
    authority: str, tenant: str, client_id: str, client_secret: str, scope: str
) -> Mint:
    """Entra ID's client-credentials grant, over a short-lived aiohttp session."""
    url = f"{authority.rstrip('/')}/{quote(tenant, safe='')}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": scope,
    }

    async def mint() -> tuple[str, float]:
        try:
            async with (
                aiohttp.ClientSession(timeout=_TOKEN_TIMEOUT) as session,
                session.post(url, data=form) as resp,
            ):
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError):  # TimeoutError is an OSError
            raise ProviderCredentialError(
                "azure: the Entra ID token endpoint is unreachable"
            ) from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if status != 200:
            code = doc.get("error") if isinstance(doc, dict) else None
            detail = f" ({code})" if isinstance(code, str) and code.isidentifier() else ""
            raise ProviderCredentialError(
                f"azure: Entra ID refused the service principal's credentials{detail}"
            )
        return _token_of(doc, "Entra ID")

    return mint


def managed_identity_minter(imds_url: str, resource: str, client_id: str | None) -> Mint:
    """A token from the instance metadata service (Azure VMs, AKS with pod identity)."""
    query = {"api-version": "2018-02-01", "resource": resource}
    if client_id:
        query["client_id"] = client_id
    url = f"{imds_url}?{urlencode(query)}"

    async def mint() -> tuple[str, float]:
        try:
            async with (
                aiohttp.ClientSession(timeout=_IMDS_TIMEOUT) as session,
                session.get(url, headers={"Metadata": "true"}) as resp,
            ):
                body = await resp.read()
                if resp.status != 200:
                    raise ProviderCredentialError(
                        "azure: managed identity is not available on this host"
                    )
        except (aiohttp.ClientError, OSError):
            raise ProviderCredentialError(
                "azure: managed identity is not available on this host"
            ) from None
        try:
            return _token_of(orjson.loads(body), "the managed identity endpoint")
        except orjson.JSONDecodeError:
            raise ProviderCredentialError(
                "azure: the managed identity endpoint answered something else than a token"
            ) from None

    return mint


class AzureBearerTarget(UpstreamTarget):
    """Azure OpenAI with an Entra ID bearer token, minted and cached per registry."""

    __slots__ = ("tokens",)

    needs_authorize = True

    def __init__(self, endpoint: str, query: Mapping[str, str], tokens: BearerCache) -> None:
        super().__init__("azure", endpoint, {}, query, True)
        self.tokens = tokens

    async def authorize(self, method: str, url: str, body: bytes) -> dict[str, str]:
        token = await self.tokens.token()
        return {**self.headers, "Authorization": f"Bearer {token}"}


def build_azure_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    cfg: Mapping[str, Any] = {}
    if auth and isinstance(auth.get("azure"), Mapping):
        cfg = auth["azure"]
    options = registry.provider_options
    endpoint = cfg.get("endpoint") or options.get("endpoint") or options.get("base_url")
    if not isinstance(endpoint, str) or not endpoint:
        raise ProviderCredentialError("azure needs an endpoint")
    endpoint = endpoint.strip().rstrip("/")
    if "/api/projects/" in endpoint:
        endpoint = endpoint.split("/api/projects/", 1)[0]
    version = cfg.get("version") or options.get("version") or DEFAULT_API_VERSION
    query = {"api-version": str(version)}
    key = cfg.get("api_key")
    if isinstance(key, str) and key:
        return UpstreamTarget("azure", endpoint, {"api-key": key}, query, True)
    scope = str(options.get("scope") or cfg.get("scope") or DEFAULT_SCOPE)
    client_id, secret, tenant = cfg.get("client_id"), cfg.get("client_secret"), cfg.get("tenant_id")
    if client_id and secret and tenant:
        authority = str(
            cfg.get("authority_host") or options.get("authority_host") or AUTHORITY_HOST
        )
        mint = client_credentials_minter(authority, str(tenant), str(client_id), str(secret), scope)
        return AzureBearerTarget(endpoint, query, BearerCache(mint))
    if cfg.get("use_managed_identity"):
        imds = str(options.get("imds_url") or IMDS_URL)
        resource = scope.removesuffix("/.default")
        mint = managed_identity_minter(
            imds, resource, client_id if isinstance(client_id, str) else None
        )
        return AzureBearerTarget(endpoint, query, BearerCache(mint))
    raise ProviderCredentialError(
        "azure needs api_key, client_id+client_secret+tenant_id, or use_managed_identity"
    )
