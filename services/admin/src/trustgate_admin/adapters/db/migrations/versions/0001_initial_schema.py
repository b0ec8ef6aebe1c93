"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Revisions of config events: one sequence, so every entity's revisions only grow.
    op.execute("CREATE SEQUENCE config_revision_seq")
    op.create_table('gateways',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('telemetry', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('client_tls', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('session_config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('entitlements', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('domain'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('msg_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('outbox_unsent', 'outbox', ['id'], unique=False, postgresql_where='sent_at IS NULL')
    op.create_table('auths',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('key_prefix', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('key_suffix', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('consumers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('routing_mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('model_policies', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('lb_config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('fallback', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('toolkit', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('fail_mode', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gateway_id', 'name'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('policies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('parallel', sa.Boolean(), nullable=False),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('stages', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('global', sa.Boolean(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gateway_id', 'name')
    )
    op.create_table('registries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('provider_options', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('auth', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('health_checks', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('mcp_target', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gateway_id', 'name')
    )
    op.create_table('roles',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('model_policies', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('mcp_policies', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('oidc_mapping', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gateway_id', 'name')
    )
    op.create_table('consumer_auths',
    sa.Column('consumer_id', sa.Uuid(), nullable=False),
    sa.Column('auth_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['auth_id'], ['auths.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['consumer_id'], ['consumers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer_id', 'auth_id')
    )
    op.create_table('consumer_policies',
    sa.Column('consumer_id', sa.Uuid(), nullable=False),
    sa.Column('policy_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['consumer_id'], ['consumers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_id'], ['policies.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer_id', 'policy_id')
    )
    op.create_table('consumer_registries',
    sa.Column('consumer_id', sa.Uuid(), nullable=False),
    sa.Column('registry_id', sa.Uuid(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consumer_id'], ['consumers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer_id', 'registry_id')
    )
    op.create_table('consumer_roles',
    sa.Column('consumer_id', sa.Uuid(), nullable=False),
    sa.Column('role_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['consumer_id'], ['consumers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('consumer_id', 'role_id')
    )
    op.create_table('role_registries',
    sa.Column('role_id', sa.Uuid(), nullable=False),
    sa.Column('registry_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_id', 'registry_id')
    )

    op.create_index('ix_registries_gateway_id', 'registries', ['gateway_id'])
    op.create_index('ix_consumers_gateway_id', 'consumers', ['gateway_id'])
    op.create_index('ix_auths_gateway_id', 'auths', ['gateway_id'])
    op.create_index('ix_policies_gateway_id', 'policies', ['gateway_id'])
    op.create_index('ix_roles_gateway_id', 'roles', ['gateway_id'])


def downgrade() -> None:
    op.drop_table('role_registries')
    op.drop_table('consumer_roles')
    op.drop_table('consumer_registries')
    op.drop_table('consumer_policies')
    op.drop_table('consumer_auths')
    op.drop_table('roles')
    op.drop_table('registries')
    op.drop_table('policies')
    op.drop_table('consumers')
    op.drop_table('auths')
    op.drop_index('outbox_unsent', table_name='outbox', postgresql_where='sent_at IS NULL')
    op.drop_table('outbox')
    op.drop_table('gateways')
    op.execute("DROP SEQUENCE config_revision_seq")
