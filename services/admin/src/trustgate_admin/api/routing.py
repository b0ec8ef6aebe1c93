"""The admin's route class: every request's query, path and JSON body are checked before
the handler runs (``domain.input``), and a POST sent with an ``Idempotency-Key`` is
answered through ``services.idempotency``."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from trustgate_admin.bootstrap import Container
from trustgate_admin.domain import idempotency as keys
from trustgate_admin.domain.input import MAX_DEPTH, json_problem, text_problem
from trustgate_admin.services import idempotency
from trustgate_core.errors import ValidationFailed

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes the POST safe to retry: the first answer is kept 24 hours and returned to"
        " a retry with the same key and body (another body: 422; while the first is in"
        " flight: 409)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": keys.MAX_KEY_LENGTH},
}


class AdminRoute(APIRoute):
    """A route whose input is checked first; a POST also documents and honours the key."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.methods and "POST" in self.methods:
            extra = dict(self.openapi_extra or {})
            extra["parameters"] = [*extra.get("parameters", []), IDEMPOTENCY_PARAMETER]
            self.openapi_extra = extra

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            parsed = await _checked_input(request)
            raw_key = request.headers.get(IDEMPOTENCY_HEADER)
            if request.method == "POST" and raw_key is not None:
                return await _idempotent(request, handler, keys.checked_key(raw_key), parsed)
            return await handler(request)

        return checked


async def _checked_input(request: Request) -> Any:
    """Refuse NUL characters, lone surrogates, integers beyond 64 bits and JSON nested
    too deep anywhere in the request (422 naming where); return the parsed JSON body (the
    handler reuses Starlette's cached parse) or None."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            problem = text_problem(str(value))
            if problem is not None:
                raise ValidationFailed(f"{where}.{name}: {problem}")
    if not await request.body():
        return None
    try:
        parsed = await request.json()
    except RecursionError as exc:
        raise ValidationFailed(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError:  # malformed: FastAPI answers it with its own message
        return None
    problem = json_problem(parsed)
    if problem is not None:
        raise ValidationFailed(problem)
    return parsed


async def _idempotent(request: Request, handler: Handler, key: str, parsed: Any) -> Response:
    container: Container = request.app.state.container
    identity = await container.authenticator.authenticate(request.headers.get("authorization"))
    once = keys.IdempotentRequest(
        principal=json.dumps([identity.tenant_id, identity.subject]),
        method=request.method,
        path=request.url.path,
        key=key,
        fingerprint=keys.fingerprint(await request.body(), parsed),
    )

    async def handle(transaction: Any) -> idempotency.Answer:
        request.state.transaction = transaction  # the unit of work joins it (deps.get_uow)
        response = await handler(request)
        return idempotency.Answer(response.status_code, bytes(response.body))

    answer = await idempotency.run(container.engine, container.box, once, handle)
    if answer.status == 204:
        return Response(status_code=204)
    return Response(answer.body, status_code=answer.status, media_type="application/json")
