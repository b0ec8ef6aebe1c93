"""``/v1/gateways/{gw}/alerts``: budget alert rules, their delivery log and a test message;
``/v1/gateways/{gw}/alert-deliveries``: the gateway's whole delivery log
(docs/governance-alerts.md). A tenant's token sees its own gateways only (another tenant's
is a 404). Channels' URLs and secrets are masked in every answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from trustgate_admin.api.answers import Page, Resource, returns
from trustgate_admin.api.deps import ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.governance import alert_rules
from trustgate_admin.governance.alert_schemas import AlertRule, AlertRuleIn

router = APIRouter(tags=["alerts"], route_class=AdminRoute, responses=GATEWAY_ERRORS)
RULES = "/v1/gateways/{gateway_id}/alerts"
LISTING = Listing(
    sortable=("name", "created_at", "updated_at", "kind"),
    filters=("kind", "enabled", "consumer_id"),
)
DELIVERIES = Listing(sortable=("created_at", "updated_at", "status"), filters=("status",))
GATEWAY_DELIVERIES = Listing(
    sortable=("created_at", "updated_at", "status"), filters=("status", "alert_id")
)


class TestSent(BaseModel):
    """A test message's outcome: the receiver's 2xx status, or the failure in general words."""

    ok: bool
    status_code: int | None
    error: str | None


@router.post(RULES, **returns(Resource, 201))
async def create_alert(
    gateway_id: UUID, body: AlertRule, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    allow_private = c.settings.alert_webhook_allow_private
    return await alert_rules.create(uow, gateway_id, body, allow_private=allow_private)


@router.get(RULES, openapi_extra=LISTING.openapi(), **returns(Page))
async def list_alerts(gateway_id: UUID, request: Request, uow: UowDep) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await alert_rules.list_(uow, gateway_id, q)
    return envelope(items, q, total)


@router.get(RULES + "/{alert_id}", **returns(Resource))
async def get_alert(gateway_id: UUID, alert_id: UUID, uow: UowDep) -> dict[str, Any]:
    return await alert_rules.get(uow, gateway_id, alert_id)


@router.put(RULES + "/{alert_id}", **returns(Resource))
async def update_alert(
    gateway_id: UUID, alert_id: UUID, body: AlertRuleIn, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    """Changes any field; a channel sent back masked (as answered) keeps its URL and secret."""
    allow_private = c.settings.alert_webhook_allow_private
    return await alert_rules.update(uow, gateway_id, alert_id, body, allow_private=allow_private)


@router.delete(RULES + "/{alert_id}", status_code=204)
async def delete_alert(gateway_id: UUID, alert_id: UUID, uow: UowDep) -> Response:
    await alert_rules.delete(uow, gateway_id, alert_id)
    return Response(status_code=204)


@router.get(RULES + "/{alert_id}/deliveries", openapi_extra=DELIVERIES.openapi(), **returns(Page))
async def list_alert_deliveries(
    gateway_id: UUID, alert_id: UUID, request: Request, uow: UowDep
) -> dict[str, Any]:
    """The rule's deliveries: each firing (threshold, window, observed and limit), its
    status (pending, delivered, failed), attempts and last answer or error."""
    q = DELIVERIES.parse(request.query_params)
    items, total = await alert_rules.deliveries(uow, gateway_id, q, alert_id)
    return envelope(items, q, total)


@router.get(
    "/v1/gateways/{gateway_id}/alert-deliveries",
    openapi_extra=GATEWAY_DELIVERIES.openapi(),
    **returns(Page),
)
async def list_gateway_alert_deliveries(
    gateway_id: UUID, request: Request, uow: UowDep
) -> dict[str, Any]:
    """Every rule's deliveries in the gateway."""
    q = GATEWAY_DELIVERIES.parse(request.query_params)
    items, total = await alert_rules.deliveries(uow, gateway_id, q)
    return envelope(items, q, total)


@router.post(RULES + "/{alert_id}/test", **returns(TestSent))
async def test_alert(
    gateway_id: UUID, alert_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    """Send a test message (``test: true``, made-up figures) to the rule's channel now:
    answered 200 with ``ok: false`` and the receiver's status or the failure's kind when it
    was not accepted (in general words: the test is not a way to probe the network)."""
    s = c.settings
    return await alert_rules.send_test(
        uow,
        gateway_id,
        alert_id,
        s.alert_delivery_timeout,
        allow_private=s.alert_webhook_allow_private,
    )
