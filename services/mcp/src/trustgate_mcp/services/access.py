"""Who calls ``/{slug}/mcp``: the gateway, the consumer and the credential (reference §9:
path-first scoping).

The consumer is found by its slug alone (slugs are globally unique); a gateway named by
``X-AG-Gateway-Slug`` or by the Host ``{gateway}.{MCP_BASE_DOMAIN}`` must be the
consumer's. An unknown slug, or a consumer that is not of type MCP, is a 404 (the path
names no MCP endpoint). Credentials, in order: an API key (``X-AG-API-Key``,
``x-api-key``, ``Authorization: Bearer ag_…``); else a bearer token — first one the plane
issued for exactly this MCP URL, else one of the consumer's oauth2/oidc auths accepts;
else the client certificate the request presents (its TLS handshake's, or
``X-Forwarded-Client-Cert`` from a trusted peer: the HTTP layer decides), which one of the
consumer's enabled mtls auths must accept — its subject (common name, else first DNS
name) is the caller's, so a session opened with it is bound to that auth and subject. A
bearer token beside a certificate, on a consumer that takes no tokens, is an SDK's
placeholder (openai's ``api_key``): the certificate decides, as on the proxy.
None, or one that is not valid: 401 (the HTTP layer adds the OAuth challenge); a valid key
of another consumer: 403.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trustgate_core.access import (
    DiscoveryMode,
    TokenVerifier,
    api_key_from_headers,
    authenticate,
    bearer_token,
    ensure_active,
)
from trustgate_core.access.mtls import Presented, verify_client_certificate
from trustgate_core.errors import Forbidden, NotFound, Unauthenticated
from trustgate_core.models import Auth, Consumer, Gateway
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
    certificate: Presented | None = None  # `asgi.certificates.presented`


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
            caller = Caller(gateway, consumer, auth_id=auth.id, resource=mcp_url)
        else:
            token = bearer_token(request.authorization)
            if token is None:
                caller = self._certificate_caller(gateway, consumer, request.certificate)
                caller = replace(caller, resource=mcp_url)
            else:
                caller = await self._token_caller(
                    gateway, consumer, plan, token, mcp_url, request.certificate
                )
        if not consumer.active:
            raise Forbidden("consumer is inactive")
        ensure_active(gateway)
        return caller, plan

    async def _token_caller(
        self,
        gateway: Gateway,
        consumer: Consumer,
        plan: McpPlan,
        token: str,
        mcp_url: str,
        certificate: Presented | None,
    ) -> Caller:
        grant = self.grants.verify(token, mcp_url)
        if grant is not None:
            if grant.consumer_id != consumer.id or grant.gateway_id != gateway.id:
                raise Unauthenticated("foreign_grant")
            return Caller(
                gateway,
                consumer,
                auth_id=grant.auth_id,
                subject=grant.subject,
                token=token,
                resource=mcp_url,
            )
        if certificate is not None and not plan.token_auths and self._certificate_auths(consumer):
            return replace(
                self._certificate_caller(gateway, consumer, certificate), resource=mcp_url
            )
        verified = await self.tokens.verify(token, plan.token_auths)
        return Caller(
            gateway,
            consumer,
            auth_id=verified.auth.id,
            subject=verified.subject,
            token=token,
            resource=mcp_url,
        )

    def _certificate_caller(
        self, gateway: Gateway, consumer: Consumer, certificate: Presented | None
    ) -> Caller:
        """The caller a client certificate proves: the first of the consumer's mtls
        auths that accepts it (``verify_client_certificate``: chained to its CA, its
        names and fingerprints allowed) — 401 ``bad_certificate`` when none does."""
        auths = self._certificate_auths(consumer)
        if certificate is None or not auths:
            raise Unauthenticated("missing_key")
        leaf, intermediates = certificate
        for auth in auths:
            identity = verify_client_certificate(auth, leaf, intermediates)
            if identity is not None:
                return Caller(gateway, consumer, auth_id=auth.id, subject=identity.subject)
        raise Unauthenticated("bad_certificate")

    def _certificate_auths(self, consumer: Consumer) -> tuple[Auth, ...]:
        """The enabled mtls auths attached to the consumer (of its gateway). Looked up
        only when a certificate is the credential: a few dict lookups."""
        auths = self.state.auths
        attached = (auths.get(aid) for aid in consumer.auth_ids)
        return tuple(
            a
            for a in attached
            if a is not None
            and a.type == "mtls"
            and a.enabled
            and a.gateway_id == consumer.gateway_id
        )
