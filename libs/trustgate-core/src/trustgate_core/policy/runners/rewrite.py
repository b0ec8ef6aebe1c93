"""Runner: ``regex_replace``, rewriting the text of requests or of responses.

Rules are compiled once, with their replacement (Go's ``$1`` / ``${name}`` / ``$$``, as
the reference's rules are written; an unknown group is empty). They apply to text only,
never to the JSON around it:

- ``target: request``: message contents, ``system``, ``instructions``, ``input``, tool
  results, embeddings' inputs; the document is marked dirty only when a rule matched.
- ``target: response``: a ``ResponseFilter`` in the client's format. A whole answer is
  parsed and its text fields rewritten (``choices[].message.content``,
  ``content[].text``, ``output[].content[].text``). A stream's text deltas (Chat
  ``choices[].delta.content``, Anthropic ``text_delta``, Responses
  ``response.output_text.delta``) are rewritten with a **bounded hold-back**: each rule
  keeps back the last ``hold`` characters of a text stream — the rule's longest possible
  match plus one character (to see a ``\\b`` or ``$`` after it), at most
  ``MAX_HOLD`` — so a match split across events is still replaced; a match longer than
  ``MAX_HOLD`` characters (an unbounded ``\\d+`` over a longer run) may be replaced in
  pieces. Held text leaves before the next event that is not a text delta, and at the
  end. Events carrying a whole text (Responses' ``*.done`` and ``response.completed``)
  are rewritten whole; everything else passes through unchanged, in order.

``observe`` changes nothing: on requests it records that a rule would have matched; on
responses it installs no filter.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.transform import RegexReplaceSettings, RegexRule
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner
from trustgate_core.policy.exchange import PolicyExchange

#: The most characters of a text stream one rule holds back.
MAX_HOLD: Final = 256

CHAT: Final = "/v1/chat/completions"
MESSAGES: Final = "/v1/messages"
COUNT_TOKENS: Final = "/v1/messages/count_tokens"
RESPONSES: Final = "/v1/responses"
EMBEDDINGS: Final = "/v1/embeddings"

_GO_REF: Final = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")

Slot = tuple[Any, Any]  # (container, key): one text field of a document


# --------------------------------------------------------------------------- rules


def _replacement(pattern: re.Pattern[str], template: str) -> str | Callable[[re.Match[str]], str]:
    """``template`` (Go's expansion syntax) as ``re.sub``'s replacement: the literal text
    itself when it names no group, else a function."""
    parts: list[str | int | None] = []  # text, a group, or None for an unknown group
    pos = 0
    for ref in _GO_REF.finditer(template):
        parts.append(template[pos : ref.start()])
        pos = ref.end()
        name = ref.group(1) or ref.group(2)
        if name is None:
            parts.append("$")
        elif name.isdigit():
            parts.append(int(name) if int(name) <= pattern.groups else None)
        else:
            parts.append(pattern.groupindex.get(name))
    parts.append(template[pos:])
    if all(isinstance(part, str) for part in parts):
        literal = "".join(str(part) for part in parts)
        return lambda _: literal

    def expand(match: re.Match[str]) -> str:
        return "".join(
            part if isinstance(part, str) else "" if part is None else (match.group(part) or "")
            for part in parts
        )

    return expand


def _hold(pattern: re.Pattern[str]) -> int:
    """Characters a stream keeps back for ``pattern``: its longest match plus one."""
    if "(?=" in pattern.pattern or "(?!" in pattern.pattern:
        return MAX_HOLD  # a lookahead reads past the match
    try:
        parser: Any = importlib.import_module("re._parser")
        _, longest = parser.parse(pattern.pattern, pattern.flags).getwidth()
    except Exception:  # another interpreter's internals: the bound
        return MAX_HOLD
    return min(int(longest) + 1, MAX_HOLD)


class Rule:
    __slots__ = ("hold", "pattern", "repl")

    def __init__(self, rule: RegexRule) -> None:
        flags = (re.IGNORECASE if rule.case_insensitive else 0) | (
            re.MULTILINE if rule.multiline else 0
        )
        self.pattern = re.compile(rule.pattern, flags)
        self.repl = _replacement(self.pattern, rule.replacement)
        self.hold = _hold(self.pattern)


class Rules:
    """The policy's rules, in order (each rewrites what the one before left)."""

    __slots__ = ("rules",)

    def __init__(self, rules: Sequence[RegexRule]) -> None:
        self.rules = tuple(Rule(rule) for rule in rules)

    def apply(self, text: str) -> str:
        for rule in self.rules:
            text = rule.pattern.sub(rule.repl, text)
        return text

    def matches(self, text: str) -> bool:
        return any(rule.pattern.search(text) is not None for rule in self.rules)

    def stream(self) -> TextStream:
        return TextStream(self.rules)


class _Stage:
    """One rule over one text stream: text in, the part that is decided out."""

    __slots__ = ("context", "pending", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.context = ""  # text already decided (for lookbehinds and ``\b``)
        self.pending = ""  # text not decided yet

    def feed(self, text: str, final: bool) -> str:
        pending = self.pending + text if self.pending else text
        context = self.context
        buf = context + pending
        start = len(context)
        hold = self.rule.hold
        limit = len(buf) if final else len(buf) - hold
        if limit <= start:
            self.pending = pending
            return ""
        out: list[str] = []
        pos = start
        repl = self.rule.repl
        for match in self.rule.pattern.finditer(buf, start):
            if not final and match.start() >= limit:
                break
            out.append(buf[pos : match.start()])
            out.append(repl(match) if callable(repl) else repl)
            pos = match.end()
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self.pending = buf[cut:]
        self.context = buf[max(0, cut - hold) : cut]
        return "".join(out)


class TextStream:
    """The rules applied to one text that arrives in pieces."""

    __slots__ = ("stages",)

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.stages = tuple(_Stage(rule) for rule in rules)

    def feed(self, text: str) -> str:
        for stage in self.stages:
            text = stage.feed(text, False)
        return text

    def flush(self) -> str:
        """What is held back, rewritten: the text has ended (or an event comes between)."""
        text = ""
        for stage in self.stages:
            text = stage.feed(text, True)
        return text

    @property
    def holding(self) -> bool:
        return any(stage.pending for stage in self.stages)


# --------------------------------------------------------------------------- requests


def _content_slots(content: Any, out: list[Slot], container: Any, key: Any) -> None:
    """The text fields of a message's ``content``: a string, or blocks/parts with
    ``text`` (tool results' own content included)."""
    if isinstance(content, str):
        out.append((container, key))
    elif isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                out.append((block, "text"))
            elif block.get("type") == "tool_result" and "content" in block:
                _content_slots(block["content"], out, block, "content")


def request_slots(path: str, doc: dict[str, Any]) -> list[Slot]:
    """The text fields of a request the model reads (never ids, roles or tool schemas)."""
    out: list[Slot] = []
    if path in (CHAT, MESSAGES, COUNT_TOKENS):
        if "system" in doc:
            _content_slots(doc["system"], out, doc, "system")
        messages = doc.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict) and "content" in message:
                    _content_slots(message["content"], out, message, "content")
    elif path == RESPONSES:
        if isinstance(doc.get("instructions"), str):
            out.append((doc, "instructions"))
        items = doc.get("input")
        if isinstance(items, str):
            out.append((doc, "input"))
        elif isinstance(items, list):
            for item in items:
                if not isinstance(item, dict):
                    continue
                if "content" in item:
                    _content_slots(item["content"], out, item, "content")
                elif isinstance(item.get("output"), str):  # a function call's output
                    out.append((item, "output"))
    elif path == EMBEDDINGS:
        items = doc.get("input")
        if isinstance(items, str):
            out.append((doc, "input"))
        elif isinstance(items, list):
            out.extend((items, i) for i, item in enumerate(items) if isinstance(item, str))
    return out


# --------------------------------------------------------------------------- responses


def _response_slots(path: str, doc: Any) -> list[Slot]:
    out: list[Slot] = []
    if not isinstance(doc, dict):
        return out
    if path == CHAT:
        for choice in doc.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and "content" in message:
                _content_slots(message["content"], out, message, "content")
    elif path == MESSAGES:
        _content_slots(doc.get("content"), out, doc, "content")
    elif path == RESPONSES:
        for item in doc.get("output") or ():
            if isinstance(item, dict) and item.get("type") == "message":
                _content_slots(item.get("content"), out, item, "content")
    return out


def _rewrite(rules: Rules, slots: list[Slot]) -> bool:
    changed = False
    for container, key in slots:
        text = container[key]
        new = rules.apply(text)
        if new != text:
            container[key] = new
            changed = True
    return changed


def _event(name: bytes | None, doc: Any) -> bytes:
    head = b"event: " + name + b"\n" if name is not None else b""
    return head + b"data: " + orjson.dumps(doc) + b"\n\n"


class ResponseRewriter:
    """A ``ResponseFilter`` for one call, in the client's format (by route)."""

    __slots__ = ("_held", "_partial", "_path", "_rules", "_templates")

    def __init__(self, rules: Rules, path: str) -> None:
        self._rules = rules
        self._path = path
        self._partial = b""  # an event not complete yet
        self._held: dict[Any, TextStream] = {}  # text stream key -> its rules' state
        # text stream key -> (event name, the last delta document) to re-emit held text
        self._templates: dict[Any, tuple[bytes | None, dict[str, Any]]] = {}

    # -- a whole answer ---------------------------------------------------------------
    def whole(self, body: bytes) -> bytes:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if _rewrite(self._rules, _response_slots(self._path, doc)):
            return orjson.dumps(doc)
        return body

    # -- a stream ---------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bytes:
        buf = self._partial + chunk if self._partial else chunk
        out: list[bytes] = []
        start = pos = 0
        name: bytes | None = None
        data: list[bytes] = []
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            line = buf[pos:end]
            pos = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                raw = buf[start:pos]
                out.append(self._on_event(raw, name, data) if data else raw)
                start, name, data = pos, None, []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        self._partial = buf[start:]
        return b"".join(out)

    def finish(self) -> bytes:
        partial, self._partial = self._partial, b""
        return self._flush() + partial

    def _on_event(self, raw: bytes, name: bytes | None, data: list[bytes]) -> bytes:
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:  # Chat's [DONE]
            return self._flush() + raw
        if not isinstance(doc, dict):
            return self._flush() + raw
        if self._path == CHAT:
            return self._chat(raw, doc)
        kind = doc.get("type")
        if self._path == MESSAGES:
            delta = doc.get("delta")
            if (
                kind == "content_block_delta"
                and isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and isinstance(delta.get("text"), str)
            ):
                return self._delta(raw, doc.get("index"), name, doc, delta, "text")
            return self._flush() + raw
        if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
            key = (doc.get("output_index"), doc.get("content_index"))
            return self._delta(raw, key, name, doc, doc, "delta")
        flushed = self._flush()
        if kind in _RESPONSES_WHOLE and _rewrite(self._rules, _responses_event_slots(doc)):
            return flushed + _event(name, doc)
        return flushed + raw

    def _delta(
        self,
        raw: bytes,
        key: Any,
        name: bytes | None,
        doc: dict[str, Any],
        holder: dict[str, Any],
        field: str,
    ) -> bytes:
        stream = self._held.get(key)
        if stream is None:
            stream = self._held[key] = self._rules.stream()
        text = holder[field]
        new = stream.feed(text)
        self._templates[key] = (name, doc)
        if new == text:
            return raw
        holder[field] = new
        return _event(name, doc)

    def _chat(self, raw: bytes, doc: dict[str, Any]) -> bytes:
        choices = doc.get("choices")
        if not choices:  # the usage chunk: after the text
            return self._flush() + raw
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            key = choice.get("index", 0)
            content = delta.get("content") if isinstance(delta, dict) else None
            stream = self._held.get(key)
            if isinstance(content, str) and isinstance(delta, dict):
                if stream is None:
                    stream = self._held[key] = self._rules.stream()
                self._templates[key] = (None, doc)
                fed = stream.feed(content)
                if fed != content:
                    delta["content"] = fed
                    changed = True
            if choice.get("finish_reason") is not None and stream is not None:
                rest = stream.flush()
                if rest and isinstance(delta, dict):
                    delta["content"] = (delta.get("content") or "") + rest
                    changed = True
                elif rest:
                    choice["delta"] = {"content": rest}
                    changed = True
        return _event(None, doc) if changed else raw

    def _flush(self) -> bytes:
        """Held text of every stream, as delta events like the last of each."""
        out = b""
        for key, stream in self._held.items():
            if not stream.holding:
                continue
            text = stream.flush()
            if not text:
                continue
            name, template = self._templates[key]
            if self._path == CHAT:
                doc: dict[str, Any] = {k: v for k, v in template.items() if k != "usage"}
                doc["choices"] = [{"index": key, "delta": {"content": text}, "finish_reason": None}]
            elif self._path == MESSAGES:
                doc = {**template, "delta": {**template["delta"], "text": text}}
            else:
                doc = {**template, "delta": text}
            out += _event(name, doc)
        return out


#: Responses' events that carry a whole text, and where it is.
_RESPONSES_WHOLE: Final = frozenset(
    {
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)


def _responses_event_slots(doc: dict[str, Any]) -> list[Slot]:
    kind = doc["type"]
    out: list[Slot] = []
    if kind == "response.output_text.done":
        if isinstance(doc.get("text"), str):
            out.append((doc, "text"))
    elif kind == "response.content_part.done":
        part = doc.get("part")
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            out.append((part, "text"))
    elif kind == "response.output_item.done":
        item = doc.get("item")
        if isinstance(item, dict) and item.get("type") == "message":
            _content_slots(item.get("content"), out, item, "content")
    else:
        out = _response_slots(RESPONSES, doc.get("response"))
    return out


# --------------------------------------------------------------------------- the runner

#: The routes whose answers carry text, in the client's format.
_FILTERED_ROUTES: Final = frozenset({CHAT, MESSAGES, RESPONSES})


class RegexReplaceRunner(Runner):
    def __init__(self, info: PolicyInfo, settings: RegexReplaceSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self.rules = Rules(settings.rules)
        self.target = settings.target

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        if self.target != "request":
            return None
        slots = request_slots(x.path, x.doc)
        if self.mode == "observe":
            if any(self.rules.matches(container[key]) for container, key in slots):
                raise PolicyRejected(0, {}, kind="request_rewritten")
            return None
        if _rewrite(self.rules, slots):
            x.dirty = True
        return None

    async def pre_response(self, x: PolicyExchange) -> Decision | None:
        if self.target == "response" and self.mode != "observe" and x.path in _FILTERED_ROUTES:
            x.response_filters.append(ResponseRewriter(self.rules, x.path))
        return None
