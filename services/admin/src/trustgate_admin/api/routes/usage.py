"""``GET /v1/gateways/{gw}/usage``: spend and tokens from the usage ledger, as JSON or CSV (stub: issue 17 fills it in)."""

from __future__ import annotations

from fastapi import APIRouter

from trustgate_admin.api.errors import answers
from trustgate_admin.api.routing import AdminRoute

router = APIRouter(tags=["usage"], route_class=AdminRoute, responses=answers(401, 422))
