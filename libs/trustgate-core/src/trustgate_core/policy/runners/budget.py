"""Runners: ``token_rate_limiter`` — token and dollar budgets, reserved before the call and
settled after it; and its cost cap.

The reference charges a budget after the call (its fixed window is read before, added to
after), so every call in flight passes a nearly spent budget. Here a call is admitted by
**reserving** its estimate (``pre_request``): the prompt estimated from the request's bytes,
plus ``max_tokens`` (or ``default_output_tokens``) for the answer, added at once to every
budget that applies (the aggregate, the legacy window, the model's best rule) only if each
has room. ``post_response`` **settles** the reservation to the real usage, **releases** it
when no answer came or a policy answered the call (a ``semantic_cache`` hit consumed
nothing upstream: it spends no tokens and no dollars), and charges a client that left a
stream its prompt and the output it was delivered (counted by a pass-through response
filter, one content delta ≈ one token). A hit is admitted like any call, though: a budget
without room for its reservation refuses it before the cache is looked up.
Concurrent calls then overshoot a budget by the estimates' error, not by the number in
flight; the estimate is conservative (bytes/3 over the whole body) so the prompt side does
not overshoot at all.

Budgets are fixed windows keyed
``trl:{policy_id}:{global|consumer}:{subject}[:hdr:{value}][:model:{rule}|:window]:{start}``
(``start`` in epoch seconds); dollars are counted in micro-USD. A model without a price
under a dollar budget is refused (403 ``model_price_unknown``): its bill could not be
metered.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

from trustgate_core.durations import parse_duration
from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.tokens import BudgetLimit, CostCap, TokenRateLimiterSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import PolicyExchange
from trustgate_core.pricing import CustomPricing, ModelPrice, PriceBook, cost_of

T = TypeVar("T")

COUNT_TOKENS: Final = "/v1/messages/count_tokens"
EMBEDDINGS: Final = "/v1/embeddings"
#: The prompt estimate: request bytes per token. English runs ~4 characters a token and
#: the body's JSON adds its keys, so this overestimates (never under-reserves) text.
BYTES_PER_TOKEN: Final = 3
#: An image or file inline as base64 counts this many tokens, whatever its size.
BLOB_TOKENS: Final = 1600
MICRO: Final = 1_000_000
#: A window's key outlives its end by this much (a call settling late still finds it).
KEY_GRACE_MS: Final = 60_000
_MEMO_MAX: Final = 1024
_OUTPUT_FIELDS: Final = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_LEGACY_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_DOWNGRADED: Final = b"x-neuraltrust-model-downgraded"

# What a stream delivers, per inbound route (the client's wire format): the markers of a
# content delta, and of the stream's last event.
_STREAM_MARKS: Final[dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]]] = {
    "/v1/chat/completions": (
        (b'"content":"', b'"content": "', b'"arguments":"', b'"arguments": "'),
        (b"data: [DONE]",),
    ),
    "/v1/messages": ((b'"content_block_delta"',), (b'"message_stop"',)),
    "/v1/responses": (
        (b'.delta"',),
        (b'"response.completed"', b'"response.incomplete"'),
    ),
}


# -- estimating --------------------------------------------------------------------------


def estimate_prompt_tokens(body: bytes, doc: Mapping[str, Any]) -> int:
    """The prompt's tokens, estimated from the request: its bytes / ``BYTES_PER_TOKEN``,
    rounded up, with each inline base64 image or file counted ``BLOB_TOKENS``."""
    size = len(body)
    if b"base64" not in body:
        return -(-size // BYTES_PER_TOKEN)
    blobs, blob_bytes = _blobs(doc)
    return -(-max(size - blob_bytes, 0) // BYTES_PER_TOKEN) + blobs * BLOB_TOKENS


def _blobs(doc: Mapping[str, Any]) -> tuple[int, int]:
    """How many base64 payloads ``doc`` holds (Anthropic ``source`` blocks, ``data:`` URLs)
    and their length."""
    count = size = 0
    stack: list[Any] = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            data = value.get("data")
            if value.get("type") == "base64" and isinstance(data, str):
                count, size = count + 1, size + len(data)
            else:
                stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and value.startswith("data:") and ";base64," in value[:128]:
            count, size = count + 1, size + len(value)
    return count, size


def requested_output_tokens(doc: Mapping[str, Any]) -> int | None:
    """The request's own cap on its answer (``max_tokens`` and its route's synonyms)."""
    for field in _OUTPUT_FIELDS:
        value = doc.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def micro_usd(usd: float) -> int:
    return round(usd * MICRO)


def split_model(model: str | None) -> tuple[str | None, str | None]:
    """``(model, provider)`` of a model intent: ``@provider/model`` names both."""
    if model and model.startswith("@"):
        provider, sep, name = model[1:].partition("/")
        if sep and provider and name:
            return name, provider
    return model, None


# -- compiled settings -------------------------------------------------------------------


class BestMatch(Generic[T]):
    """Values by model slug or glob (``*``): the exact slug wins, then the glob with the
    most literal characters (the first listed on a tie). Lookups are memoised (bounded:
    model names come from clients)."""

    __slots__ = ("_exact", "_globs", "_memo")

    def __init__(self, items: Iterable[tuple[str, T]]) -> None:
        self._exact: dict[str, T] = {}
        globs: list[tuple[int, int, re.Pattern[str], T]] = []
        for n, (pattern, value) in enumerate(items):
            if "*" in pattern:
                regex = re.compile(".*".join(map(re.escape, pattern.split("*"))), re.DOTALL)
                globs.append((-(len(pattern) - pattern.count("*")), n, regex, value))
            else:
                self._exact.setdefault(pattern, value)
        globs.sort(key=lambda g: (g[0], g[1]))
        self._globs = [(regex, value) for _, _, regex, value in globs]
        self._memo: dict[str, T | None] = {}

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs)

    def find(self, model: str) -> T | None:
        found = self._exact.get(model)
        if found is not None or not self._globs:
            return found
        if model in self._memo:
            return self._memo[model]
        found = next((value for regex, value in self._globs if regex.fullmatch(model)), None)
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[model] = found
        return found


@dataclass(frozen=True, slots=True)
class Budget:
    """One fixed-window budget: ``tag`` places it in the key after the subject."""

    tag: str
    maximum: int  # tokens, or micro-USD
    seconds: int
    window: str  # as configured: "1h"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """USD per 1k tokens; ``None``: no ceiling on that side."""

    max_input: float | None
    max_output: float | None


class CostCeilings:
    """A compiled ``cost_cap``: the ceiling for a model (its best override, the fields it
    leaves out taken from the cap's own), and what a violation does."""

    __slots__ = ("default", "downgrade_to", "overrides", "unknown")

    def __init__(self, cap: CostCap) -> None:
        self.default = Ceiling(cap.max_input_cost_per_1k_tokens, cap.max_output_cost_per_1k_tokens)
        self.overrides = BestMatch(
            (
                pattern,
                Ceiling(
                    _first(ceiling.max_input_cost_per_1k_tokens, self.default.max_input),
                    _first(ceiling.max_output_cost_per_1k_tokens, self.default.max_output),
                ),
            )
            for pattern, ceiling in cap.per_model_overrides.items()
        )
        self.downgrade_to = cap.downgrade_to if cap.behavior_on_violation == "downgrade" else None
        self.unknown = cap.unknown_model

    def ceiling(self, model: str | None) -> Ceiling:
        found = self.overrides.find(model) if model else None
        return self.default if found is None else found


def _first(value: float | None, fallback: float | None) -> float | None:
    return fallback if value is None else value


def _budget(tag: str, limit: BudgetLimit, scale: int) -> Budget:
    seconds = math.ceil(parse_duration(limit.time_window, bare=None))
    return Budget(tag, round(limit.max * scale), seconds, limit.time_window)


# -- per call ----------------------------------------------------------------------------


class Delivered:
    """A stream's output as the client received it (a pass-through response filter):
    content deltas seen, and whether its last event went out."""

    __slots__ = ("complete", "count", "ends", "marks", "started")

    def __init__(self, marks: tuple[bytes, ...], ends: tuple[bytes, ...]) -> None:
        self.marks = marks
        self.ends = ends
        self.count = 0
        self.started = False
        self.complete = False

    def whole(self, body: bytes) -> bytes:
        return body

    def feed(self, chunk: bytes) -> bytes:
        self.started = True
        for mark in self.marks:
            self.count += chunk.count(mark)
        if not self.complete:
            self.complete = any(end in chunk for end in self.ends)
        return chunk

    def finish(self) -> bytes:
        return b""


class Held:
    """A call's reservation, from ``pre_request`` to ``post_response``."""

    __slots__ = ("amount", "delivered", "keys", "price", "prompt")

    def __init__(
        self, keys: Sequence[str], amount: int, prompt: int, price: ModelPrice | None
    ) -> None:
        self.keys = keys
        self.amount = amount
        self.prompt = prompt  # the prompt estimate, for a call cut short
        self.price = price
        self.delivered: Delivered | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reservation that did not fit: the first budget without room, what it has used
    and when its window ends (epoch seconds)."""

    budget: Budget
    used: int
    end: float


class TokenBudgetRunner(Runner):
    def __init__(
        self, info: PolicyInfo, settings: TokenRateLimiterSettings, deps: PolicyDeps
    ) -> None:
        super().__init__(info, settings, deps)
        self.dollars = settings.unit == "dollars"
        scale = MICRO if self.dollars else 1
        common: list[Budget] = []
        if settings.aggregate is not None:
            common.append(_budget("", settings.aggregate, scale))
        if settings.window is not None:
            seconds = _LEGACY_SECONDS[settings.window.unit]
            label = f"1{settings.window.unit[0]}"
            common.append(Budget(":window", round(settings.window.max * scale), seconds, label))
        self.common: tuple[Budget, ...] = tuple(common)
        self.rules = BestMatch(
            (rule.model, _budget(f":model:{rule.model}", rule, scale))
            for rule in settings.rules or ()
        )
        self.budgeted = bool(self.common or self.rules)
        self.counting = settings.counting
        self.count_cache_reads = settings.count_cache_reads
        self.default_output = settings.default_output_tokens
        self.downgrade_to = (
            settings.downgrade_to if settings.behavior_on_exceeded == "downgrade_model" else None
        )
        self.group_by = (settings.group_by_header or "").lower().encode() or None
        self.custom = (
            CustomPricing({k: v.model_dump() for k, v in settings.custom_pricing.items()})
            if settings.custom_pricing
            else None
        )
        cap = settings.cost_cap
        self.cap = CostCeilings(cap) if cap is not None and cap.enabled else None
        self.prices: PriceBook = deps.prices if deps.prices is not None else PriceBook.default()
        self.counters: Any = deps.counters
        self.exceeded = "dollar_budget_exceeded" if self.dollars else "token_budget_exceeded"
        self.observe = self.mode == "observe"
        # consumer id -> (the consumer as last seen, key prefix, scope)
        self._subjects: dict[UUID, tuple[object, str, str]] = {}

    # -- pre_request -----------------------------------------------------------------------
    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        if x.path == COUNT_TOKENS:
            return None
        would: PolicyRejected | None = None  # observe: what enforce would have refused
        if self.cap is not None:
            would = self._cap(x)
            if would is not None and not self.observe:
                raise would
        if self.budgeted:
            refused = await self._reserve(x)
            if refused is not None:
                if not self.observe:
                    raise refused
                would = would or refused
        if would is not None:
            raise would
        return None

    def _cap(self, x: PolicyExchange) -> PolicyRejected | None:
        """The cost cap: ``None`` when the model is within it (or was downgraded)."""
        assert self.cap is not None
        cap = self.cap
        model = x.requested_model
        name, provider = split_model(model)
        price = self._price(name, provider, x)
        ceiling = cap.ceiling(name)
        if price is None:
            if cap.unknown == "pass_through":
                return None
            over = True
        else:
            over = _above(price.input, ceiling.max_input) or _above(
                price.output, ceiling.max_output
            )
        if not over:
            return None
        if cap.downgrade_to is not None and not (price is None and cap.unknown == "reject"):
            if not self.observe and model != cap.downgrade_to:
                self._downgrade(x, model, cap.downgrade_to)
                return None
        return PolicyRejected(
            403,
            {
                "error": {
                    "type": "model_too_expensive",
                    "model": model,
                    "input_price": _per_1k(price.input) if price else None,
                    "output_price": _per_1k(price.output) if price else None,
                    "max_input": ceiling.max_input,
                    "max_output": ceiling.max_output,
                }
            },
            kind="model_too_expensive",
        )

    async def _reserve(self, x: PolicyExchange) -> PolicyRejected | None:
        """Reserve the call's estimate on its budgets (downgrading once when the policy
        says so); a refusal to raise, else ``None``."""
        prefix, scope = self._subject(x)
        prompt = estimate_prompt_tokens(x.body, x.doc)
        output = (
            0 if x.path == EMBEDDINGS else requested_output_tokens(x.doc) or self.default_output
        )
        model = x.requested_model
        outcome = await self._try(x, model, prefix, scope, prompt, output)
        target = self.downgrade_to
        if isinstance(outcome, Refusal) and target and not self.observe and model != target:
            self._downgrade(x, model, target)
            outcome = await self._try(x, target, prefix, scope, prompt, output)
        if isinstance(outcome, Refusal):
            return self._exceeded(outcome, scope)
        return outcome

    async def _try(
        self,
        x: PolicyExchange,
        model: str | None,
        prefix: str,
        scope: str,
        prompt: int,
        output: int,
    ) -> Refusal | PolicyRejected | None:
        """Reserve for ``model``: ``None`` when reserved (in observe mode, always), a
        ``Refusal`` when a budget has no room, a rejection when the model is unpriced."""
        name, provider = split_model(model)
        rule = self.rules.find(name) if name and self.rules else None
        budgets = self.common if rule is None else (*self.common, rule)
        if not budgets:
            return None
        price: ModelPrice | None = None
        if self.dollars:
            price = self._price(name, provider, x)
            if price is None:
                return _unpriced(model)
            usd = 0.0
            if self.counting != "output":
                usd += prompt * price.input
            if self.counting != "input":
                usd += output * price.output
            amount = math.ceil(usd * MICRO)
        else:
            amount = (prompt if self.counting != "output" else 0) + (
                output if self.counting != "input" else 0
            )
        now = time.time()
        keys: list[str] = []
        maxima: list[int] = []
        ttls: list[int] = []
        ends: list[float] = []
        for budget in budgets:
            start = int(now // budget.seconds) * budget.seconds
            end = start + budget.seconds
            keys.append(f"{prefix}{budget.tag}:{start}")
            maxima.append(budget.maximum)
            ttls.append(int((end - now) * 1000) + KEY_GRACE_MS)
            ends.append(end)
        got = await self.counters.reserve(keys, maxima, amount, ttls, force=self.observe)
        if got.allowed or self.observe:
            held = x.scratch[self.id] = Held(keys, amount, prompt, price)
            if x.stream:  # an answer cut short is charged the output it delivered
                marks = _STREAM_MARKS.get(x.path)
                if marks is not None:
                    held.delivered = Delivered(*marks)
                    x.response_filters.append(held.delivered)
        if not got.allowed:
            i = got.blocked
            return Refusal(budgets[i], got.used[i], ends[i])
        if not self.observe:
            tight = min(range(len(budgets)), key=lambda i: maxima[i] - got.used[i])
            x.response_headers.extend(
                self._headers(budgets[tight], got.used[tight], ends[tight], scope, now)
            )
        return None

    def _exceeded(self, refusal: Refusal, scope: str) -> PolicyRejected:
        budget = refusal.budget
        now = time.time()
        headers = [
            (b"retry-after", str(max(math.ceil(refusal.end - now), 1)).encode()),
            *self._headers(budget, refusal.used, refusal.end, scope, now),
        ]
        body = {"error": {"type": self.exceeded, "scope": scope, "window": budget.window}}
        return PolicyRejected(429, body, tuple(headers), kind=self.exceeded)

    def _headers(
        self, budget: Budget, used: int, end: float, scope: str, now: float
    ) -> list[tuple[bytes, bytes]]:
        remaining = max(budget.maximum - used, 0)
        reset = f"{max(math.ceil(end - now), 0)}s".encode()
        if not self.dollars:
            return [
                (b"x-ratelimit-limit-tokens", str(budget.maximum).encode()),
                (b"x-ratelimit-remaining-tokens", str(remaining).encode()),
                (b"x-ratelimit-reset-tokens", reset),
            ]
        return [
            (b"x-budget-unit", b"dollars"),
            (b"x-budget-scope", scope.encode()),
            (b"x-budget-window", budget.window.encode()),
            (b"x-budget-limit-usd", _usd(budget.maximum)),
            (b"x-budget-remaining-usd", _usd(remaining)),
            (b"x-budget-reset", reset),
        ]

    def _subject(self, x: PolicyExchange) -> tuple[str, str]:
        """The key prefix up to the subject (and the header's group) and the scope: the
        gateway for a global policy, else the consumer."""
        consumer = x.consumer
        held = self._subjects.get(consumer.id)
        if held is None or held[0] is not consumer:
            if self.info.global_:
                scope, subject = "global", x.gateway.id
            else:
                scope, subject = "consumer", consumer.id
            if len(self._subjects) >= _MEMO_MAX:
                self._subjects.clear()
            held = self._subjects[consumer.id] = (
                consumer,
                f"trl:{self.id}:{scope}:{subject}",
                scope,
            )
        prefix = held[1]
        if self.group_by is not None:
            value = x.header(self.group_by)
            if value:
                prefix = f"{prefix}:hdr:{value[:128]}"
        return prefix, held[2]

    def _price(
        self, name: str | None, provider: str | None, x: PolicyExchange
    ) -> ModelPrice | None:
        return self.prices.price(name, provider or x.provider, self.custom)

    def _downgrade(self, x: PolicyExchange, model: str | None, target: str) -> None:
        x.set_model(target)
        x.response_headers.append((_DOWNGRADED, f"{model}→{target}".encode()))

    # -- post_response: settle -------------------------------------------------------------
    async def post_response(self, x: PolicyExchange) -> Decision | None:
        held = x.scratch.pop(self.id, None)
        if not isinstance(held, Held):
            return None
        delta = self._charge(x, held) - held.amount
        if delta:
            self.counters.adjust_soon(held.keys, delta)
        return None

    def _charge(self, x: PolicyExchange, held: Held) -> int:
        """What the call really spent: its usage; for a call cut short (the client left,
        the stream broke) its prompt and the output delivered; nothing when no answer came,
        nor when a policy answered it (a cache hit: no upstream call, whatever usage the
        replayed answer tells)."""
        if x.answer is not None:
            return 0
        usage = x.usage
        delivered = held.delivered
        cut = x.status == 499 or (
            delivered is not None and delivered.started and not delivered.complete
        )
        if not cut and usage is not None:
            return self._measure(x, held, usage)
        if not cut:
            return 0
        prompt = _tokens(usage, "prompt_tokens") if usage else 0
        partial = {
            "prompt_tokens": prompt or held.prompt,
            "cached_input_tokens": _tokens(usage, "cached_input_tokens") if prompt else 0,
            "completion_tokens": delivered.count if delivered is not None else 0,
        }
        return self._measure(x, held, partial)

    def _measure(self, x: PolicyExchange, held: Held, usage: Mapping[str, Any]) -> int:
        if self.dollars:
            name, provider = split_model(x.model)
            price = (self._price(name, provider, x) if name else None) or held.price
            if price is None:
                return held.amount
            cost = cost_of(usage, price)
            if self.custom is not None:
                x.set_cost(cost)
            if self.counting == "input":
                return micro_usd(cost.prompt_usd + cost.cached_usd)
            if self.counting == "output":
                return micro_usd(cost.completion_usd)
            return micro_usd(cost.total_usd)
        prompt = _tokens(usage, "prompt_tokens")
        if not self.count_cache_reads:
            prompt -= min(_tokens(usage, "cached_input_tokens"), prompt)
        completion = _tokens(usage, "completion_tokens")
        if self.counting == "input":
            return prompt
        if self.counting == "output":
            return completion
        return prompt + completion


def _tokens(usage: Mapping[str, Any] | None, key: str) -> int:
    value = usage.get(key) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _above(per_token: float, per_1k_ceiling: float | None) -> bool:
    return per_1k_ceiling is not None and per_token * 1000 > per_1k_ceiling * (1 + 1e-9)


def _per_1k(per_token: float) -> float:
    return round(per_token * 1000, 9)


def _usd(micros: int) -> bytes:
    return f"{micros / MICRO:.6f}".encode()


def _unpriced(model: str | None) -> PolicyRejected:
    return PolicyRejected(
        403,
        {
            "error": {
                "type": "model_price_unknown",
                "model": model,
                "message": (
                    f"the model {model!r} has no price, so a dollar budget cannot meter it:"
                    " add it to the policy's custom_pricing"
                ),
            }
        },
    )


def _runner(info: PolicyInfo, settings: Any, deps: PolicyDeps) -> Runner:
    return TokenBudgetRunner(info, settings, deps)


RUNNERS: dict[str, RunnerType] = {"token_rate_limiter": _runner}
