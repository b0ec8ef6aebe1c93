"""Which database failures mean "the database is unreachable" (answer 503, retry later)
rather than a bug: dropped or refused connections, an exhausted pool, a server starting."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_UNREACHABLE = (
    OSError,  # refused, reset, unreachable, and asyncio's TimeoutError
    asyncpg.exceptions.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError and kin
    asyncpg.exceptions.InsufficientResourcesError,  # TooManyConnectionsError
    asyncpg.exceptions.OperatorInterventionError,  # CannotConnectNowError, AdminShutdownError
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,  # database not accepting connections
    OperationalError,
    InterfaceError,
    PoolTimeout,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` or what caused it (SQLAlchemy keeps asyncpg's error as the cause
    of its DBAPI error) says the database cannot be reached."""
    for cause in _chain(exc):
        if isinstance(cause, _UNREACHABLE):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
