"""The async engine and session factory over asyncpg."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession


def asyncpg_url(dsn: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def create_engine(dsn: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=connect_timeout,
        connect_args={"timeout": connect_timeout},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def joined_session_factory(conn: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions inside ``conn``'s open transaction: their commit releases a savepoint, and
    what they wrote is committed (or rolled back) with the outer transaction."""
    return async_sessionmaker(
        bind=conn,
        class_=AsyncSession,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
