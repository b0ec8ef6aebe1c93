"""Errors rendered in one place: `{"error": "<code>", "message": "..."}`.

Every failure the API knows is answered by a handler Starlette runs inside the app, so
the client's keep-alive connection survives it; only a bug reaches the last-resort 500.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from trustgate_admin.adapters.db.errors import is_unavailable
from trustgate_core.errors import TrustGateError, Unavailable

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying a 503 (the database or bus is away).
RETRY_AFTER = "2"


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str
    message: str | None = None


_DESCRIPTIONS = {
    400: "Bad request: an identifier in the path is not a UUID, or a malformed header",
    401: "Missing, malformed or expired admin token",
    403: "The token is read-only (scope admin:read) and the operation writes",
    404: "No such resource",
    409: "Conflicts with existing data, or the same Idempotency-Key is in flight",
    422: "The body, query or a field in it is invalid (the message names it)",
    502: "The upstream (an MCP server) could not be reached or answered an error",
    503: "The configuration database is unreachable; retry after Retry-After seconds",
    504: "The upstream did not answer within the timeout",
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation can answer."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def error_response(
    status: int, code: str, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": code}
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
    where = ".".join(loc)
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    if err.get("type") == "json_invalid":
        return "malformed JSON body"
    return f"{where}: {msg}" if where else msg


def _domain_response(exc: TrustGateError) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER} if exc.status == 503 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TrustGateError)
    async def _domain(_: Request, exc: TrustGateError) -> JSONResponse:
        return _domain_response(exc)

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(OSError)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            log.warning("database unavailable: %s", exc.__class__.__name__)
            return _domain_response(Unavailable("the configuration database is unavailable"))
        log.error("database error: %s", exc.__class__.__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if errors and all(e.get("loc", ("",))[0] == "path" for e in errors):
            return error_response(400, "invalid_uuid", "invalid identifier in path")
        if errors and all(e.get("loc", ("",))[0] == "query" for e in errors):
            return error_response(422, "invalid_query", "; ".join(_describe(e) for e in errors))
        return error_response(
            422, "validation_failed", "; ".join(_describe(e) for e in errors[:10])
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "not_found")
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", "method not allowed")
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", exc.__class__.__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error")


#: The error answers of every route under /v1/gateways.
GATEWAY_ERRORS = answers(400, 401, 403, 404, 409, 422, 503)
