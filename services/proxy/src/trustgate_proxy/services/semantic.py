"""The ``semantic`` load-balancing strategy (reference §5): the route whose registry's
``description`` is closest in meaning to the prompt goes first.

Closeness is the cosine similarity between embeddings, computed through an
embeddings-capable registry of the consumer's gateway, named by
``lb_config.embedding_config``:

- ``registry_id``: that registry; else ``provider``: the gateway's first enabled registry
  of that provider offering OpenAI-format embeddings (its own credentials are used);
- or ``provider`` with ``api_key`` (the ``semantic_cache`` policy's reference form): the
  provider's embeddings endpoint (its public URL, or ``base_url``) called with that key.
  The key arrives sealed in the policy (the admin seals it); it is opened, like a
  registry's credentials, only to build the upstream target;
- ``model``: the embeddings model (default ``text-embedding-3-small``);
- ``timeout_ms``: how long one embeddings call may take (default 2000).

The prompt is the body's ``prompt`` when it is text, else the last user message's text
(Chat, Messages and Responses shapes). A registry description's embedding is kept until
the description (or the embeddings registry or model) changes; a prompt's, in a bounded
cache keyed by the text's hash. What is missing goes in one embeddings call.

A text longer than the embeddings models take (``MAX_EMBED_BYTES`` of UTF-8, about 8,000
tokens counted conservatively at 2.5 bytes a token: OpenAI's models take 8,191) is
embedded as its start (a quarter: the system prompt's beginning) and its end (the rest:
the latest turns, where the question is), see ``embedding_input``.

It never fails a request: without a prompt, without descriptions, or when embeddings are
unavailable (no such registry, an error, a timeout), the routes go round-robin. After
``FAILURES_TO_OPEN`` failures in a row the embeddings registry is left alone for
``OPEN_FOR`` seconds (then one call tries it again).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import sys
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from hashlib import blake2b
from operator import mul
from typing import Any, Final, TypeVar
from uuid import UUID, uuid4

import aiohttp
import orjson

from trustgate_core.cache import encode_vector
from trustgate_core.models import LbConfig, Registry
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.routing import Route
from trustgate_proxy.domain.strategies import RoundRobinStrategy, StrategyDeps

DEFAULT_MODEL: Final = "text-embedding-3-small"
DEFAULT_TIMEOUT: Final = 2.0
FAILURES_TO_OPEN: Final = 3
OPEN_FOR: Final = 30.0
_MAX_PROMPTS = 1024
_MAX_DESCRIPTIONS = 1024
#: the most of a text that is embedded, in UTF-8 bytes: at 2.5 bytes a token (English runs
#: about 4, CJK 3 a character of about one token) at most 8,000 tokens, under the 8,191
#: OpenAI's embeddings models take
MAX_EMBED_BYTES: Final = 20_000
_HEAD_SHARE: Final = 4  # a quarter of it from the text's start, the rest from its end
_ELISION: Final = "\n…\n"
# Providers whose embeddings endpoint answers ``encoding_format: "base64"`` (float32
# little-endian, as OpenAI's SDKs ask by default): a quarter of the JSON's bytes and no
# float parsing, 0.3-0.4 ms less per 1,536-dimension embedding on this path. Any other
# OpenAI-format endpoint is asked for the default lists of numbers.
_PACKED_EMBEDDINGS: Final = frozenset({"openai", "azure"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Vector = tuple[float, ...]  # unit length


class EmbeddingsUnavailable(Exception):
    """No embeddings now: the strategy degrades to round-robin."""


def embedding_input(text: str, limit: int = MAX_EMBED_BYTES) -> str:
    """What is embedded of ``text``: all of it when it fits in ``limit`` UTF-8 bytes, else
    its start (a quarter of ``limit``: the system prompt's beginning) and its end (the
    rest: the latest turns and the question), joined by an elision line. Cut at character
    boundaries."""
    data = text.encode()
    if len(data) <= limit:
        return text
    head = limit // _HEAD_SHARE
    tail = limit - head - len(_ELISION.encode())
    return data[:head].decode("utf-8", "ignore") + _ELISION + data[-tail:].decode("utf-8", "ignore")


def prompt_text(doc: Mapping[str, Any]) -> str | None:
    """The text a request is routed on: ``prompt``, else the last user message's text."""
    prompt = doc.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return embedding_input(prompt)
    messages = doc.get("messages")
    if not isinstance(messages, list):
        messages = doc.get("input")
        if isinstance(messages, str):
            return embedding_input(messages) if messages.strip() else None
        if not isinstance(messages, list):
            return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text(message.get("content"))
            return embedding_input(text) if text.strip() else None
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def unit(values: Sequence[float]) -> Vector | None:
    """``values`` scaled to length 1 (``None``: the zero vector, or one not finite);
    ``TypeError`` for a value that is not a number. In C loops (``hypot``, ``map``): a
    1,536-dimension vector in about 80 µs, a quarter of a Python loop's time."""
    norm = math.hypot(*values)
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return tuple(map((1.0 / norm).__mul__, values))


def cosine(a: Vector, b: Vector) -> float:
    """The cosine similarity of two unit vectors (0 when their sizes differ)."""
    return sum(map(mul, a, b)) if len(a) == len(b) else 0.0


class Circuit:
    """Opens after ``threshold`` failures in a row; once ``open_for`` seconds have passed,
    lets one call through (half-open): its success closes it, its failure opens it
    again."""

    __slots__ = ("_clock", "failures", "open_for", "opened_at", "threshold", "trial")

    def __init__(
        self,
        threshold: int = FAILURES_TO_OPEN,
        open_for: float = OPEN_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.open_for = open_for
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        if self.trial or self._clock() - self.opened_at < self.open_for:
            return False
        self.trial = True
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial = False

    def failed(self) -> None:
        self.failures += 1
        if self.trial or self.failures >= self.threshold:
            self.opened_at = self._clock()
        self.trial = False


class SemanticStrategy:
    """Orders the routes by how close their registry's description is to the prompt."""

    def __init__(self, config: LbConfig, deps: StrategyDeps) -> None:
        embedding = config.embedding_config or {}
        self._deps = deps
        registry_id = embedding.get("registry_id")
        self._registry_id = _uuid(registry_id)
        provider = embedding.get("provider")
        self._provider = provider.lower() if isinstance(provider, str) and provider else None
        model = embedding.get("model")
        self._model = model if isinstance(model, str) and model else DEFAULT_MODEL
        api_key = embedding.get("api_key")  # sealed when it comes from the admin
        self._api_key = api_key if isinstance(api_key, str) and api_key else None
        base_url = embedding.get("base_url")
        self._base_url = base_url if isinstance(base_url, str) and base_url else None
        self._keyed: dict[UUID, Registry] = {}  # gateway -> its registry made of the key
        timeout = embedding.get("timeout_ms")
        self._timeout = (
            timeout / 1000
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0
            else DEFAULT_TIMEOUT
        )
        self.circuit = Circuit()
        self.fallback = RoundRobinStrategy()
        self._prompts: dict[bytes, Vector | None] = {}
        self._packed: dict[bytes, str | None] = {}  # the cache's embeddings, by text
        self._descriptions: dict[tuple[UUID, str], Vector | None] = {}
        self._by_gateway: dict[UUID, UUID] = {}  # gateway -> its embeddings registry

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        if len(routes) < 2:
            return routes
        text = prompt_text(exchange.doc)
        if text is None or not any(r.binding.registry.description for r in routes):
            return self.fallback.rotate(routes)
        try:
            prompt, described = await self._vectors(text, routes, exchange.gateway.id)
        except EmbeddingsUnavailable:
            return self.fallback.rotate(routes)
        if prompt is None:
            return self.fallback.rotate(routes)
        scored = [
            (cosine(prompt, v) if (v := described.get(r.binding.registry.id)) else -2.0, i)
            for i, r in enumerate(routes)
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [routes[i] for _, i in scored]

    def started(self, route: Route) -> None:
        return None

    def finished(self, route: Route, outcome: str, latency: float) -> None:
        return None

    # -- embeddings -------------------------------------------------------------------------
    async def embed(self, text: str, gateway_id: UUID) -> tuple[str | None, float]:
        """For the semantic cache: the embedding of ``text`` through the gateway's
        embeddings registry as ``encode_vector``'s text (float32 little-endian, base64),
        the provider's own when it answers base64, not normalised (the cache compares
        by cosine, whatever the lengths; no float is made of it here), ``None`` for a
        zero or not finite vector; and the seconds its exchange with the provider took
        (0.0: remembered, no call). Raises ``EmbeddingsUnavailable``."""
        registry = self._registry(gateway_id)
        if registry is None:
            raise EmbeddingsUnavailable
        key = blake2b(f"{registry.id}\0{text}".encode(), digest_size=16).digest()
        packed: str | None = self._packed.get(key, _MISSING)
        if packed is not _MISSING:
            return packed, 0.0
        embedded, seconds = await self._embed(registry, [embedding_input(text)], _packed_of)
        _bounded_put(self._packed, key, embedded[0], _MAX_PROMPTS)
        return embedded[0], seconds

    async def _vectors(
        self, text: str, routes: Sequence[Route], gateway_id: UUID
    ) -> tuple[Vector | None, dict[UUID, Vector | None]]:
        """The prompt's vector and each described registry's (by id), embedding in one
        call what is not cached."""
        registry = self._registry(gateway_id)
        if registry is None:
            raise EmbeddingsUnavailable
        source = registry.id
        prompt_key = blake2b(f"{source}\0{text}".encode(), digest_size=16).digest()
        missing: list[str] = []
        prompt = self._prompts.get(prompt_key, _MISSING)
        if prompt is _MISSING:
            missing.append(text)
        described: dict[UUID, Vector | None] = {}
        wanted: dict[str, list[UUID]] = {}
        for route in routes:
            r = route.binding.registry
            if not r.description:
                continue
            vector = self._descriptions.get((source, r.description), _MISSING)
            if vector is _MISSING:
                wanted.setdefault(r.description, []).append(r.id)
            else:
                described[r.id] = vector
        missing.extend(wanted)
        if missing:
            vectors, _ = await self._embed(registry, missing, _vectors_of)
            if prompt is _MISSING:
                prompt = vectors[0]
                _bounded_put(self._prompts, prompt_key, prompt, _MAX_PROMPTS)
                vectors = vectors[1:]
            for description, vector in zip(wanted, vectors, strict=True):
                _bounded_put(self._descriptions, (source, description), vector, _MAX_DESCRIPTIONS)
                for rid in wanted[description]:
                    described[rid] = vector
        return prompt, described

    def _registry(self, gateway_id: UUID) -> Registry | None:
        """The gateway's embeddings registry (``None``: it has none)."""
        view = self._deps.view
        if view is None:
            return None
        if self._api_key is not None:
            return self._keyed_registry(gateway_id)
        registries: Mapping[UUID, Registry] = view.state.registries
        wanted = self._registry_id or self._by_gateway.get(gateway_id)
        if wanted is not None:
            registry = registries.get(wanted)
            if registry is not None and registry.gateway_id == gateway_id and registry.enabled:
                return registry
        if self._provider is None:
            return None
        for registry in registries.values():
            if (
                registry.gateway_id == gateway_id
                and registry.enabled
                and registry.type == "LLM"
                and (registry.provider or "").lower() == self._provider
            ):
                self._by_gateway[gateway_id] = registry.id
                return registry
        return None

    def _keyed_registry(self, gateway_id: UUID) -> Registry:
        """The provider's endpoint with the configured key, as a registry of the gateway
        that is in no config (one object per gateway, so the view builds its target once;
        the view opens the sealed key as it opens any registry's ``auth``)."""
        registry = self._keyed.get(gateway_id)
        if registry is None:
            registry = self._keyed[gateway_id] = Registry(
                id=uuid4(),
                gateway_id=gateway_id,
                created_at=_EPOCH,
                updated_at=_EPOCH,
                name="embeddings",
                provider=self._provider or "openai",
                provider_options={"base_url": self._base_url} if self._base_url else {},
                auth={"type": "api_key", "api_key": self._api_key},
            )
        return registry

    async def _embed(
        self,
        registry: Registry,
        texts: list[str],
        read: Callable[[Any, int], list[_T]],
    ) -> tuple[list[_T], float]:
        """One OpenAI-format embeddings call for ``texts``: their embeddings in order as
        ``read`` makes them of the answer (``_vectors_of``: unit vectors), and the
        seconds of the exchange with the provider."""
        if not self.circuit.allows():
            raise EmbeddingsUnavailable
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._call(registry, texts, read)
        except (EmbeddingsUnavailable, aiohttp.ClientError, OSError, ValueError):
            # OSError: TimeoutError included; ValueError: an answer that does not parse
            self.circuit.failed()
            raise EmbeddingsUnavailable from None
        self.circuit.succeeded()
        return answer

    async def _call(
        self, registry: Registry, texts: list[str], read: Callable[[Any, int], list[_T]]
    ) -> tuple[list[_T], float]:
        session: aiohttp.ClientSession | None = self._deps.session
        if session is None:
            raise EmbeddingsUnavailable
        try:
            target = self._deps.view.target(registry)
        except Exception:  # credentials that do not open: no embeddings from it
            raise EmbeddingsUnavailable from None
        url = target.embeddings_url(self._model) if target.wire == "openai_chat" else None
        if url is None:
            raise EmbeddingsUnavailable
        request: dict[str, Any] = {"model": self._model, "input": texts}
        if registry.provider in _PACKED_EMBEDDINGS:
            request["encoding_format"] = "base64"
        body = orjson.dumps(request)
        headers = (
            await target.authorize("POST", url, body) if target.needs_authorize else target.headers
        )
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status >= 300:
                raise EmbeddingsUnavailable
            data = await resp.read()
        exchange = time.perf_counter() - started  # sent to last byte, as the upstream's
        return read(orjson.loads(data), len(texts)), exchange


_MISSING: Any = object()
_T = TypeVar("_T")


def _vectors_of(doc: Any, count: int) -> list[Vector | None]:
    """The unit vectors of an OpenAI embeddings answer, by ``index``."""
    out: list[Vector | None] = [None] * count
    for index, embedding in _items(doc, count):
        values = _unpacked(embedding) if isinstance(embedding, str) else embedding
        try:
            out[index] = unit(values)
        except TypeError:
            raise ValueError("an embedding that is not numbers") from None
    return out


def _packed_of(doc: Any, count: int) -> list[str | None]:
    """The embeddings of an OpenAI embeddings answer, by ``index``, as ``encode_vector``'s
    text: a base64 one as it came (checked to be whole float32 values), a list of numbers
    packed; ``None`` for a zero or not finite vector."""
    out: list[str | None] = [None] * count
    for index, embedding in _items(doc, count):
        if isinstance(embedding, str):
            data = _base64(embedding)
            out[index] = embedding if data.strip(b"\x00") else None
            continue
        try:
            norm = math.hypot(*embedding)
        except TypeError:
            raise ValueError("an embedding that is not numbers") from None
        if norm != 0.0 and math.isfinite(norm):
            out[index] = encode_vector(embedding)
    return out


def _items(doc: Any, count: int) -> list[tuple[int, Any]]:
    """(index, embedding) of each item of an OpenAI embeddings answer; the embedding a
    list of numbers or a base64 text."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise ValueError("no data")
    items: list[tuple[int, Any]] = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError("an item is not an object")
        index = item.get("index", position)
        embedding = item.get("embedding")
        if (
            not isinstance(index, int)
            or not 0 <= index < count
            or not isinstance(embedding, list | str)
        ):
            raise ValueError("an item without its index or embedding")
        items.append((index, embedding))
    return items


def _base64(text: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("an embedding that is not base64") from None
    if len(data) % 4:
        raise ValueError("an embedding that is not whole float32 values")
    return data


def _unpacked(text: str) -> list[float]:
    """A base64 embedding: float32 values, little-endian."""
    values = array("f")
    values.frombytes(_base64(text))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return None
    return None


def semantic_strategy(config: LbConfig, deps: StrategyDeps) -> SemanticStrategy:
    """The ``semantic`` strategy for a consumer's ``lb_config``."""
    return SemanticStrategy(config, deps)
