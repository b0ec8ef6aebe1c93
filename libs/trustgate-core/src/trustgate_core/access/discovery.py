"""Which gateway a request is for: the `X-AG-Gateway-Slug` header, or the Host."""

from __future__ import annotations

from typing import Literal

from trustgate_core.errors import Forbidden, Unauthenticated
from trustgate_core.models import Gateway
from trustgate_core.replica import ReplicaState

DiscoveryMode = Literal["header", "subdomain"]


def discover_gateway(
    state: ReplicaState,
    mode: DiscoveryMode,
    header_slug: str | None,
    host: str | None,
    base_domain: str,
) -> Gateway:
    """The header wins (in ``header`` mode): an unknown slug there is an error even when the
    Host would match. Otherwise the Host must be ``{slug}.{base_domain}`` (a port allowed).

    Unknown, deleted and unmatched → 401 ``unauthenticated``, the answer a bad key gets:
    a caller without a key must not learn which gateways exist (the reference's 400
    ``invalid_auth_request`` told them). A disabled gateway is returned: ``ensure_active``
    refuses it once the caller has authenticated.
    """
    gateway: Gateway | None
    if mode == "header" and header_slug is not None:
        gateway = state.gateway_by_slug(header_slug)
        if gateway is None:
            raise Unauthenticated("unknown_gateway")
    elif host:
        gateway = state.gateway_by_host(host, base_domain)
        if gateway is None:
            raise Unauthenticated("unknown_gateway_host")
    else:
        raise Unauthenticated("no_gateway_named")
    return gateway


def ensure_active(gateway: Gateway) -> None:
    """A disabled gateway stops serving: 403 ``forbidden``."""
    if not gateway.active:
        raise Forbidden("gateway is disabled")
