"""The proxy's side of the ``semantic_cache`` plugin (core's ``CachePort``): what needs
the request's wire format, an embeddings registry or the bus.

- **When**: the runner asks at ``pre_request``; the lookup itself runs once the whole
  stage is done (``run_lookups``, called by the pipeline), so the keys and the embedding
  are those of the request the upstream would be sent, whatever the policies' priorities:
  ``pii``'s placeholders, not the originals (no personal data reaches the embeddings
  provider; two requests that differ only in a masked value are one upstream request,
  and each gets its own values back through ``restore``).
- **Keys**: computed on the request body itself, not on the gateway's decoded view (a
  field a decoder drops, a Chat ``file`` part, Responses ``text.verbosity``, still
  changes the answer): the exact key hashes the whole canonical body, with its wire
  format and model, less the fields that never change the answer (``_NOT_IN_KEY``); the
  filter key hashes the same body with every text the semantic tier embeds blanked, so
  images, files, audio, tool calls and tool results are a hard filter and only text goes
  through similarity. A body the codecs refuse (``n`` > 1, a shape they do not know) is
  not cached (BYPASS).
- **Lookup**: the embedding of the conversation text (mode ``semantic`` / ``both``)
  through the gateway's embeddings registry (the semantic router's embedder, its own
  credentials: none travels), then one NATS request to the policy-cache service bounded
  by ``SEMANTIC_CACHE_LOOKUP_TIMEOUT``. A timeout, no responders, an error reply or no
  embeddings: the call is served uncached (``X-Cache: MISS``, outcome ``error``).
- **Hit**: the stored format-neutral entry (text, tool calls, finish reason, usage,
  model) rendered with the client format's codec: JSON, or a stream of several events
  that ends as the format's streams end. No upstream call, no upstream cost. The
  pipeline passes it through the ``pre_response`` stage and the response filters as an
  upstream's answer (``pii`` masks and restores the hitting call's own placeholders).
- **Miss**: a response filter, added before any ``pre_response`` filter, copies the
  upstream's answer (bounded); after ``post_response`` a 2xx that finished (not
  ``length``, not an error, a stream with its end marker) is decoded with the client
  format's codec, every filter that hides data (``hide_for_cache``: ``pii``'s masking,
  never its restore) applied to it, and published to the service in the background,
  never delaying the client. An entry therefore never holds a value ``pii`` would mask
  nor one it restored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict
from time import perf_counter
from typing import Any, Final

import orjson
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from trustgate_core.cache import CacheLookup, CacheReply, CacheStore
from trustgate_core.cache.keys import exact_key, filter_key
from trustgate_core.errors import InvalidRequest
from trustgate_core.events.subjects import CACHE_LOOKUP_SUBJECT, CACHE_STORE_SUBJECT
from trustgate_core.models import LbConfig
from trustgate_core.policy import Answer, PolicyExchange
from trustgate_core.policy.exchange import ResponseFilter
from trustgate_core.policy.runners.cache import SemanticCacheRunner
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, ChatRequest, ChatResponse
from trustgate_proxy.domain.formats.base import InboundCodec, WireFormat
from trustgate_proxy.domain.formats.model import (
    Finish,
    FinishReason,
    Part,
    StreamEnd,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from trustgate_proxy.domain.strategies import StrategyDeps
from trustgate_proxy.services.forward.common import SSE_HEADERS
from trustgate_proxy.services.semantic import EmbeddingsUnavailable, SemanticStrategy

log = logging.getLogger(__name__)

FORMATS: Final[dict[str, WireFormat]] = {
    "/v1/chat/completions": "openai_chat",
    "/v1/messages": "anthropic",
    "/v1/responses": "openai_responses",
}
MAX_CAPTURE: Final = 4 << 20  # a longer answer is not stored
STREAM_PIECES: Final = 4  # a replayed text arrives in about this many chunks
#: Top-level fields that never change the answer: how it is delivered (``stream``,
#: ``stream_options``), who asks and what is kept of it (end-user ids, ``metadata``,
#: ``store``), a provider's prompt-cache routing hint. Every other field is in the key.
_NOT_IN_KEY: Final = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "prompt_cache_key",
    }
)
_LOOKUPS: Final = object()  # the scratch slot of the lookups asked for at pre_request
_JSON: Final = [(b"content-type", b"application/json")]
_FINISHES: Final[dict[str, FinishReason]] = {"stop": "stop", "tool_calls": "tool_calls"}


class Capture:
    """A response filter that passes the client's answer through unchanged and keeps a
    copy (up to ``MAX_CAPTURE`` bytes) for the store."""

    __slots__ = ("chunks", "size", "stream")

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.chunks: list[bytes] = []
        self.size = 0

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= MAX_CAPTURE:
            self.chunks.append(data)

    def whole(self, body: bytes) -> bytes:
        self._keep(body)
        return body

    def feed(self, chunk: bytes) -> bytes:
        self._keep(chunk)
        return chunk

    def finish(self) -> bytes:
        return b""

    def data(self) -> bytes | None:
        return b"".join(self.chunks) if self.size <= MAX_CAPTURE else None


class Pending:
    """What a miss leaves for ``post_response``: the keys, the vector, the capture."""

    __slots__ = ("capture", "exact", "filter", "fmt", "vector")

    def __init__(
        self, fmt: WireFormat, exact: str, filter_: str, vector: str | None, capture: Capture
    ) -> None:
        self.fmt = fmt
        self.exact = exact
        self.filter = filter_
        self.vector = vector
        self.capture = capture


class RequestKeys:
    """What the cache keeps of a request: the canonical body (``exact``), the same with
    its text blanked (``without_text``), and the text the semantic tier embeds."""

    __slots__ = ("exact", "text", "without_text")

    def __init__(self, exact: dict[str, Any], without_text: dict[str, Any], text: str) -> None:
        self.exact = exact
        self.without_text = without_text
        self.text = text


def request_keys(fmt: WireFormat, doc: dict[str, Any], model: str | None) -> RequestKeys:
    """The request ``doc`` (in ``fmt``) as the keys see it; ``model`` is the one a body
    without its own resolves to."""
    body = {k: v for k, v in doc.items() if k not in _NOT_IN_KEY}
    if not isinstance(body.get("model"), str) and model is not None:
        body["model"] = model
    lines: list[str] = []
    blank = _BLANKERS[fmt](body, lines)
    return RequestKeys(
        {"format": fmt, "request": body}, {"format": fmt, "request": blank}, "\n".join(lines)
    )


def _text_parts(parts: list[Any], role: str, kinds: frozenset[str], lines: list[str]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        if (
            isinstance(part, dict)
            and part.get("type") in kinds
            and isinstance(part.get("text"), str)
        ):
            lines.append(part["text"] if role in _SYSTEM else f"{role}: {part['text']}")
            out.append({**part, "text": ""})
        else:  # an image, a file, audio, a tool call or result: compared whole
            out.append(part)
    return out


def _message(item: Any, kinds: frozenset[str], lines: list[str]) -> Any:
    """A message with its text blanked (its text in ``lines``); a tool result's content
    is not conversation text: it stays, compared whole."""
    if not isinstance(item, dict) or item.get("role") in ("tool", "function"):
        return item
    role = str(item.get("role"))
    content = item.get("content")
    if isinstance(content, str):
        lines.append(content if role in _SYSTEM else f"{role}: {content}")
        return {**item, "content": ""}
    if isinstance(content, list):
        return {**item, "content": _text_parts(content, role, kinds, lines)}
    return item


_TEXT: Final = frozenset({"text"})
_SYSTEM: Final = frozenset({"system", "developer"})  # embedded as its bare text
_RESPONSES_TEXT: Final = frozenset({"input_text", "output_text"})


def _chat(body: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    out = dict(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_message(m, _TEXT, lines) for m in messages]
    return out


def _anthropic(body: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    out = dict(body)
    system = body.get("system")
    if isinstance(system, str):
        lines.append(system)
        out["system"] = ""
    elif isinstance(system, list):
        out["system"] = _text_parts(system, "system", _TEXT, lines)
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_message(m, _TEXT, lines) for m in messages]
    return out


def _responses(body: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    out = dict(body)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        lines.append(instructions)
        out["instructions"] = ""
    items = body.get("input")
    if isinstance(items, str):
        lines.append(f"user: {items}")
        out["input"] = ""
    elif isinstance(items, list):
        out["input"] = [
            _message(item, _RESPONSES_TEXT, lines)
            if isinstance(item, dict) and item.get("type", "message") == "message"
            else item
            for item in items
        ]
    return out


_BLANKERS: Final[dict[str, Callable[[dict[str, Any], list[str]], dict[str, Any]]]] = {
    "openai_chat": _chat,
    "anthropic": _anthropic,
    "openai_responses": _responses,
}


async def run_lookups(x: Exchange) -> None:
    """The lookups the cache's policies asked for at ``pre_request``, run by the pipeline
    once every policy of the stage had its say on the request (masked, rewritten). The
    first hit answers; the misses before it then store nothing (their answer would be
    the hit)."""
    asked: list[tuple[CacheService, SemanticCacheRunner]] | None = x.scratch.pop(_LOOKUPS, None)
    if not asked:
        return
    started = perf_counter()
    try:
        for service, runner in asked:
            if x.answer is not None:
                break
            await service.look_up(runner, x)
        if x.answer is not None:
            for _, runner in asked:
                pending = x.scratch.pop(runner.id, None)
                if isinstance(pending, Pending):
                    x.response_filters.remove(pending.capture)
    finally:
        x.policies_time += perf_counter() - started


def _hidden(filters: list[ResponseFilter], entry: dict[str, Any]) -> dict[str, Any] | None:
    """``entry`` as the filters that hide data would let it be kept (``None``: not at all)."""
    for f in filters:
        hide = getattr(f, "hide_for_cache", None)
        if hide is not None:
            hidden = hide(entry)
            if not isinstance(hidden, dict):
                return None
            entry = hidden
    return entry


class CacheService:
    """Core's ``CachePort`` for the proxy. ``nc`` gives the proxy's NATS connection when
    a call needs it (``None`` before it is up: served uncached)."""

    def __init__(
        self, nc: Callable[[], NATS | None], deps: StrategyDeps, lookup_timeout: float
    ) -> None:
        self._nc = nc
        self._deps = deps
        self.lookup_timeout = lookup_timeout
        self._embedders: dict[tuple[str | None, ...], SemanticStrategy] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- CachePort --------------------------------------------------------------------------
    def bypassed(self, x: PolicyExchange) -> None:
        _record(x, "bypass", None)

    async def lookup(self, runner: SemanticCacheRunner, x: PolicyExchange) -> None:
        """Asked at ``pre_request``: done by ``run_lookups`` at the stage's end."""
        asked = x.scratch.setdefault(_LOOKUPS, [])
        asked.append((self, runner))

    async def look_up(self, runner: SemanticCacheRunner, x: Exchange) -> None:
        fmt = FORMATS.get(x.path)
        codec = INBOUND.get(fmt) if fmt is not None else None
        if fmt is None or codec is None:
            return
        try:
            request = codec.decode_request(x.doc)
        except (InvalidRequest, AttributeError, KeyError, TypeError, ValueError):
            _tell(runner, x, b"x-cache", b"BYPASS")
            _record(x, "bypass", None)
            return
        keys = request_keys(fmt, x.doc, x.default_model)
        exact, filter_ = exact_key(keys.exact), filter_key(keys.without_text)
        settings = runner.settings
        vector: str | None = None
        outcome = "miss"
        if settings.mode != "exact":
            vector, exchange = await self._embed(runner, x, keys.text)
            if vector is None:
                outcome = "error"
            if exchange:
                _tell(runner, x, b"server-timing", _timing(exchange))
        assert runner.id is not None
        message = CacheLookup(
            gateway_id=x.gateway.id,
            policy_id=runner.id,
            partition=runner.partition(x),
            exact_key=exact,
            filter_key=filter_,
            vector=vector,
            threshold=settings.similarity_threshold,
        )
        reply = await self._ask(message)
        if reply is None:
            outcome = "error"
        elif reply.hit and reply.entry is not None:
            if runner.mode == "observe":  # what would have been served; nothing changes
                _record(x, "hit", reply.similarity)
                return
            answer = _answer(codec, request, reply.entry)
            if answer is not None:
                headers = [(b"x-cache", b"HIT")]
                if not reply.exact and reply.similarity is not None:
                    headers.append((b"x-cache-similarity", f"{reply.similarity:.4f}".encode()))
                x.response_headers.extend(headers)
                x.answer = answer
                call = x.call
                call.status = 200
                call.model = str(reply.entry.get("model") or call.requested_model or "")
                _record(x, "hit", reply.similarity)
                return
        _tell(runner, x, b"x-cache", b"MISS")
        _record(x, outcome, None)
        capture = Capture(request.stream)
        x.response_filters.append(capture)
        x.scratch[runner.id] = Pending(fmt, exact, filter_, vector, capture)

    def store(self, runner: SemanticCacheRunner, x: PolicyExchange) -> None:
        pending = x.scratch.pop(runner.id, None)
        if not isinstance(pending, Pending) or not runner.storable_status(x.status):
            return
        data = pending.capture.data()
        if not data:
            return
        entry = _entry(pending.fmt, data, pending.capture.stream)
        if entry is None:
            return
        entry = _hidden(x.response_filters, entry)  # what pii masks, masked; never restored
        if entry is None:
            return
        if entry["usage"] is None and x.usage:  # usage the client did not ask to see
            entry["usage"] = _usage_of(x.usage)
        assert runner.id is not None
        message = CacheStore(
            gateway_id=x.gateway.id,
            policy_id=runner.id,
            partition=runner.partition(x),
            exact_key=pending.exact,
            filter_key=pending.filter,
            vector=pending.vector,
            ttl_seconds=runner.ttl_seconds,
            entry=entry,
        )
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the bus and the embedder ----------------------------------------------------------
    async def _ask(self, message: CacheLookup) -> CacheReply | None:
        nc = self._nc()
        if nc is None or not nc.is_connected:
            return None
        try:
            msg = await nc.request(
                CACHE_LOOKUP_SUBJECT,
                orjson.dumps(message.model_dump(mode="json")),
                timeout=self.lookup_timeout,
            )
            reply = CacheReply.model_validate_json(msg.data)
        except (NatsError, TimeoutError, ValueError):
            return None
        return None if reply.error is not None else reply

    async def _publish(self, message: CacheStore) -> None:
        nc = self._nc()
        if nc is None or not nc.is_connected:
            return
        try:
            await nc.publish(CACHE_STORE_SUBJECT, orjson.dumps(message.model_dump(mode="json")))
        except NatsError:
            log.warning("a cache entry could not be published", exc_info=True)

    async def _embed(
        self, runner: SemanticCacheRunner, x: Exchange, text: str
    ) -> tuple[str | None, float]:
        """The embedding (``None``: none to be had) and its exchange's seconds (0.0: no
        call made)."""
        if not text:
            return None, 0.0
        embedding = runner.settings.embedding
        registry_id = embedding.registry_id
        key = (
            registry_id,
            embedding.provider,
            embedding.model,
            embedding.api_key,
            embedding.base_url,
        )
        embedder = self._embedders.get(key)
        if embedder is None:
            config = {"model": embedding.model}
            if registry_id is not None:
                config["registry_id"] = registry_id
            else:
                config["provider"] = embedding.provider
            if embedding.api_key is not None:  # the reference's form: the key, sealed
                config["api_key"] = embedding.api_key
                if embedding.base_url is not None:
                    config["base_url"] = embedding.base_url
            embedder = SemanticStrategy(
                LbConfig(algorithm="semantic", embedding_config=config), self._deps
            )
            self._embedders[key] = embedder
        try:
            return await embedder.embed(text, x.gateway.id)
        except EmbeddingsUnavailable:
            return None, 0.0


def _timing(seconds: float) -> bytes:
    """A ``Server-Timing`` (W3C) entry for the embeddings exchange, in milliseconds."""
    return f"embedding;dur={seconds * 1000:.3f}".encode()


def _tell(runner: SemanticCacheRunner, x: PolicyExchange, name: bytes, value: bytes) -> None:
    """A header of the cache's on the answer, unless the policy only observes (it changes
    nothing)."""
    if runner.mode != "observe":
        x.response_headers.append((name, value))


def _record(x: PolicyExchange, outcome: str, similarity: float | None) -> None:
    if isinstance(x, Exchange):
        x.call.cache_outcome = outcome
        x.call.cache_similarity = similarity


# -- entries: stored format-neutral, rendered in the client's format ---------------------------


def _entry(fmt: WireFormat, data: bytes, stream: bool) -> dict[str, Any] | None:
    """The format-neutral entry of a finished answer in format ``fmt``; ``None`` for one
    that must not be stored (cut short, an error, ``length``, unreadable)."""
    codec = OUTBOUND.get(fmt)
    if codec is None:
        return None
    try:
        if stream:
            decoder = codec.stream_decoder()
            response = _assembled(decoder.feed(data) + decoder.close())
        else:
            doc = orjson.loads(data)
            response = codec.decode_response(doc) if isinstance(doc, dict) else None
    except Exception:  # an answer the codec cannot read is not stored, whatever it is
        return None
    if response is None or response.finish in ("length", "error", "content_filter"):
        return None
    text = "".join(p.text for p in response.parts if isinstance(p, Text))
    calls = [
        {"id": p.id, "name": p.name, "arguments": p.arguments}
        for p in response.parts
        if isinstance(p, ToolCall)
    ]
    usage = response.usage
    return {
        "model": response.model,
        "text": text,
        "tool_calls": calls,
        "finish": response.finish,
        "usage": None if usage is None else asdict(usage),
    }


def _usage_of(event: dict[str, Any]) -> dict[str, Any]:
    """The call's usage (the request event's shape) as the entry keeps it (``Usage``)."""
    return asdict(
        Usage(
            input_tokens=int(event.get("prompt_tokens") or 0),
            output_tokens=int(event.get("completion_tokens") or 0),
            cached_input_tokens=event.get("cached_input_tokens"),
            cache_write_tokens=event.get("cache_write_tokens"),
            reasoning_tokens=event.get("reasoning_output_tokens"),
        )
    )


def _assembled(events: list[StreamEvent]) -> ChatResponse | None:
    """A whole stream's events as one answer; ``None`` without the end marker."""
    response = ChatResponse(id="", model="")
    texts: dict[int, list[str]] = {}
    calls: dict[int, ToolCall] = {}
    ended = False
    for event in events:
        if isinstance(event, StreamStart):
            response.model = event.model or response.model
        elif isinstance(event, TextDelta):
            texts.setdefault(event.block, []).append(event.text)
        elif isinstance(event, ToolCallStart):
            calls[event.block] = ToolCall(event.id, event.name, "")
        elif isinstance(event, ToolArgsDelta) and event.block in calls:
            calls[event.block].arguments += event.delta
        elif isinstance(event, UsageUpdate):
            response.usage = event.usage
        elif isinstance(event, Finish):
            response.finish = event.reason
        elif isinstance(event, StreamEnd):
            ended = True
    if not ended:
        return None
    blocks: dict[int, Part] = {b: Text("".join(t)) for b, t in texts.items()}
    blocks.update(calls)
    response.parts = [blocks[b] for b in sorted(blocks)]
    return response


def _answer(codec: InboundCodec, request: ChatRequest, entry: dict[str, Any]) -> Answer | None:
    """The entry as the client's format answers: JSON, or its stream."""
    try:
        model = str(entry.get("model") or request.model)
        text = str(entry.get("text") or "")
        calls = [
            ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"]))
            for c in entry.get("tool_calls") or []
        ]
        raw_usage = entry.get("usage")
        usage = Usage(**raw_usage) if isinstance(raw_usage, dict) else None
        finish = _FINISHES.get(str(entry.get("finish")), "stop")
        reply_id = f"cache-{secrets.token_hex(8)}"
        if not request.stream:
            parts: list[Part] = [Text(text)] if text else []
            parts.extend(calls)
            response = ChatResponse(reply_id, model, parts, finish, usage)
            return Answer(200, orjson.dumps(codec.encode_response(response)), list(_JSON))
        encoder = codec.stream_encoder(model, request.stream_usage)
        out = [encoder.feed(StreamStart(reply_id, model))]
        block = 0
        if text:
            out.extend(encoder.feed(TextDelta(0, piece)) for piece in _pieces(text))
            block = 1
        for call in calls:
            out.append(encoder.feed(ToolCallStart(block, call.id, call.name)))
            out.append(encoder.feed(ToolArgsDelta(block, call.arguments)))
            block += 1
        if usage is not None:
            out.append(encoder.feed(UsageUpdate(usage)))
        out.append(encoder.feed(Finish(finish)))
        out.append(encoder.feed(StreamEnd()))
        out.append(encoder.finish())
        return Answer(200, b"".join(out), list(SSE_HEADERS))
    except (KeyError, TypeError, ValueError):  # an entry this proxy cannot render: a miss
        return None


def _pieces(text: str) -> Iterator[str]:
    """``text`` in about ``STREAM_PIECES`` chunks, cut at spaces when it has some."""
    size = max(1, -(-len(text) // STREAM_PIECES))
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.rfind(" ", start + 1, end + 1) if end < len(text) else -1
        if space > start:
            end = space
        yield text[start:end]
        start = end
