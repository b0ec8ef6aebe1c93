"""budget alerts: rules, firings and the webhook delivery log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(name: str, target: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name, sa.Uuid(), sa.ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=nullable
    )


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("gateway_id", "gateways"),
        _fk("consumer_id", "consumers", nullable=True),
        _fk("policy_id", "policies", nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("settings", postgresql.JSONB(), nullable=False),
        sa.Column("thresholds", postgresql.JSONB(), nullable=False),
        sa.Column("channel", postgresql.JSONB(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("gateway_id", "name"),
    )
    op.create_table(
        "alert_firings",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("rule_id", "alert_rules"),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        _ts("window_start"),
        _ts("window_end"),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("observed", sa.Numeric(24, 12), nullable=False),
        sa.Column("limit", sa.Numeric(24, 12), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("passed", postgresql.JSONB(), nullable=False),
        _ts("fired_at"),
        sa.UniqueConstraint("rule_id", "window_start", "threshold"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("firing_id", "alert_firings"),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("delivered_at", nullable=True),
    )
    op.create_index("alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])
    op.create_index("alert_deliveries_rule", "alert_deliveries", ["rule_id", "created_at"])
    op.create_index("alert_deliveries_gateway", "alert_deliveries", ["gateway_id", "created_at"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_firings")
    op.drop_table("alert_rules")
