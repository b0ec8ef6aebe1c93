"""``GET /v1/audit``: the hash-chained audit log, paged like every list; a tenant's token
sees its tenant's entries only. ``kind=request`` lists the request entries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from trustgate_admin.api.answers import AuditPage, returns
from trustgate_admin.api.deps import AdminDep, UowDep
from trustgate_admin.api.errors import answers
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.services import audit

router = APIRouter(
    prefix="/v1/audit", tags=["audit"], route_class=AdminRoute, responses=answers(401, 422)
)
LISTING = Listing(sortable=("seq", "occurred_at"), filters=audit.FILTERS)


@router.get("", openapi_extra=LISTING.openapi(), **returns(AuditPage))
async def list_audit(request: Request, uow: UowDep, who: AdminDep) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await audit.list_(uow, q, who.tenant_id)
    return envelope(items, q, total)
