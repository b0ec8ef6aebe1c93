"""budget alerts: rules, firings and the webhook delivery log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the governance work (issue 17)


def downgrade() -> None:
    pass
