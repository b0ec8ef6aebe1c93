"""The receipt keys table: every public key a gateway's receipts were ever signed with.

Only public keys: the private halves are derived from the secrets key where they are used
(``trustgate_core.receipts.keys``). Rows are never deleted (not even with the gateway), so
an old receipt stays verifiable; a rotation marks the previous key ``retired_at``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class ReceiptKeyRow(SQLModel, table=True):
    """One public key: ``kid`` (its RFC 7638 thumbprint), the gateway's key ``version``
    it was derived for, ``x`` (the raw Ed25519 key, base64url)."""

    __tablename__ = "receipt_keys"

    gateway_id: UUID = Field(primary_key=True)
    kid: str = Field(primary_key=True, max_length=64)
    version: int
    x: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    retired_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
