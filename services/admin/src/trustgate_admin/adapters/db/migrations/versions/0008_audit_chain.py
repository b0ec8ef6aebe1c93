"""audit chain: every audit entry hash-chained to the one before

Adds ``seq``, ``prev_hash``, ``hash`` and ``details`` (a request entry's metadata) to
``audit_log``, lets ``entity_id`` and ``revision`` be null (a request entry has no
revision, and no consumer when it was refused before one was known), chains the rows
that exist in the order they were written (``occurred_at``, then ``id``: uuid7, so time
ordered too), then makes the chain's columns required and ``seq`` unique. The hash is
``trustgate_admin.governance.chain_hash`` (docs/governance-audit.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from trustgate_admin.governance.chain_hash import GENESIS, entry_hash

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("details", postgresql.JSONB(), nullable=True))
    op.alter_column("audit_log", "entity_id", existing_type=sa.Uuid(), nullable=True)
    op.alter_column("audit_log", "revision", existing_type=sa.BigInteger(), nullable=True)
    _chain_existing_rows()
    op.alter_column("audit_log", "seq", existing_type=sa.BigInteger(), nullable=False)
    op.alter_column("audit_log", "prev_hash", existing_type=sa.String(64), nullable=False)
    op.alter_column("audit_log", "hash", existing_type=sa.String(64), nullable=False)
    op.create_index("audit_log_seq", "audit_log", ["seq"], unique=True)


def _chain_existing_rows() -> None:
    """Number and hash the rows written before the chain, a batch at a time (keyset
    paging: a large log is never held in memory at once)."""
    conn = op.get_bind()
    seq, prev = 0, GENESIS
    after: tuple[Any, Any] | None = None
    columns = "id, occurred_at, actor, tenant_id, gateway_id, kind, entity_id, operation, revision"
    while True:
        where = (
            ""
            if after is None
            else "WHERE (occurred_at, id) > (CAST(:at AS timestamptz), CAST(:id AS uuid))"
        )
        params = {} if after is None else {"at": after[0], "id": after[1]}
        rows = conn.execute(
            sa.text(
                f"SELECT {columns} FROM audit_log {where} ORDER BY occurred_at, id LIMIT {BATCH}"
            ),
            params,
        ).all()
        if not rows:
            return
        updates = []
        for row in rows:
            seq += 1
            entry = {**row._asdict(), "seq": seq, "prev_hash": prev, "details": None}
            entry["hash"] = entry_hash(prev, entry)
            updates.append({"id": row.id, "seq": seq, "prev_hash": prev, "hash": entry["hash"]})
            prev = entry["hash"]
        conn.execute(
            sa.text(
                "UPDATE audit_log SET seq = :seq, prev_hash = :prev_hash, hash = :hash "
                "WHERE id = :id"
            ),
            updates,
        )
        after = (rows[-1].occurred_at, rows[-1].id)


def downgrade() -> None:
    op.drop_index("audit_log_seq", table_name="audit_log")
    op.execute("DELETE FROM audit_log WHERE entity_id IS NULL OR revision IS NULL")
    op.alter_column("audit_log", "revision", existing_type=sa.BigInteger(), nullable=False)
    op.alter_column("audit_log", "entity_id", existing_type=sa.Uuid(), nullable=False)
    for column in ("details", "hash", "prev_hash", "seq"):
        op.drop_column("audit_log", column)
