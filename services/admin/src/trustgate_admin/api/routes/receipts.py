"""Receipt keys: a gateway's Ed25519 public keys (``router``, behind admin auth and
tenant-scoped, to list and rotate them; ``public_router``, the JWKS anyone may fetch to
verify receipts) (docs/governance-receipts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel

from trustgate_admin.adapters.db.receipt_tables import ReceiptKeyRow
from trustgate_admin.api.answers import returns
from trustgate_admin.api.deps import ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS, answers
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.governance import receipts
from trustgate_core.receipts.keys import jwk

router = APIRouter(tags=["receipts"], route_class=AdminRoute, responses=GATEWAY_ERRORS)
public_router = APIRouter(tags=["receipts"], responses=answers(404, 422, 503))

#: Public keys never change under a kid; a new key shows within this many seconds.
JWKS_MAX_AGE = 300


class Jwk(BaseModel):
    """An Ed25519 public key (RFC 8037); ``kid`` is its RFC 7638 thumbprint."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class Jwks(BaseModel):
    keys: list[Jwk]


class ReceiptKeyOut(Jwk):
    """A gateway's receipt key: the JWK, the key version it was derived for, when it was
    first recorded and when a newer key replaced it (``None``: the current one)."""

    gateway_id: UUID
    version: int
    created_at: datetime
    retired_at: datetime | None


class ReceiptKeyList(BaseModel):
    items: list[ReceiptKeyOut]
    total: int


def _render(row: ReceiptKeyRow) -> dict[str, Any]:
    return {
        **jwk(row.x),
        "gateway_id": row.gateway_id,
        "version": row.version,
        "created_at": row.created_at,
        "retired_at": row.retired_at,
    }


@router.get("/v1/gateways/{gateway_id}/receipt-keys", **returns(ReceiptKeyList))
async def list_receipt_keys(
    gateway_id: UUID, uow: UowDep, container: ContainerDep
) -> dict[str, Any]:
    """Every key the gateway's receipts were signed with, oldest first (retired ones too)."""
    rows = await receipts.list_keys(uow, gateway_id, container.settings.secrets_material)
    return {"items": [_render(r) for r in rows], "total": len(rows)}


@router.post("/v1/gateways/{gateway_id}/receipt-keys/rotate", **returns(ReceiptKeyOut, 201))
async def rotate_receipt_key(
    gateway_id: UUID, uow: UowDep, container: ContainerDep
) -> dict[str, Any]:
    """A new signing key for the gateway's receipts (409 when its receipts are off); the
    previous key is retired and stays listed."""
    row = await receipts.rotate(uow, gateway_id, container.settings.secrets_material)
    return _render(row)


@public_router.get("/.well-known/trustgate/receipts/{gateway_id}/jwks.json", **returns(Jwks))
async def receipt_jwks(
    gateway_id: UUID, response: Response, container: ContainerDep
) -> dict[str, Any]:
    """The gateway's receipt public keys, for anyone to verify receipts (no auth). 404
    for an unknown gateway or one that never had receipts."""
    jwks = await receipts.public_jwks(
        container.uow(), gateway_id, container.settings.secrets_material
    )
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return jwks
