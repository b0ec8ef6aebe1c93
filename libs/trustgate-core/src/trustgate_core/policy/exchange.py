"""One call as policies see it: the same object at every stage, on any plane.

A plane subclasses ``PolicyExchange`` (the proxy's ``Exchange``) and answers the
properties that depend on its own record of the call (the route, the model sent, the
usage). Plugins read the request (headers, body, its JSON document), may rewrite the
document (``set_model``, or in place followed by ``dirty = True``), add response headers,
answer the call themselves (``answer``), and hand the relay filters for the response
(``response_filters``). Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from trustgate_core.models import Consumer, Gateway

Header = tuple[bytes, bytes]
Plane = str  # "LLM" | "MCP"


class Answer:
    """A response a policy gives instead of the upstream's (a preflight, a cache hit)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[Header] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


class ResponseFilter(Protocol):
    """Rewrites the response the client gets, in the client's wire format: ``whole`` for
    an answer read in full; ``feed`` (whole SSE lines in, what to send out now) and
    ``finish`` (what was held back) for a stream."""

    def whole(self, body: bytes) -> bytes: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class PolicyExchange:
    plane: ClassVar[Plane] = "LLM"

    __slots__ = (
        "answer",
        "body",
        "consumer",
        "dirty",
        "doc",
        "gateway",
        "policies_time",
        "records",
        "request_headers",
        "response_filters",
        "response_headers",
        "scratch",
    )

    def __init__(
        self, gateway: Gateway, consumer: Consumer, request_headers: Sequence[Header] = ()
    ) -> None:
        self.gateway = gateway
        self.consumer = consumer
        self.request_headers = request_headers  # as received: lower-case names
        self.body = b""  # the request body as sent by the client
        self.doc: dict[str, Any] = {}  # its JSON object
        self.dirty = False  # a policy changed ``doc``: the body is encoded again
        self.answer: Answer | None = None  # set at pre_request: the upstream is skipped
        self.response_headers: list[Header] = []  # added to the response (and errors)
        self.response_filters: list[ResponseFilter] = []
        self.records: list[Any] = []  # PolicyRecord, in the order policies finished
        self.policies_time = 0.0  # seconds spent running policies inline
        # per policy (by its id): what one stage leaves for a later one (a reservation)
        self.scratch: dict[object, Any] = {}

    def header(self, name: bytes) -> str | None:
        """The first value of the request header ``name`` (lower-case), or ``None``."""
        for key, value in self.request_headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def set_model(self, model: str) -> None:
        """Send ``model`` instead of the one asked for (a downgrade, a substitution)."""
        self.doc["model"] = model
        self.dirty = True

    # -- the plane's record of the call (the proxy answers from its ``Call``) ------------
    @property
    def path(self) -> str:
        raise NotImplementedError

    @property
    def requested_model(self) -> str | None:
        """The model the request names now (after any rewrite), or the one its route
        will send when it names none."""
        model = self.doc.get("model")
        return model if isinstance(model, str) else None

    @property
    def provider(self) -> str | None:
        """The provider the call went to (after the upstream), else the likely one."""
        return None

    @property
    def stream(self) -> bool:
        return False

    @property
    def status(self) -> int:
        """The status the client got (0 until known)."""
        return 0

    @property
    def model(self) -> str | None:
        """The model sent upstream (after routing)."""
        return None

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage as the upstream reported it (streams included), or ``None``."""
        return None

    def set_cost(self, cost: Any) -> None:
        """Record the call's cost as a budget policy priced it (its custom pricing)."""
