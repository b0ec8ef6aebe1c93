"""Receipt keys: a gateway's Ed25519 public keys (``router``, behind admin auth, and
``public_router``, the JWKS anyone may fetch to verify receipts) (stub: issue 17 fills it in)."""

from __future__ import annotations

from fastapi import APIRouter

from trustgate_admin.api.errors import answers
from trustgate_admin.api.routing import AdminRoute

router = APIRouter(tags=["receipts"], route_class=AdminRoute, responses=answers(401, 422))
public_router = APIRouter(tags=["receipts"])
