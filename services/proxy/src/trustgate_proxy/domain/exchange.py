"""One request as it moves through the pipeline: the ``Call`` being recorded, and what
policies and the router read or set along the way. Pure data: no I/O.

Policies see the ``Exchange`` at each stage (``pre_request`` … ``post_response``) through
core's ``PolicyExchange``, whose call-dependent properties it answers from the ``Call``;
the router sees it when it orders the attempts. There is no second request object: the
body, its parsed document and what policies set all hang off this one (the route, the
stream flag and the rest of the request's record are the ``Call``'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trustgate_core.models import Consumer, Gateway
from trustgate_core.policy import Answer, Header, PolicyExchange
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.formats import ChatRequest

__all__ = ["Answer", "Exchange"]


class Exchange(PolicyExchange):
    __slots__ = ("call", "client_host", "default_model", "request")

    def __init__(
        self,
        call: Call,
        gateway: Gateway,
        consumer: Consumer,
        request_headers: Sequence[Header] = (),
    ) -> None:
        super().__init__(gateway, consumer, request_headers)
        self.call = call
        self.client_host: str | None = None  # the peer address (ip-hash reads it)
        # the model the first route sends when the request names none (set for policies)
        self.default_model: str | None = None
        # the body decoded into the internal model, once, when an attempt translates it
        self.request: ChatRequest | None = None

    @property
    def path(self) -> str:
        return self.call.path

    @property
    def requested_model(self) -> str | None:
        model = self.doc.get("model")
        return model if isinstance(model, str) else self.default_model

    @property
    def provider(self) -> str | None:
        return self.call.provider

    @property
    def stream(self) -> bool:
        return self.call.stream

    @property
    def status(self) -> int:
        return self.call.status

    @property
    def model(self) -> str | None:
        return self.call.model

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.call.usage

    def set_cost(self, cost: Any) -> None:
        self.call.cost = cost
