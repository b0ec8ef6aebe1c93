"""audit log: one row per admin change (who, what, when, the tenant)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=False),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('audit_log_tenant', 'audit_log', ['tenant_id', 'occurred_at'], unique=False)
    op.create_index('audit_log_occurred_at', 'audit_log', ['occurred_at'], unique=False)


def downgrade() -> None:
    op.drop_index('audit_log_occurred_at', table_name='audit_log')
    op.drop_index('audit_log_tenant', table_name='audit_log')
    op.drop_table('audit_log')
