"""Request-scoped dependencies: the container, the admin identity, the unit of work.

``require_admin`` guards every ``/v1`` route: a valid token (api.security), the write
scope for anything but GET/HEAD/OPTIONS (403 ``forbidden``), and for a tenant's token a
gateway in the path that belongs to its tenant (another tenant's is a 404, as if absent)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from trustgate_admin.bootstrap import Container
from trustgate_admin.domain.identity import AdminIdentity
from trustgate_admin.services.common import gateway_tenant
from trustgate_admin.services.uow import UnitOfWork
from trustgate_core.errors import Forbidden, NotFound

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def require_admin(
    request: Request,
    container: ContainerDep,
    authorization: Annotated[str | None, Header()] = None,
) -> AdminIdentity:
    identity = await container.authenticator.authenticate(authorization)
    if not identity.can_write and request.method not in READ_METHODS:
        raise Forbidden("the token is read-only")
    if identity.tenant_id is not None:
        await _ensure_tenant_gateway(container, identity.tenant_id, request)
    return identity


async def _ensure_tenant_gateway(container: Container, tenant: str, request: Request) -> None:
    raw = request.path_params.get("gateway_id")
    if raw is None:
        return
    try:
        gateway_id = UUID(str(raw))
    except ValueError:
        return  # the route answers 400 invalid_uuid
    async with container.uow() as uow:  # a database outage is a 503, as everywhere
        if await gateway_tenant(uow.session, gateway_id) != tenant:
            raise NotFound()


AdminDep = Annotated[AdminIdentity, Depends(require_admin)]


def get_uow(request: Request, container: ContainerDep, identity: AdminDep) -> UnitOfWork:
    """The request's unit of work, recording its changes in the audit log as ``identity``'s
    (inside an idempotent POST, it joins the transaction its answer is stored in: see
    api.routing)."""
    uow = container.uow(getattr(request.state, "transaction", None))
    uow.actor = identity
    return uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]
