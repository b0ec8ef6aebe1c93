"""Idempotent admin POSTs: the first answer to a key is stored in the same transaction as
the change it made, so a client whose answer was lost (a dropped connection, an admin
killed after the commit) retries safely and gets that answer again.

``run`` opens the transaction the request's unit of work joins; a transaction-scoped
advisory lock on the key turns a duplicate sent while the first is in flight into a 409
rather than a second create.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from trustgate_admin.adapters.db.tables import IdempotencyRow
from trustgate_admin.domain.idempotency import (
    KEEP_FOR,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotentRequest,
)
from trustgate_admin.services.uow import now
from trustgate_core.crypto import SecretBox

T = IdempotencyRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


async def run(
    engine: AsyncEngine,
    box: SecretBox,
    request: IdempotentRequest,
    handle: Callable[[AsyncConnection], Awaitable[Answer]],
) -> Answer:
    """The stored answer to ``request``'s key, or ``handle``'s answer stored with what
    ``handle`` changed (only successes are stored: a refused request may be retried)."""
    async with engine.connect() as conn, conn.begin():
        await _lock(conn, request)
        stored = await _stored(conn, request)
        if stored is not None:
            if stored.fingerprint != request.fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with another request body"
                )
            return Answer(stored.status, box.open(stored.body).encode())
        answer = await handle(conn)
        if answer.status < 400:
            await _store(conn, box, request, answer)
        return answer


async def _lock(conn: AsyncConnection, request: IdempotentRequest) -> None:
    taken = await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:name, 0))"),
        {"name": request.lock_name},
    )
    if not taken:
        raise IdempotencyKeyInUse("a request with this Idempotency-Key is still in progress")


def _same_key(request: IdempotentRequest) -> list[ColumnElement[bool]]:
    return [
        T.c.principal == request.principal,
        T.c.method == request.method,
        T.c.path == request.path,
        T.c.key == request.key,
    ]


async def _stored(conn: AsyncConnection, request: IdempotentRequest) -> IdempotencyRow | None:
    fresh = T.c.created_at > func.now() - KEEP_FOR
    row = (await conn.execute(select(T).where(*_same_key(request), fresh))).first()
    return IdempotencyRow.model_validate(row._mapping) if row is not None else None


async def _store(
    conn: AsyncConnection, box: SecretBox, request: IdempotentRequest, answer: Answer
) -> None:
    await conn.execute(delete(T).where(T.c.created_at <= func.now() - KEEP_FOR))
    values = {
        "principal": request.principal,
        "method": request.method,
        "path": request.path,
        "key": request.key,
        "fingerprint": request.fingerprint,
        "status": answer.status,
        "body": box.seal(answer.body.decode()),
        "created_at": now(),
    }
    await conn.execute(insert(T).values(**values))
