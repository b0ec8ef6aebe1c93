"""Apply migrations at boot, once, under a Postgres advisory lock.

Several admin instances may boot at once against a new database: each takes the lock in
turn; the first migrates, the others find the schema at head and do nothing.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATION_LOCK_KEY = 0x7472757374676174  # "trustgat"


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    location = resources.files("trustgate_admin.adapters.db") / "migrations"
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        await conn.commit()
        try:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await conn.commit()
