"""Request-scoped dependencies: the container, the admin identity, path ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from trustgate_admin.api.security import AdminIdentity, authenticate
from trustgate_admin.bootstrap import Container


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def require_admin(
    container: ContainerDep,
    authorization: Annotated[str | None, Header()] = None,
) -> AdminIdentity:
    return authenticate(
        authorization,
        container.settings.server_secret_key,
        platform_claim_required=container.settings.platform_claim_required,
    )
