"""AWS Bedrock Runtime: ``POST https://bedrock-runtime.{region}.amazonaws.com/model/
{modelId}/converse`` (or ``/converse-stream``), every request signed with SigV4.

Credentials come from the registry's ``auth`` of type ``aws``: ``region`` (required) and
``access_key_id`` + ``secret_access_key`` (+ ``session_token``). Assuming a role
(``use_role`` + ``role``, STS AssumeRole) is not supported: the registry is refused with a
provider credential error (502). ``provider_options.base_url`` (or ``endpoint_url``)
replaces the regional endpoint (tests, VPC endpoints); the region still scopes the
signature.

Signing uses botocore's own SigV4 signer (``SigV4Auth``, service ``bedrock``), over the
exact method, URL and body sent; it adds ``X-Amz-Date``, ``X-Amz-Security-Token`` (with
a session token) and ``Authorization``. ``x-amz-content-sha256`` is not sent: Bedrock,
unlike S3, does not require it (the payload hash is part of the signature all the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers.base import UpstreamTarget
from trustgate_proxy.domain.formats.base import WireFormat

SERVICE = "bedrock"
_JSON = {"Content-Type": "application/json"}


def model_path(model: str) -> str:
    """A model id (or inference-profile id, or ARN) as one URL path segment. Kept in the
    form HTTP clients send unchanged (``:`` stays, ``/`` is escaped): the signature covers
    the path exactly as it goes on the wire."""
    return quote(model, safe=":@")


class BedrockTarget(UpstreamTarget):
    """One Bedrock registry: Converse URLs and a SigV4 signer with its credentials."""

    __slots__ = ("_signer", "region")

    wire: WireFormat = "bedrock"
    needs_authorize = True

    def __init__(self, base_url: str, region: str, credentials: Credentials) -> None:
        super().__init__("bedrock", base_url, {})
        self.region = region
        self._signer = SigV4Auth(credentials, SERVICE, region)

    def generate_url(self, model: str | None, stream: bool) -> str:
        action = "converse-stream" if stream else "converse"
        return f"{self.base_url}/model/{model_path(model or '')}/{action}"

    def chat_url(self, model: str | None) -> str:
        return self.generate_url(model, False)

    def embeddings_url(self, model: str | None) -> str | None:
        return None

    def models_url(self) -> str | None:
        return None

    def sign(self, method: str, url: str, body: bytes) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=_JSON)
        self._signer.add_auth(request)
        return dict(request.headers.items())

    async def authorize(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """``Content-Type``, ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session
        token) and ``Authorization`` for this exact request (CPU only, a few tens of µs)."""
        return self.sign(method, url, body)

    def __repr__(self) -> str:  # never the keys
        return f"BedrockTarget({self.base_url!r}, region={self.region!r})"


def _aws_section(auth: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not auth:
        raise ProviderCredentialError("bedrock needs aws credentials")
    kind = auth.get("type", "aws")
    if kind != "aws":
        raise ProviderCredentialError(f"bedrock needs auth type 'aws', not '{kind}'")
    inner = auth.get("aws")
    if isinstance(inner, Mapping):
        return inner
    return {k: v for k, v in auth.items() if k != "type"}


def build_bedrock_target(registry: Registry, auth: Mapping[str, Any] | None) -> UpstreamTarget:
    cfg = _aws_section(auth)
    options = registry.provider_options
    region = cfg.get("region") or options.get("region")
    if not isinstance(region, str) or not region.strip():
        raise ProviderCredentialError("bedrock needs auth.aws.region")
    region = region.strip()
    key_id, secret = cfg.get("access_key_id"), cfg.get("secret_access_key")
    if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
        if cfg.get("use_role"):
            raise ProviderCredentialError(
                "bedrock: assuming a role (use_role) is not supported by this proxy; "
                "give access_key_id and secret_access_key"
            )
        raise ProviderCredentialError("bedrock needs access_key_id and secret_access_key")
    token = cfg.get("session_token")
    credentials = Credentials(key_id, secret, token if isinstance(token, str) and token else None)
    base = options.get("base_url") or options.get("endpoint_url")
    if isinstance(base, str) and base.strip():
        base_url = base.strip()
    else:
        base_url = f"https://bedrock-runtime.{region}.amazonaws.com"
    return BedrockTarget(base_url, region, credentials)
