"""Runner: ``pii``, personal data masked, redacted or blocked before it leaves the gateway.

Requests: every text the model reads (``rewrite.request_slots``: system prompt, history,
tool results, Anthropic blocks, Responses ``input``) plus the arguments of earlier tool
calls is searched with ``trustgate_core.pii.find``. A found entity is replaced by its
action: ``mask`` (``<EMAIL_1>``, one placeholder per distinct value of one request),
``mask_partial`` (``****1234``), ``redact`` (removed). When an entity's action is
``block`` the call is refused with 422 in the client's error shape, naming the entity
types and counts, and the upstream is never called (the document is masked first, so
the body telemetry records holds no original).

Responses (``apply_to: response``, or ``restore``): a ``ResponseFilter`` in the client's
format (``rewrite.ResponseRewriter``'s event handling) masks what the upstream's text
holds, streams included: a text stream is held back until a cut that no entity can
straddle (at least ``MIN_HOLD`` characters, then back to a whitespace, and before any
match still open), at most ``MAX_HOLD`` characters. With ``restore`` the placeholders
sent upstream are replaced by their originals in the client's answer — text and
tool-call arguments — from the mapping of this call only (kept on the exchange).

With ``semantic_cache``: the cache keys the request as masked here, whatever the two
policies' priorities, and keeps the upstream's answer through ``PiiFilter.hide_for_cache``
(masked, never restored); a hit goes through ``pre_response`` and this filter like an
upstream's answer, so it is masked and restored with the hitting call's own mapping.

A detector error fails closed by default (503 ``pii_unavailable``; in a response the
text in question is dropped); ``on_error: fail_open`` lets the text through unchanged.
``observe`` changes nothing: what would have been masked or blocked is recorded.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

import orjson

from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.pii import Action, PiiSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import PolicyExchange
from trustgate_core.policy.runners.rewrite import (
    CHAT,
    COUNT_TOKENS,
    MESSAGES,
    RESPONSES,
    ResponseRewriter,
    Rules,
    Slot,
    TextStream,
    request_slots,
)

log = logging.getLogger(__name__)

#: A stream keeps back at least this many characters (a formatted number has spaces)…
MIN_HOLD: Final = 48
#: …and at most this many: a run without whitespace longer than this is cut anyway.
MAX_HOLD: Final = 512
#: Characters already sent that the detectors still read (a keyword before a number).
CONTEXT: Final = 32

_PLACEHOLDER: Final = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_PLACEHOLDER_HOLD: Final = 64
#: The start of a placeholder at a text's end (held until it is whole).
_OPEN: Final = re.compile(r"<[A-Z0-9_]*\Z")
_ANTHROPIC_ROUTES: Final = frozenset({MESSAGES, COUNT_TOKENS})
_FILTERED_ROUTES: Final = frozenset({CHAT, MESSAGES, RESPONSES})


if TYPE_CHECKING:
    from trustgate_core.pii import Entity, Match


def _entities() -> dict[str, Entity]:
    from trustgate_core.pii import ENTITIES

    return ENTITIES


def find(text: str, entities: frozenset[str] | None) -> list[Match]:
    """The detectors' ``find``: imported with the first pii policy, not with the plane
    (``phonenumbers`` and ``stdnum`` cost every proxy megabytes it would not use)."""
    from trustgate_core.pii import find as detect

    return detect(text, entities)


class DetectorFailed(Exception):
    """``find`` raised: the text could not be checked."""


def _find(text: str, entities: frozenset[str] | None) -> list[Match]:
    try:
        return find(text, entities)
    except Exception as exc:
        log.exception("pii: the detectors failed")
        raise DetectorFailed from exc


def _partial(value: str) -> str:
    keep = "".join(c for c in value if c.isalnum())[-4:]
    return "*" * 4 + keep if len(keep) < len(value) else "*" * len(value)


class Placeholders:
    """One call's placeholders: value → placeholder for masking, back for ``restore``.
    Lives on the call's exchange, so concurrent calls never share one."""

    __slots__ = ("back", "counts", "forward")

    def __init__(self) -> None:
        self.forward: dict[tuple[str, str], str] = {}
        self.back: dict[str, str] = {}
        self.counts: Counter[str] = Counter()

    def placeholder(self, entity: str, value: str) -> str:
        held = self.forward.get((entity, value))
        if held is None:
            self.counts[entity] += 1
            held = f"<{entity.upper()}_{self.counts[entity]}>"
            self.forward[(entity, value)] = held
            self.back[held] = value
        return held

    def snapshot(self) -> Placeholders:
        """The placeholders sent upstream so far: what ``restore`` gives back (a value
        the answer's own masking finds later must stay masked)."""
        copy = Placeholders()
        copy.back = dict(self.back)
        return copy

    def restore(self, text: str) -> str:
        if "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self.back.get(m.group(), m.group()), text)


class Guard:
    """The policy's settings, resolved once: entities searched and each one's action."""

    __slots__ = ("_actions", "_default", "entities", "on_error")

    def __init__(self, settings: PiiSettings) -> None:
        if settings.entities is None:
            self.entities: frozenset[str] | None = None
        else:
            wanted = set(settings.entities)
            self.entities = frozenset(
                eid for eid, ent in _entities().items() if eid in wanted or ent.group in wanted
            )
        self._actions = dict(settings.actions)
        self._default: Action = settings.action
        self.on_error = settings.on_error

    def action(self, entity: str) -> Action:
        own = self._actions.get(entity)
        if own is not None:
            return own
        known = _entities().get(entity)
        if known is not None and known.group in self._actions:
            return self._actions[known.group]
        return self._default

    def replace(
        self, text: str, matches: list[Match], mapping: Placeholders, found: Counter[str]
    ) -> str:
        """``text`` with each match replaced by its action (``block`` masks: the call is
        refused, what is recorded of it must hold no original)."""
        out: list[str] = []
        pos = 0
        for match in matches:
            found[match.entity] += 1
            out.append(text[pos : match.start])
            action = self.action(match.entity)
            if action == "mask_partial":
                out.append(_partial(match.value))
            elif action != "redact":
                out.append(mapping.placeholder(match.entity, match.value))
            pos = match.end
        out.append(text[pos:])
        return "".join(out)

    def mask(self, text: str, mapping: Placeholders, found: Counter[str]) -> str:
        matches = _find(text, self.entities)
        return self.replace(text, matches, mapping, found) if matches else text


# --------------------------------------------------------------------------- requests


def _strings(value: Any, container: Any, key: Any, out: list[Slot]) -> None:
    """Every string inside a tool call's arguments (an Anthropic ``input`` object)."""
    if isinstance(value, str):
        out.append((container, key))
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(v, value, k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _strings(v, value, i, out)


def _tool_call_slots(path: str, doc: dict[str, Any]) -> list[Slot]:
    """Arguments of the tool calls a conversation's history holds (the model reads
    them again): Chat ``tool_calls[].function.arguments``, Anthropic ``tool_use``
    ``input``, Responses ``function_call`` ``arguments``."""
    out: list[Slot] = []
    items = doc.get("input" if path == RESPONSES else "messages")
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
            out.append((item, "arguments"))
        for call in item.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                out.append((function, "arguments"))
        content = item.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    _strings(block.get("input"), block, "input", out)
    return out


def error_body(path: str, message: str, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    """An error in the shape the route's SDKs parse (Anthropic's, else OpenAI's)."""
    if path in _ANTHROPIC_ROUTES:
        return {"type": "error", "error": {"type": kind, "message": message, **extra}}
    return {"error": {"message": message, "type": kind, "param": None, "code": kind, **extra}}


def _blocked(path: str, counts: Counter[str]) -> PolicyRejected:
    named = ", ".join(f"{entity} ({n})" for entity, n in sorted(counts.items()))
    message = f"the request holds personal data this gateway does not let through: {named}"
    body = error_body(path, message, "invalid_request_error", {"entities": dict(counts)})
    return PolicyRejected(422, body, kind="pii_blocked")


def _unavailable(path: str) -> PolicyRejected:
    message = "the request could not be checked for personal data"
    return PolicyRejected(503, error_body(path, message, "api_error", {}), kind="pii_unavailable")


# --------------------------------------------------------------------------- responses


class _Restore(TextStream):
    """Placeholders back to their originals in a text that arrives in pieces: a ``<``
    that may open a placeholder is held until the placeholder is whole."""

    __slots__ = ("_mapping", "_pending")

    def __init__(self, mapping: Placeholders) -> None:
        super().__init__(())
        self._mapping = mapping
        self._pending = ""

    def feed(self, text: str) -> str:
        buf = self._pending + text
        open_ = _OPEN.search(buf, max(0, len(buf) - _PLACEHOLDER_HOLD))
        if open_ is not None:
            self._pending = buf[open_.start() :]
            buf = buf[: open_.start()]
        else:
            self._pending = ""
        return self._mapping.restore(buf)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self._mapping.restore(rest)

    @property
    def holding(self) -> bool:
        return bool(self._pending)


class _Mask(TextStream):
    """Entities masked in a text that arrives in pieces, with a bounded hold-back. The
    detectors also see the last ``CONTEXT`` characters already sent (a keyword before a
    number), though only what is held can still change."""

    __slots__ = ("_context", "_found", "_guard", "_mapping", "_pending", "_then")

    def __init__(self, guard: Guard, mapping: Placeholders, then: TextStream | None) -> None:
        super().__init__(())
        self._guard = guard
        self._mapping = mapping
        self._then = then
        self._pending = ""
        self._context = ""
        self._found: Counter[str] = Counter()

    def _matches(self, buf: str) -> list[Match]:
        skip = len(self._context)
        found = _find(self._context + buf, self._guard.entities) if buf else []
        return [
            replace(m, start=m.start - skip, end=m.end - skip) for m in found if m.start >= skip
        ]

    def _decided(self, buf: str, cut: int, matches: list[Match]) -> str:
        self._pending = buf[cut:]
        self._context = (self._context + buf[:cut])[-CONTEXT:]
        out = self._guard.replace(
            buf[:cut], [m for m in matches if m.end <= cut], self._mapping, self._found
        )
        return self._then.feed(out) if self._then is not None else out

    def feed(self, text: str) -> str:
        buf = self._pending + text
        try:
            matches = self._matches(buf)
        except DetectorFailed:
            return self._failed(buf)
        return self._decided(buf, _cut(buf, matches), matches)

    def flush(self) -> str:
        buf = self._pending
        try:
            out = self._decided(buf, len(buf), self._matches(buf))
        except DetectorFailed:
            out = self._failed(buf)
        return out + self._then.flush() if self._then is not None else out

    def _failed(self, buf: str) -> str:
        self._pending = ""
        out = "" if self._guard.on_error == "fail_closed" else buf
        return self._then.feed(out) if self._then is not None else out

    @property
    def holding(self) -> bool:
        return bool(self._pending) or (self._then is not None and self._then.holding)


def _cut(buf: str, matches: list[Match]) -> int:
    """Where the decided part of ``buf`` ends: ``MIN_HOLD`` from its end, back to a
    whitespace (an email or a number has none) and before a match reaching past it;
    never more than ``MAX_HOLD`` held."""
    cut = len(buf) - MIN_HOLD
    if cut <= 0:
        return 0
    floor = max(0, len(buf) - MAX_HOLD)
    while cut > floor and not buf[cut - 1].isspace():
        cut -= 1
    for match in matches:
        if match.start < cut < match.end:
            cut = match.start
    return max(cut, floor)


class _Texts(Rules):
    """What ``ResponseRewriter`` applies to each text: masking, restoring, or both."""

    __slots__ = ("_guard", "_mapping", "_restore")

    def __init__(
        self, guard: Guard | None, mapping: Placeholders, restore: Placeholders | None
    ) -> None:
        super().__init__(())
        self._guard = guard
        self._mapping = mapping
        self._restore = restore

    @property
    def guard(self) -> Guard | None:
        return self._guard

    @property
    def mapping(self) -> Placeholders:
        return self._mapping

    def mask_only(self, text: str) -> str:
        if self._guard is None:
            return text
        try:
            return self._guard.mask(text, self._mapping, Counter())
        except DetectorFailed:
            return "" if self._guard.on_error == "fail_closed" else text

    def apply(self, text: str) -> str:
        text = self.mask_only(text)
        return self._restore.restore(text) if self._restore is not None else text

    def matches(self, text: str) -> bool:
        return self.apply(text) != text

    def stream(self) -> TextStream:
        then = _Restore(self._restore) if self._restore is not None else None
        if self._guard is None:
            assert then is not None
            return then
        return _Mask(self._guard, self._mapping, then)


def _walk(value: Any, fix: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return value


class PiiFilter(ResponseRewriter):
    """The client's answer: text masked and/or placeholders restored; with ``restore``
    the arguments of tool calls too (whole, and streamed with their own hold-back)."""

    __slots__ = ("_args", "_mapping_back")

    def __init__(self, texts: _Texts, path: str, restore: Placeholders | None) -> None:
        super().__init__(texts, path)
        self._mapping_back = restore
        self._args: dict[Any, _Restore] = {}

    def whole(self, body: bytes) -> bytes:
        body = super().whole(body)
        if self._mapping_back is None or b"<" not in body:
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        return orjson.dumps(_walk(doc, self._mapping_back.restore))

    def scrub(self, body: bytes) -> bytes:
        """The upstream's answer as telemetry may record it: every string of it masked
        (any wire format; never restored). The proxy calls this on the body it keeps."""
        texts = self._rules
        assert isinstance(texts, _Texts)
        guard = texts.guard
        if guard is None:  # restore only: the upstream saw placeholders, not values
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return texts.mask_only(body.decode("utf-8", "replace")).encode()
        return orjson.dumps(_walk(doc, texts.mask_only))

    def hide_for_cache(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """A cache entry made of the upstream's answer, as it may be kept: every string
        masked as the client's answer is (this call's placeholders; never restored, so
        no original of this call is kept); ``None`` when the detectors fail (nothing
        kept). A hit is passed through this filter again: masked again, and restored
        with the hitting call's own placeholders."""
        texts = self._rules
        assert isinstance(texts, _Texts)
        guard = texts.guard
        if guard is None:  # restore only: the upstream saw placeholders, not values
            return entry
        found: Counter[str] = Counter()
        try:
            hidden: dict[str, Any] = _walk(
                entry, lambda text: guard.mask(text, texts.mapping, found)
            )
        except DetectorFailed:
            return None
        return hidden

    def _on_event(self, raw: bytes, name: bytes | None, data: list[bytes]) -> bytes:
        if self._mapping_back is not None and (
            self._args or b"argument" in raw or b"partial_json" in raw
        ):
            doc, before = self._arguments(data)
            if doc is not None:
                encoded = orjson.dumps(doc)
                raw, data = _sse(name, encoded), [encoded]
            return before + super()._on_event(raw, name, data)
        return super()._on_event(raw, name, data)

    def _stream_of(self, key: Any) -> _Restore:
        stream = self._args.get(key)
        if stream is None:
            assert self._mapping_back is not None
            stream = self._args[key] = _Restore(self._mapping_back)
        return stream

    def _arguments(self, data: list[bytes]) -> tuple[dict[str, Any] | None, bytes]:
        """The event with placeholders restored in a streamed tool call's arguments
        (``None``: unchanged), and the events to send before it: what a call's arguments
        held back when its end comes."""
        try:
            doc = orjson.loads(data[0] if len(data) == 1 else b"\n".join(data))
        except orjson.JSONDecodeError:
            return None, b""
        if not isinstance(doc, dict):
            return None, b""
        changed = False
        for holder, field, key, final in _argument_fields(self._path, doc):
            stream = self._stream_of(key)
            text = holder[field]
            new = stream.feed(text) + (stream.flush() if final else "")
            if new != text:
                holder[field] = new
                changed = True
        before = b""
        if self._path == CHAT:
            changed = self._chat_ends(doc) or changed
        elif self._path == MESSAGES and doc.get("type") == "content_block_stop":
            rest = self._rest(("messages", doc.get("index")))
            if rest:
                delta = {"type": "input_json_delta", "partial_json": rest}
                block = {"type": "content_block_delta", "index": doc.get("index"), "delta": delta}
                before = _sse(b"content_block_delta", orjson.dumps(block))
        elif doc.get("type") == "response.function_call_arguments.done":
            rest = self._rest(("responses", doc.get("output_index")))
            if rest:
                piece = {k: v for k, v in doc.items() if k in ("item_id", "output_index")}
                piece.update(type="response.function_call_arguments.delta", delta=rest)
                before = _sse(b"response.function_call_arguments.delta", orjson.dumps(piece))
        return (doc if changed else None), before

    def _rest(self, key: Any) -> str:
        stream = self._args.pop(key, None)
        return stream.flush() if stream is not None else ""

    def _chat_ends(self, doc: dict[str, Any]) -> bool:
        """A Chat choice that finishes gets what its calls' arguments held back."""
        changed = False
        for choice in doc.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("finish_reason") is None:
                continue
            index = choice.get("index", 0)
            for key in [k for k in self._args if k[0] == "chat" and k[1] == index]:
                rest = self._rest(key)
                if rest:
                    delta = choice.setdefault("delta", {})
                    piece = {"index": key[2], "function": {"arguments": rest}}
                    delta.setdefault("tool_calls", []).append(piece)
                    changed = True
        return changed


def _sse(name: bytes | None, data: bytes) -> bytes:
    head = b"event: " + name + b"\n" if name is not None else b""
    return head + b"data: " + data + b"\n\n"


def _argument_fields(
    path: str, doc: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], str, Any, bool]]:
    """``(holder, field, stream key, last piece)`` of the arguments an event carries."""
    if path == CHAT:
        for choice in doc.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            calls = delta.get("tool_calls") if isinstance(delta, dict) else None
            for call in calls or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    slot = ("chat", choice.get("index", 0), call.get("index", 0))
                    yield function, "arguments", slot, False
    elif path == MESSAGES:
        delta = doc.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("partial_json"), str):
            yield delta, "partial_json", ("messages", doc.get("index")), False
    else:
        kind = doc.get("type")
        key = ("responses", doc.get("output_index"))
        if kind == "response.function_call_arguments.delta" and isinstance(doc.get("delta"), str):
            yield doc, "delta", key, False
        elif kind == "response.function_call_arguments.done" and isinstance(
            doc.get("arguments"), str
        ):
            yield doc, "arguments", ("done", key), True


# --------------------------------------------------------------------------- the runner


class PiiRunner(Runner):
    def __init__(self, info: PolicyInfo, settings: PiiSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self.guard = Guard(settings)
        self.on_request = "request" in settings.apply_to
        self.on_response = "response" in settings.apply_to
        self.restore = settings.restore

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        if not self.on_request:
            return None
        slots = request_slots(x.path, x.doc) + _tool_call_slots(x.path, x.doc)
        mapping = Placeholders()
        found: Counter[str] = Counter()
        try:
            masked = [
                (container, key, self.guard.mask(container[key], mapping, found))
                for container, key in slots
            ]
        except DetectorFailed:
            if self.on_error == "fail_closed" and self.mode != "observe":
                raise _unavailable(x.path) from None
            return None
        if not found:
            return None
        blocked = Counter({e: n for e, n in found.items() if self.guard.action(e) == "block"})
        if self.mode == "observe":
            raise PolicyRejected(0, {}, kind="pii_blocked" if blocked else "pii_masked")
        for container, key, text in masked:
            container[key] = text
        x.dirty = True
        if blocked:
            raise _blocked(x.path, blocked)
        x.scratch[self] = mapping
        return None

    async def pre_response(self, x: PolicyExchange) -> Decision | None:
        if self.mode == "observe" or x.path not in _FILTERED_ROUTES:
            return None
        mapping = x.scratch.get(self)
        if not isinstance(mapping, Placeholders):
            mapping = Placeholders()
        back = mapping.snapshot() if self.restore and mapping.back else None
        guard = self.guard if self.on_response else None
        if guard is None and back is None:
            return None
        x.response_filters.append(PiiFilter(_Texts(guard, mapping, back), x.path, back))
        return None


RUNNERS: dict[str, RunnerType] = {"pii": PiiRunner}
