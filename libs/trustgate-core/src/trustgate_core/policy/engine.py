"""The policy engine: a consumer's policies compiled into a chain once per configuration
change, then run at each stage of every call (reference §6 "Execution model").

Compiling (``PolicyEngine.compile``):

- the gateway's plan limits (``entitlements``) first, when it has any;
- then the gateway's enabled global policies and the consumer's attached ones; a
  consumer's own policy replaces the global ones of its plugin (several of one plugin,
  a per-minute and a per-day limit say, all run);
- ordered by priority, then plugin id, then policy id; consecutive ``parallel`` policies
  of one priority form a batch run concurrently, split where two would mutate the same
  thing (request body, response body, metadata); a policy with ``parallel: false`` runs
  alone.

Running (``Chain.run``): the first rejection stops the stage. Modes: ``enforce`` blocks;
``observe`` records what the policy would have done and lets the call on; ``throttle`` is
the runner's own (it waits, then reports ``throttle``). A policy whose shared counters
are unreachable follows its ``on_error``: ``fail_open`` lets the call on (counted in
``PolicyEngine.failed_open``), ``fail_closed`` answers 503 ``rate_limit_unavailable``.
Every decision is recorded on the exchange (``PolicyRecord``), for the request event.

At ``post_response`` nothing can be refused any more (the answer is out): the stage runs
after every call that reached ``pre_request``, whatever its outcome, so a budget is
settled or released exactly once; what its runners raise is recorded, never raised.

Runners (the plugins' behaviour) are handed in by plugin id; a policy whose plugin has no
runner on this plane is left out of the chain, with one warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import ValidationError

from trustgate_core.counters.base import CountersUnavailable
from trustgate_core.errors import PolicyRejected, RateLimitUnavailable, TrustGateError
from trustgate_core.models import Consumer, Gateway, Policy
from trustgate_core.models.policy import Mode, Stage
from trustgate_core.plugins import STAGES, resolve_plugin
from trustgate_core.plugins.base import Capability, OnError
from trustgate_core.policy.exchange import PolicyExchange

log = logging.getLogger(__name__)

Decision = Literal["block", "observe", "throttle", "pass"]


class PolicyRecord:
    """One policy's decision at one stage, as the request event reports it."""

    __slots__ = (
        "decision",
        "error",
        "latency",
        "name",
        "plugin",
        "policy_id",
        "stage",
        "status_code",
    )

    def __init__(
        self,
        runner: Runner,
        stage: Stage,
        decision: Decision,
        latency: float,
        status_code: int = 0,
        error: str | None = None,
    ) -> None:
        self.policy_id = runner.id
        self.name = runner.name
        self.plugin = runner.plugin
        self.stage = stage
        self.decision = decision
        self.latency = latency  # seconds
        self.status_code = status_code
        self.error = error

    def as_event(self) -> dict[str, Any]:
        """The request event's ``policy_chain`` entry (``PolicyDecision``), as a mapping
        orjson encodes directly."""
        return {
            "policy_id": self.policy_id,
            "name": self.name,
            "plugin": self.plugin,
            "stage": self.stage,
            "decision": self.decision,
            "latency_ms": round(self.latency * 1000.0, 3),
            "status_code": self.status_code or None,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """What the engine knows of a policy besides its plugin's settings."""

    id: UUID | None  # None: the gateway's plan limits
    name: str
    plugin: str
    mode: Mode = "enforce"
    priority: int = 0
    parallel: bool = True
    stages: frozenset[Stage] = frozenset()
    mutates: frozenset[Capability] = frozenset()
    #: counted per gateway (the reference's ``global`` scope), not per consumer
    global_: bool = False


@dataclass(slots=True)
class PolicyDeps:
    """What runners share in one process: the limit counters (Redis, or in-process), the
    price book. Typed loosely here; each runner knows what it takes."""

    counters: Any = None
    prices: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Runner:
    """A policy compiled for the data plane. Subclasses parse nothing per call: what their
    settings imply is computed in ``__init__``. A stage's method returns ``None`` (the
    policy let the call pass) or a decision (``throttle``); it refuses by raising
    ``PolicyRejected`` and needs shared counters it cannot reach by raising
    ``CountersUnavailable``."""

    def __init__(self, info: PolicyInfo, settings: Any, deps: PolicyDeps) -> None:
        self.info = info
        self.id = info.id
        self.name = info.name
        self.plugin = info.plugin
        self.mode: Mode = info.mode
        self.settings = settings
        self.deps = deps
        on_error = getattr(settings, "on_error", None)
        self.on_error: OnError = (
            on_error if on_error in ("fail_open", "fail_closed") else "fail_open"
        )
        self.steps: dict[Stage, Callable[[PolicyExchange], Awaitable[Decision | None]]] = {
            stage: getattr(self, stage) for stage in STAGES if stage in info.stages
        }

    def allows_tool(self, name: str) -> bool:
        """Whether this policy lets a caller see and call the tool ``name`` (an MCP
        ``tool_allowlist`` says no to some)."""
        return True

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        return None

    async def post_request(self, x: PolicyExchange) -> Decision | None:
        return None

    async def pre_response(self, x: PolicyExchange) -> Decision | None:
        return None

    async def post_response(self, x: PolicyExchange) -> Decision | None:
        return None


RunnerType = Callable[[PolicyInfo, Any, PolicyDeps], Runner]
#: Builds the runner of a gateway's plan limits (``entitlements``), or ``None``.
GatewayRunner = Callable[[Gateway, PolicyDeps], Runner | None]

Batch = tuple[Runner, ...]


class Chain:
    """A consumer's compiled policies. ``stages`` names the stages with work (the caller
    runs only those); ``runners`` is the chain in order (the CORS runner answers
    preflights through ``find``); ``allows_tool`` filters an MCP ``tools/list``."""

    __slots__ = ("_batches", "_engine", "_tool_gates", "runners", "stages")

    def __init__(self, engine: PolicyEngine, runners: tuple[Runner, ...]) -> None:
        self._engine = engine
        self.runners = runners
        self._batches: dict[Stage, tuple[Batch, ...]] = {}
        for stage in STAGES:
            batches = _batches([r for r in runners if stage in r.steps], stage)
            if batches:
                self._batches[stage] = batches
        self.stages: frozenset[Stage] = frozenset(self._batches)
        # an observed allowlist hides nothing: it only records what it would refuse
        self._tool_gates = tuple(
            r for r in runners if r.plugin == "tool_allowlist" and r.mode != "observe"
        )

    def allows_tool(self, name: str) -> bool:
        """Whether the consumer may see and call the tool ``name`` (its exposed name):
        every enforced ``tool_allowlist`` of the chain allows it (True without one)."""
        return all(gate.allows_tool(name) for gate in self._tool_gates)

    def find(self, plugin: str) -> Runner | None:
        for runner in self.runners:
            if runner.plugin == plugin:
                return runner
        return None

    async def run(self, stage: Stage, x: PolicyExchange) -> None:
        batches = self._batches.get(stage)
        if batches is None:
            return
        started = perf_counter()
        try:
            for batch in batches:
                if len(batch) == 1:
                    await self._engine.step(batch[0], stage, x)
                    continue
                outcomes = await asyncio.gather(
                    *(self._engine.step(runner, stage, x) for runner in batch),
                    return_exceptions=True,
                )
                for outcome in outcomes:  # the first refusal in chain order wins
                    if isinstance(outcome, BaseException):
                        raise outcome
        finally:
            x.policies_time += perf_counter() - started


def _batches(runners: list[Runner], stage: Stage) -> tuple[Batch, ...]:
    out: list[Batch] = []
    current: list[Runner] = []
    taken: set[Capability] = set()
    for runner in runners:
        info = runner.info
        joins = (
            current
            and info.parallel
            and current[0].info.parallel
            and info.priority == current[0].info.priority
            and not (info.mutates & taken)
        )
        if not joins and current:
            out.append(tuple(current))
            current, taken = [], set()
        current.append(runner)
        taken |= info.mutates
    if current:
        out.append(tuple(current))
    return tuple(out)


_NOTHING: Final[tuple[Runner, ...]] = ()


class PolicyEngine:
    def __init__(
        self,
        runners: Mapping[str, RunnerType],
        deps: PolicyDeps,
        *,
        plane: str = "LLM",
        gateway_runner: GatewayRunner | None = None,
    ) -> None:
        self.runners = runners
        self.deps = deps
        self.plane = plane
        self.gateway_runner = gateway_runner
        #: calls let through because a policy's counters were unreachable, by plugin
        self.failed_open: Counter[str] = Counter()
        # a runner is kept while its policy (or gateway) is the same object: what it
        # compiled from its settings survives changes elsewhere
        self._compiled: dict[UUID, tuple[Policy, Runner | None]] = {}
        self._plans: dict[UUID, tuple[Gateway, Runner | None]] = {}
        self._warned: set[UUID] = set()

    # -- compiling ------------------------------------------------------------------------
    def compile(
        self, gateway: Gateway, consumer: Consumer, policies: Mapping[UUID, Policy]
    ) -> Chain:
        own = [
            policy
            for policy_id in consumer.policy_ids
            if (policy := policies.get(policy_id)) is not None
            and policy.enabled
            and policy.gateway_id == gateway.id
        ]
        overridden = {_plugin_id(policy) for policy in own if not policy.global_}
        chosen = {policy.id: policy for policy in own}
        for policy in policies.values():
            if (
                policy.global_
                and policy.enabled
                and policy.gateway_id == gateway.id
                and _plugin_id(policy) not in overridden
            ):
                chosen[policy.id] = policy
        ordered = sorted(
            chosen.values(),
            key=lambda p: (p.priority, _plugin_id(p), str(p.id)),
        )
        runners = [r for r in map(self._runner, ordered) if r is not None]
        plan = self._plan_runner(gateway)
        if plan is not None:
            runners.insert(0, plan)
        return Chain(self, tuple(runners)) if runners else Chain(self, _NOTHING)

    def forget(self, alive: Mapping[UUID, Policy]) -> None:
        """Drop runners of policies that no longer exist."""
        self._compiled = {k: v for k, v in self._compiled.items() if k in alive}

    def _plan_runner(self, gateway: Gateway) -> Runner | None:
        if self.gateway_runner is None or not gateway.entitlements:
            return None
        held = self._plans.get(gateway.id)
        if held is None or held[0] is not gateway:
            held = self._plans[gateway.id] = (gateway, self.gateway_runner(gateway, self.deps))
        return held[1]

    def _runner(self, policy: Policy) -> Runner | None:
        held = self._compiled.get(policy.id)
        if held is not None and held[0] is policy:
            return held[1]
        runner = self._build(policy)
        self._compiled[policy.id] = (policy, runner)
        return runner

    def _build(self, policy: Policy) -> Runner | None:
        spec = resolve_plugin(policy.slug)
        make = self.runners.get(spec.id) if spec is not None else None
        if spec is None or make is None or not spec.supports_protocol(self.plane):
            self._warn(policy, "its plugin is not enforced on this plane; it is left out")
            return None
        try:
            settings = spec.settings_model.model_validate(policy.settings)
        except ValidationError:
            self._warn(policy, "its stored settings no longer validate; it is left out")
            return None
        stages = frozenset(policy.stages) & frozenset(spec.stages)
        info = PolicyInfo(
            id=policy.id,
            name=policy.name,
            plugin=spec.id,
            mode=policy.mode,
            priority=policy.priority,
            parallel=policy.parallel,
            stages=(stages or frozenset(spec.default_stages)) | frozenset(spec.mandatory_stages),
            mutates=spec.mutates,
            global_=policy.global_,
        )
        return make(info, settings, self.deps)

    def _warn(self, policy: Policy, why: str) -> None:
        if policy.id not in self._warned:
            self._warned.add(policy.id)
            log.warning("policy %s (%s, %s): %s", policy.id, policy.name, policy.slug, why)

    # -- running --------------------------------------------------------------------------
    async def step(self, runner: Runner, stage: Stage, x: PolicyExchange) -> None:
        """Run one policy at one stage and record what it decided."""
        started = perf_counter()
        decision: Decision = "pass"
        status = 0
        error: str | None = None
        try:
            decided = await runner.steps[stage](x)
            if decided is not None:
                decision = decided
        except PolicyRejected as refusal:
            status = refusal.status
            error = refusal.code
            if runner.mode == "observe" or stage == "post_response":
                decision = "observe" if runner.mode == "observe" else "block"
            else:
                decision = "block"
                raise
        except CountersUnavailable:
            error = "counters_unavailable"
            if self._closed(runner, stage):
                status, decision = RateLimitUnavailable.status, "block"
                raise RateLimitUnavailable(
                    f"the {runner.plugin} policy cannot reach its counters"
                ) from None
        except TrustGateError as refusal:  # a runner's own gateway error (a bad request)
            status, error, decision = refusal.status, refusal.code, "block"
            if stage != "post_response":
                raise
        except Exception:
            log.exception("policy %s (%s) failed at %s", runner.id, runner.plugin, stage)
            error = "internal_error"
            if self._closed(runner, stage):
                status, decision = RateLimitUnavailable.status, "block"
                raise RateLimitUnavailable(f"the {runner.plugin} policy failed") from None
        finally:
            x.records.append(
                PolicyRecord(runner, stage, decision, perf_counter() - started, status, error)
            )

    def _closed(self, runner: Runner, stage: Stage) -> bool:
        """Whether a runner that could not decide refuses the call (``fail_closed``, while
        it can still be refused); a call let through is counted."""
        if (
            runner.on_error == "fail_closed"
            and runner.mode != "observe"
            and stage != "post_response"
        ):
            return True
        self.failed_open[runner.plugin] += 1
        return False


def _plugin_id(policy: Policy) -> str:
    spec = resolve_plugin(policy.slug)
    return spec.id if spec is not None else policy.slug
