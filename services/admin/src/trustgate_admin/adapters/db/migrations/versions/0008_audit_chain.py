"""audit chain: every audit entry hash-chained to the one before

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the governance work (issue 17)


def downgrade() -> None:
    pass
