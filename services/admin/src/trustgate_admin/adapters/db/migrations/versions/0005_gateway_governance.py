"""gateways.governance: receipts and per-request audit switches (docs/governance.md)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gateways", sa.Column("governance", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("gateways", "governance")
