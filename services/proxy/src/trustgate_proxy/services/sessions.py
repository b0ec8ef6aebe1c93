"""Conversations across calls: the session id a client sends, and the Responses API's
``previous_response_id`` served by the gateway whatever the provider (``Sessions``).

**Session id.** Read from ``X-Session-Id`` (or the gateway's ``session_config.header_name``),
else from the body's ``session_config.body_param_name`` field (which is then removed: it
is the gateway's parameter, and providers refuse fields they do not know); when there is
none and ``session_config.enabled``, a UUIDv7 is minted. It is echoed on every answer
under the configured header name and recorded on the call (the request event's
``session_id``). A value longer than 256 characters, or not printable, is a 400.

**Responses conversations.** Every ``/v1/responses`` answer relayed to the client (whole,
or the stream's ``response.completed`` / ``response.incomplete`` event, read in the
client's format by a response filter) is kept under its response id with the request's
input items followed by the answer's output items, for ``SESSION_STORE_TTL``: in Redis
when the proxy shares counters there (``GET`` / ``SET … PX``, so every replica holds it),
else in this process (bounded). A later request naming that ``previous_response_id``
gets the conversation's items put before its ``input`` and the field removed, so it can
be served by any provider — Anthropic or Bedrock as well as OpenAI. An id the gateway
does not hold passes through untouched (OpenAI may hold it). A request with
``store: false`` is not kept, as the Responses API promises. Conversations are scoped to
the gateway and consumer that made them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final, Protocol
from uuid import UUID

import orjson

from trustgate_core.counters import Counters, CountersUnavailable, RedisCounters
from trustgate_core.errors import InvalidRequest
from trustgate_core.ids import uuid7
from trustgate_core.models import Gateway
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.services.ports import Headers
from trustgate_proxy.settings import ProxySettings

RESPONSES: Final = "/v1/responses"
SESSION_HEADER: Final = b"x-session-id"
MAX_SESSION_ID: Final = 256
# a conversation larger than this is not kept (its continuation then passes through)
MAX_CONVERSATION_BYTES: Final = 16 << 20
_KEY_PREFIX: Final = "trustgate:responses:"
_KEPT_EVENTS = (b"response.completed", b"response.incomplete")
_KEPT_TYPES = frozenset(("response.completed", "response.incomplete"))


# -- where conversations are kept ---------------------------------------------------------
class ConversationStore(Protocol):
    """Conversations by key. ``get`` never raises (unreachable: ``None``); ``put`` returns
    at once (a shared store writes in the background)."""

    async def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    async def aclose(self) -> None: ...


class LocalConversations:
    """In this process, for ``ttl`` seconds each, at most ``max_entries`` conversations
    and ``max_bytes`` in all (the oldest written go first)."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 128 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._held: dict[str, tuple[float, bytes]] = {}  # key -> (expiry, value), by age
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    async def get(self, key: str) -> bytes | None:
        entry = self._held.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(key)
            return None
        return entry[1]

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._held:
            self._drop(key)
        self._held[key] = (self._clock() + self.ttl, value)
        self._bytes += len(value)
        while len(self._held) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._held)))

    def _drop(self, key: str) -> None:
        _, value = self._held.pop(key)
        self._bytes -= len(value)

    async def aclose(self) -> None:
        self._held.clear()
        self._bytes = 0


class RedisConversations:
    """In Redis, on the counters' connection (its deadline and failure mode), so every
    replica continues every conversation. A write is queued on that one connection before
    any later read of this replica; a failed one is dropped (the conversation then passes
    through)."""

    def __init__(self, counters: RedisCounters, ttl: float) -> None:
        self._counters = counters
        self._ttl_ms = max(1, int(ttl * 1000))
        self._writes: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._counters.execute("GET", key)
        except CountersUnavailable:
            return None
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._set(key, value))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _set(self, key: str, value: bytes) -> None:
        try:
            await self._counters.execute("SET", key, value, "PX", self._ttl_ms)
        except CountersUnavailable:
            return

    async def aclose(self) -> None:
        """Let the writes in flight finish (each within the counters' deadline)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


# -- a gateway's session settings -----------------------------------------------------------
class SessionRule:
    """A gateway's ``session_config``, read once per change of the gateway: the header
    the id comes in and goes out under, the body field it may come in, and whether one
    is minted when the client sends none."""

    __slots__ = ("body_param", "header", "mint")

    def __init__(self, header: bytes, body_param: str | None, mint: bool) -> None:
        self.header = header
        self.body_param = body_param
        self.mint = mint

    @classmethod
    def of(cls, config: dict[str, Any] | None) -> SessionRule:
        config = config or {}
        name = config.get("header_name")
        header = name.strip().lower().encode("latin-1") if isinstance(name, str) else b""
        param = config.get("body_param_name")
        return cls(
            header if header and _is_token(header) else SESSION_HEADER,
            param if isinstance(param, str) and param else None,
            config.get("enabled") is True,
        )


def _is_token(name: bytes) -> bool:
    """Whether ``name`` may be an HTTP header name."""
    return all(c > 32 and c < 127 and c not in b'"(),/:;<=>?@[\\]{}' for c in name)


def _session_id(value: str, source: str) -> str:
    if len(value) > MAX_SESSION_ID or not value.isprintable() or not value.isascii():
        raise InvalidRequest(
            f"{source} must be at most {MAX_SESSION_ID} printable ASCII characters"
        )
    return value


# -- conversations of the Responses API -----------------------------------------------------
def _items(value: Any) -> list[Any] | None:
    """A request's ``input`` as a list of items (a string is one user message);
    ``None`` when it is neither (the request is passed on as it is, to be refused)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return value if isinstance(value, list) else None


def _conversation(held: bytes | None) -> list[Any] | None:
    """The items of a conversation as kept (``None``: not held, or unreadable)."""
    if held is None:
        return None
    try:
        items = orjson.loads(held)
    except orjson.JSONDecodeError:
        return None
    return items if isinstance(items, list) else None


def conversation_key(gateway_id: UUID, consumer_id: UUID, response_id: str) -> str:
    """Where the conversation ending with ``response_id`` is kept (consumers' own)."""
    return f"{_KEY_PREFIX}{gateway_id}:{consumer_id}:{response_id}"


class KeepConversation:
    """A response filter on a ``/v1/responses`` call: it reads the response the client
    gets (whole, or a stream's final event) and keeps the conversation so far under the
    response's id. It never changes what the client gets."""

    __slots__ = ("_exchange", "_kept", "_prefix", "_store")

    def __init__(self, store: ConversationStore, prefix: str, exchange: Exchange) -> None:
        self._store = store
        self._prefix = prefix
        self._exchange = exchange
        self._kept = False

    def whole(self, body: bytes) -> bytes:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if isinstance(doc, dict):
            self._keep(doc)
        return body

    def feed(self, chunk: bytes) -> bytes:
        if not self._kept and (_KEPT_EVENTS[0] in chunk or _KEPT_EVENTS[1] in chunk):
            for line in chunk.split(b"\n"):
                if line.startswith(b"data:") and (
                    _KEPT_EVENTS[0] in line or _KEPT_EVENTS[1] in line
                ):
                    self._event(line[5:])
        return chunk

    def finish(self) -> bytes:
        return b""

    def _event(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict) and event.get("type") in _KEPT_TYPES:
            response = event.get("response")
            if isinstance(response, dict):
                self._keep(response)

    def _keep(self, response: dict[str, Any]) -> None:
        response_id = response.get("id")
        output = response.get("output")
        if not isinstance(response_id, str) or not response_id or not isinstance(output, list):
            return
        items = _items(self._exchange.doc.get("input"))
        if items is None:
            return
        value = orjson.dumps([*items, *output])
        if len(value) <= MAX_CONVERSATION_BYTES:
            self._kept = True
            self._store.put(self._prefix + response_id, value)


class Sessions:
    """Runs once per call (``begin``), after the body is parsed and before any policy."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store
        self._rules: dict[object, tuple[Gateway, SessionRule]] = {}

    @classmethod
    def from_settings(cls, settings: ProxySettings, counters: Counters | None = None) -> Sessions:
        """Conversations in Redis when ``counters`` are there, else in this process."""
        ttl = settings.session_store_ttl
        if isinstance(counters, RedisCounters):
            return cls(RedisConversations(counters, ttl))
        return cls(LocalConversations(ttl))

    async def begin(self, exchange: Exchange, headers: Headers) -> None:
        rule = self._rule(exchange.gateway)
        raw = exchange.header(rule.header)
        session: str | None
        if raw is not None:
            session = _session_id(raw, rule.header.decode())
        else:
            session = self._from_body(exchange, rule.body_param)
            if session is None and rule.mint:
                session = str(uuid7())
        if session is not None:
            exchange.call.session_id = session
            headers.append((rule.header, session.encode()))
        if exchange.call.path == RESPONSES:
            await self._responses(exchange)

    def _rule(self, gateway: Gateway) -> SessionRule:
        entry = self._rules.get(gateway.id)
        if entry is None or entry[0] is not gateway:
            if len(self._rules) >= 4096:
                self._rules.clear()
            entry = self._rules[gateway.id] = (gateway, SessionRule.of(gateway.session_config))
        return entry[1]

    @staticmethod
    def _from_body(exchange: Exchange, param: str | None) -> str | None:
        if param is None or param not in exchange.doc:
            return None
        value = exchange.doc.pop(param)
        exchange.dirty = True
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"'{param}' (the session id) must be a string")
        return _session_id(value, f"'{param}'")

    async def _responses(self, exchange: Exchange) -> None:
        """Continue a conversation the gateway holds; keep this one's answer."""
        doc = exchange.doc
        prefix = conversation_key(exchange.gateway.id, exchange.consumer.id, "")
        previous = doc.get("previous_response_id")
        if isinstance(previous, str) and previous:
            earlier = _conversation(await self.store.get(prefix + previous))
            items = _items(doc.get("input")) if earlier is not None else None
            if earlier is not None and items is not None:
                doc["input"] = [*earlier, *items]
                del doc["previous_response_id"]
                exchange.dirty = True
        if doc.get("store") is not False:
            exchange.response_filters.append(KeepConversation(self.store, prefix, exchange))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.store.aclose()
