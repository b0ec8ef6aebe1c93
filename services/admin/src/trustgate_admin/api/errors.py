"""Errors rendered in one place: `{"error": "<code>", "message": "..."}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from trustgate_core.errors import TrustGateError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code}
    if message is not None:
        body["message"] = message
    return JSONResponse(body, status_code=status)


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
    where = ".".join(loc)
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    if err.get("type") == "json_invalid":
        return "malformed JSON body"
    return f"{where}: {msg}" if where else msg


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TrustGateError)
    async def _domain(_: Request, exc: TrustGateError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

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
