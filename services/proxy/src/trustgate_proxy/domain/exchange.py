"""One request as it moves through the pipeline: the ``Call`` being recorded, and what
policies and the router read or set along the way. Pure data: no I/O.

Policies see the ``Exchange`` at each stage (``pre_request`` … ``post_response``); the
router sees it when it orders the attempts. There is no second request object: the body,
its parsed document and what policies set all hang off this one (the route, the stream
flag and the rest of the request's record are the ``Call``'s).
"""

from __future__ import annotations

from typing import Any

from trustgate_core.models import Consumer, Gateway
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.formats import ChatRequest


class Answer:
    """A response a policy gives instead of the upstream's (a cache hit, a refusal with
    its own body)."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


class Exchange:
    __slots__ = (
        "answer",
        "body",
        "call",
        "consumer",
        "doc",
        "gateway",
        "request",
    )

    def __init__(self, call: Call, gateway: Gateway, consumer: Consumer) -> None:
        self.call = call
        self.gateway = gateway
        self.consumer = consumer
        self.body = b""  # the request body as sent by the client
        self.doc: dict[str, Any] = {}  # its JSON object
        self.answer: Answer | None = None  # set by a pre_request policy: skip the upstream
        # the body decoded into the internal model, once, when an attempt translates it
        self.request: ChatRequest | None = None
