"""``/v1/gateways/{gw}/alerts``: budget alert rules and their delivery log (stub: issue 17 fills it in)."""

from __future__ import annotations

from fastapi import APIRouter

from trustgate_admin.api.errors import answers
from trustgate_admin.api.routing import AdminRoute

router = APIRouter(tags=["alerts"], route_class=AdminRoute, responses=answers(401, 422))
