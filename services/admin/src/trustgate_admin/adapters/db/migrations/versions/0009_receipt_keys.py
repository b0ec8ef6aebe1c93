"""receipt keys: each gateway's Ed25519 public keys, by version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by the governance work (issue 17)


def downgrade() -> None:
    pass
