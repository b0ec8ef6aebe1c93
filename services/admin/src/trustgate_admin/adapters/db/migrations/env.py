"""Alembic environment: runs on the connection handed over by ``migrate.py``."""

from __future__ import annotations

from alembic import context

from trustgate_admin.adapters.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only programmatic use is supported
    raise RuntimeError("run migrations through `trustgate admin migrate`")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
