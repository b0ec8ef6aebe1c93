"""Request-scoped dependencies: the container, the unit of work, the admin identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from trustgate_admin.api.security import AdminIdentity, authenticate
from trustgate_admin.bootstrap import Container
from trustgate_admin.services.uow import UnitOfWork


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_uow(request: Request, container: ContainerDep) -> UnitOfWork:
    """The request's unit of work (inside an idempotent POST, it joins the transaction its
    answer is stored in: see api.routing)."""
    return container.uow(getattr(request.state, "transaction", None))


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


def require_admin(
    container: ContainerDep,
    authorization: Annotated[str | None, Header()] = None,
) -> AdminIdentity:
    return authenticate(
        authorization,
        container.settings.server_secret_key,
        platform_claim_required=container.settings.platform_claim_required,
    )
