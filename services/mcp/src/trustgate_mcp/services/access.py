"""Who calls ``/{slug}/mcp``: the gateway, the consumer and the credential (reference §9:
path-first scoping).

The consumer is found by its slug alone (slugs are globally unique); a gateway named by
``X-AG-Gateway-Slug`` or by the Host ``{gateway}.{MCP_BASE_DOMAIN}`` must be the
consumer's. An unknown slug, or a consumer that is not of type MCP, is a 404 (the path
names no MCP endpoint). Credentials, in order: an API key (``X-AG-API-Key``,
``x-api-key``, ``Authorization: Bearer ag_…``); else a bearer token — first one the plane
issued for exactly this MCP URL, else one of the consumer's oauth2/oidc auths accepts.
None, or one that is not valid: 401 (the HTTP layer adds the OAuth challenge); a valid key
of another consumer: 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustgate_core.access import (
    DiscoveryMode,
    TokenVerifier,
    api_key_from_headers,
    authenticate,
    bearer_token,
    ensure_active,
)
from trustgate_core.errors import Forbidden, NotFound, Unauthenticated
from trustgate_core.models import Consumer, Gateway
from trustgate_core.replica import ReplicaState
from trustgate_mcp.services.plans import McpPlan, Plans
from trustgate_mcp.services.ports import Caller, GrantVerifier


@dataclass(slots=True)
class Credentials:
    """What the HTTP layer read of a request's headers for ``Access``."""

    gateway_slug: str | None = None
    host: str | None = None
    api_key: str | None = None  # X-AG-API-Key
    x_api_key: str | None = None
    authorization: str | None = None


class Access:
    def __init__(
        self,
        state: ReplicaState,
        plans: Plans,
        tokens: TokenVerifier,
        grants: GrantVerifier,
        *,
        discovery_mode: DiscoveryMode = "header",
        base_domain: str = "mcp.neuraltrust.ai",
    ) -> None:
        self.state = state
        self.plans = plans
        self.tokens = tokens
        self.grants = grants
        self.discovery_mode: DiscoveryMode = discovery_mode
        self.base_domain = base_domain.lower()

    def consumer(self, slug: str, request: Credentials) -> tuple[Gateway, Consumer]:
        """The MCP consumer ``slug`` names and its gateway; ``NotFound`` otherwise."""
        consumer = self.state.consumer_by_any_slug(slug)
        if consumer is None or consumer.type != "MCP":
            raise NotFound("no MCP endpoint here")
        gateway = self.state.gateways.get(consumer.gateway_id)
        if gateway is None:
            raise NotFound("no MCP endpoint here")
        if self._names_another_gateway(request, gateway):
            raise NotFound("no MCP endpoint here")
        return gateway, consumer

    def _names_another_gateway(self, request: Credentials, gateway: Gateway) -> bool:
        """The header or the Host names a gateway, and not this one (or none that exists)."""
        if self.discovery_mode == "header" and request.gateway_slug is not None:
            named = self.state.gateway_by_slug(request.gateway_slug)
            return named is None or named.id != gateway.id
        host = (request.host or "").lower().rsplit(":", 1)[0]
        if host.endswith("." + self.base_domain):
            named = self.state.gateway_by_host(host, self.base_domain)
            return named is None or named.id != gateway.id
        return False

    async def caller(
        self, gateway: Gateway, consumer: Consumer, request: Credentials, mcp_url: str
    ) -> tuple[Caller, McpPlan]:
        plan = self.plans.plan(consumer)
        key = api_key_from_headers(request.api_key, request.x_api_key, request.authorization)
        if key is not None:
            auth = authenticate(self.state, gateway, consumer, plan.auth_ids, key)
            caller = Caller(gateway, consumer, auth_id=auth.id)
        else:
            token = bearer_token(request.authorization)
            if token is None:
                raise Unauthenticated("missing_key")
            caller = await self._token_caller(gateway, consumer, plan, token, mcp_url)
        if not consumer.active:
            raise Forbidden("consumer is inactive")
        ensure_active(gateway)
        return caller, plan

    async def _token_caller(
        self, gateway: Gateway, consumer: Consumer, plan: McpPlan, token: str, mcp_url: str
    ) -> Caller:
        grant = self.grants.verify(token, mcp_url)
        if grant is not None:
            if grant.consumer_id != consumer.id or grant.gateway_id != gateway.id:
                raise Unauthenticated("foreign_grant")
            return Caller(
                gateway, consumer, auth_id=grant.auth_id, subject=grant.subject, token=token
            )
        verified = await self.tokens.verify(token, plan.token_auths)
        return Caller(
            gateway, consumer, auth_id=verified.auth.id, subject=verified.subject, token=token
        )
