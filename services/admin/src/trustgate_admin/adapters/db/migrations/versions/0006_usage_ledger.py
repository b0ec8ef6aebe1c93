"""usage ledger: hourly rollups, the events already counted, consumers' metadata

``consumers.metadata`` (JSONB, e.g. ``{"department": ..., "cost_center": ...}``) is what a
chargeback export puts in its columns (docs/governance-usage.md); it is added only when
missing, so a schema that already has it is left as it is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumer_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            for name in (
                "requests",
                "errors",
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "cache_hits",
                "fallbacks",
            )
        ),
        sa.Column("cost_usd", sa.Numeric(24, 12), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("gateway_id", "hour", "consumer_id", "model", "provider"),
    )
    op.create_index("usage_hourly_gateway_hour", "usage_hourly", ["gateway_id", "hour"])
    op.create_table(
        "usage_events_seen",
        sa.Column("trace_id", sa.String(), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("usage_events_seen_at", "usage_events_seen", ["seen_at"])
    op.execute("ALTER TABLE consumers ADD COLUMN IF NOT EXISTS metadata JSONB")


def downgrade() -> None:
    op.drop_index("usage_events_seen_at", table_name="usage_events_seen")
    op.drop_table("usage_events_seen")
    op.drop_index("usage_hourly_gateway_hour", table_name="usage_hourly")
    op.drop_table("usage_hourly")
    op.execute("ALTER TABLE consumers DROP COLUMN IF EXISTS metadata")
