"""usage ledger: hourly rollups and the events already counted

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the governance work (issue 17)


def downgrade() -> None:
    pass
