"""How the proxy spreads and rescues a consumer's traffic: the router each consumer gets
(its strategy, shared route health, retries and fallback chain), built once per process
from the settings (``Routing``).

A request's way through its candidates (``RouteAttempts``):

1. the strategy orders the pool; routes that route health says are out are skipped (a
   route whose cooldown has passed is tried when this replica wins its half-open trial);
   if every route is out, the one that failed longest ago is tried rather than none;
2. a retryable failure (no answer, 5xx, 429, 408, a 2xx error body when the
   ``provider_error`` trigger is on) is retried on the same route up to
   ``PROVIDER_MAX_RETRIES`` times, after a short jittered exponential backoff, or after
   the upstream's ``Retry-After`` when that is short; a timeout, or a longer
   ``Retry-After``, moves on at once. Then the next route of the pool;
3. once the pool is exhausted, the fallback chain, in order, when the last failure
   matches one of its triggers; a context-window or content-filter refusal goes straight
   to the chain when its trigger is on (the pool serves the same model) and is final
   otherwise, like any other 4xx;
4. ``budget.max_attempts`` caps the attempts, ``budget.max_total_latency_ms`` starts none
   past its deadline.

Nothing here runs once a byte has reached the client: the pipeline stops asking.
Every attempt is reported to route health (``retry_after`` and the registry's
``health_checks`` with it) and to the strategy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit
from uuid import UUID

import aiohttp

from trustgate_core.errors import TrustGateError
from trustgate_core.health import health_from
from trustgate_core.models import HealthChecks, LbConfig, Registry
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.outcomes import (
    CONTENT_FILTER,
    CONTEXT_WINDOW,
    PROVIDER_ERROR,
    RETRYABLE_KINDS,
    TIMEOUT,
    failure_of_status,
    filtered_answer,
    provider_error_in,
)
from trustgate_proxy.domain.routing import (
    RETRYABLE,
    SUCCESS,
    TERMINAL,
    Candidates,
    Route,
    RoutingConfig,
)
from trustgate_proxy.domain.strategies import (
    STRATEGIES,
    RoundRobinStrategy,
    Strategy,
    StrategyDeps,
    StrategyFactory,
    trusted_networks,
)
from trustgate_proxy.services.forward import Forwarders
from trustgate_proxy.services.ports import Upstream
from trustgate_proxy.settings import ProxySettings


class HealthPort(Protocol):
    """Shared route health (``trustgate_core.health.RouteHealth``), keyed by registry id."""

    ejections_total: int

    def unhealthy(self) -> list[str]: ...

    def available(self, key: str) -> bool: ...

    async def claim_trial(self, key: str) -> bool: ...

    def failed_at(self, key: str) -> float: ...

    def report(
        self,
        key: str,
        ok: bool,
        *,
        retry_after: float | None = None,
        checks: HealthChecks | None = None,
    ) -> None: ...

    def watch(self, key: str, probe: Callable[[], Awaitable[bool]], interval: float) -> None: ...

    def unwatch(self, key: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RetryPolicy:
    """Retries on one route: ``max_retries`` more attempts after a retryable failure,
    waiting ``base * 2**n`` (capped at ``cap``) with full jitter, or the upstream's
    ``Retry-After`` when it is at most ``max_retry_after`` seconds."""

    __slots__ = ("base", "cap", "max_retries", "max_retry_after")

    def __init__(
        self,
        max_retries: int = 2,
        base: float = 0.05,
        cap: float = 0.4,
        max_retry_after: float = 1.0,
    ) -> None:
        self.max_retries = max_retries
        self.base = base
        self.cap = cap
        self.max_retry_after = max_retry_after

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based): half fixed, half jitter."""
        ceiling = min(self.cap, self.base * (1 << (retry - 1)))
        return ceiling / 2 + random.random() * ceiling / 2


class RoutingStats:
    """Counters the router keeps for ``/metrics`` (plain ints: no lock, one loop)."""

    __slots__ = ("fallbacks", "requests", "retries")

    def __init__(self) -> None:
        self.requests = 0  # requests routed
        self.retries = 0  # attempts repeated on the same route
        self.fallbacks = 0  # attempts on the fallback chain


_POOL, _CHAIN, _DONE = 0, 1, 2


class ResilientRouter:
    """A consumer's router: its strategy, its fallback settings, the process's route
    health and retry policy."""

    def __init__(
        self,
        config: RoutingConfig,
        strategy: Strategy,
        health: HealthPort,
        retry: RetryPolicy,
        stats: RoutingStats | None = None,
    ) -> None:
        self.strategy = strategy
        self.health = health
        self.retry = retry
        self.stats = stats or RoutingStats()
        fb = config.fallback
        on = fb is not None and fb.enabled
        self.chain_on = on
        self.triggers = frozenset(fb.triggers) if fb is not None and on else frozenset()
        budget = fb.budget if fb is not None and on else None
        self.max_attempts = budget.max_attempts if budget and budget.max_attempts else 0
        self.deadline = (
            budget.max_total_latency_ms / 1000.0 if budget and budget.max_total_latency_ms else 0.0
        )
        self.check_error = PROVIDER_ERROR in self.triggers
        self.check_filter = CONTENT_FILTER in self.triggers

    def attempts(self, candidates: Candidates, exchange: Exchange) -> RouteAttempts:
        self.stats.requests += 1
        return RouteAttempts(self, candidates, exchange)


class RouteAttempts:
    """One request's way through its candidates (the module's docstring)."""

    __slots__ = (
        "_candidates",
        "_exchange",
        "_failure",
        "_i",
        "_open",
        "_open_latency",
        "_order",
        "_retry_wait",
        "_router",
        "_stage",
        "_started",
        "_stop",
        "_tries",
        "fallback",
        "number",
    )

    def __init__(self, router: ResilientRouter, candidates: Candidates, exchange: Exchange) -> None:
        self._router = router
        self._candidates = candidates
        self._exchange = exchange
        self._order: Sequence[Route] = ()
        self._i = 0
        self._stage = _POOL
        self._open: Route | None = None  # the attempt started and not finished
        self._open_latency = 0.0
        self._failure: str | None = None  # the last attempt's trigger
        self._retry_wait: float | None = None  # set: retry the same route after it
        self._stop = False
        self._tries = 0  # attempts on the current route
        self._started = 0.0
        self.number = 0
        self.fallback = False

    async def next(self) -> Route | None:
        router = self._router
        if self._stop:
            return None
        if self.number:
            if router.max_attempts and self.number >= router.max_attempts:
                return None
            wait = self._retry_wait
            if wait is not None:
                self._retry_wait = None
                if not router.deadline or (perf_counter() - self._started + wait < router.deadline):
                    if wait > 0:
                        await asyncio.sleep(wait)
                    router.stats.retries += 1
                    return self._go(self._route_now())
            if router.deadline and perf_counter() - self._started >= router.deadline:
                return None
        else:
            self._started = perf_counter()
            routes = self._candidates.routes
            self._order = (
                await router.strategy.order(routes, self._exchange) if len(routes) > 1 else routes
            )
        route = await self._next_route()
        if route is None:
            self._stage = _DONE
            return None
        self._tries = 0
        return self._go(route)

    def _route_now(self) -> Route:
        return self._order[self._i - 1]

    def _go(self, route: Route) -> Route:
        self.number += 1
        self._tries += 1
        self._open = route
        self._router.strategy.started(route)
        return route

    async def _next_route(self) -> Route | None:
        router = self._router
        if self._stage == _POOL:
            route = await self._take()
            if route is not None:
                return route
            if (
                router.chain_on
                and self._candidates.fallback
                and (self.number == 0 or self._failure in router.triggers)
            ):
                self._enter_chain()
        if self._stage == _CHAIN:
            route = await self._take()
            if route is not None:
                router.stats.fallbacks += 1
                self.fallback = True
                return route
        if self.number == 0:  # every route is out: the one that failed longest ago
            return self._last_resort()
        return None

    def _enter_chain(self) -> None:
        self._stage = _CHAIN
        self._order = self._candidates.fallback
        self._i = 0

    async def _take(self) -> Route | None:
        """The next route of the current order that health lets through (or whose
        half-open trial this request won)."""
        health = self._router.health
        order = self._order
        while self._i < len(order):
            route = order[self._i]
            self._i += 1
            key = route.binding.health_key
            if health.available(key) or await health.claim_trial(key):
                return route
        return None

    def _last_resort(self) -> Route | None:
        health = self._router.health
        every = [*self._candidates.routes, *self._candidates.fallback]
        if not every:
            return None
        route = min(every, key=lambda r: health.failed_at(r.binding.health_key))
        self._order = (route,)
        self._i = 1
        self.fallback = route not in self._candidates.routes
        return route

    def report(
        self,
        route: Route,
        status: int,
        body: bytes | None,
        timed_out: bool,
        retry_after: float | None,
        latency: float,
    ) -> str:
        router = self._router
        failure: str | None = None
        if 200 <= status < 300:
            if body is not None and (
                (router.check_error and provider_error_in(body))
                or (router.check_filter and filtered_answer(body))
            ):
                failure = PROVIDER_ERROR if provider_error_in(body) else CONTENT_FILTER
        elif timed_out:
            failure = TIMEOUT
        else:
            failure = failure_of_status(status, body)
        registry = route.binding.registry
        key = route.binding.health_key
        if failure is None:
            outcome = SUCCESS if status < 300 else TERMINAL
            router.health.report(key, True)
        elif failure in RETRYABLE_KINDS:
            outcome = RETRYABLE
            router.health.report(key, False, retry_after=retry_after, checks=registry.health_checks)
        else:  # context window, content filter: the route answered
            outcome = TERMINAL
            router.health.report(key, True)
        self._failure = failure
        if outcome != SUCCESS:
            self._finish(route, outcome, latency)
        else:
            self._open_latency = latency
        self._plan_after(route, outcome, failure, retry_after)
        return outcome

    def _plan_after(
        self, route: Route, outcome: str, failure: str | None, retry_after: float | None
    ) -> None:
        """What the next call to ``next`` does after this outcome."""
        router = self._router
        if outcome == SUCCESS:
            self._stop = True
            return
        if outcome == TERMINAL:
            if failure in (CONTEXT_WINDOW, CONTENT_FILTER) and failure in router.triggers:
                if self._stage == _POOL and self._candidates.fallback:
                    self._enter_chain()
                    return
                if self._stage == _CHAIN:
                    return
            self._stop = True
            return
        retry = router.retry
        if failure == TIMEOUT or self._tries > retry.max_retries:
            return
        if retry_after is not None:
            if retry_after <= retry.max_retry_after:
                self._retry_wait = retry_after
            return
        if router.health.available(route.binding.health_key):
            self._retry_wait = retry.backoff(self._tries)

    def _finish(self, route: Route, outcome: str, latency: float) -> None:
        if self._open is route:
            self._open = None
        self._router.strategy.finished(route, outcome, latency)

    def close(self) -> None:
        """The request is over: the attempt still open (relayed, or cut by the client
        leaving) is finished."""
        route = self._open
        if route is not None:
            self._open = None
            outcome = SUCCESS if self._stop and self._failure is None else TERMINAL
            self._router.strategy.finished(route, outcome, self._open_latency)


def _degraded_semantic(config: LbConfig, deps: StrategyDeps) -> Strategy:
    return RoundRobinStrategy(config, deps)


def strategies() -> dict[str, StrategyFactory]:
    """The algorithms this proxy balances with: the domain's, and ``semantic`` from
    ``services.semantic`` (round-robin while that module is absent)."""
    found = dict(STRATEGIES)
    try:
        from trustgate_proxy.services.semantic import (  # type: ignore[import-not-found, unused-ignore]
            semantic_strategy,
        )
    except ImportError:
        found["semantic"] = _degraded_semantic
    else:
        found["semantic"] = semantic_strategy
    return found


class Routing:
    """The process's routing parts; ``router_factory`` builds a consumer's router from
    its routing settings. ``start`` and ``stop`` run what works in the background (route
    health's sharing, active probes)."""

    def __init__(
        self,
        health: HealthPort,
        *,
        retry: RetryPolicy | None = None,
        deps: StrategyDeps | None = None,
        first_byte_timeout: float | None = None,
    ) -> None:
        self.health = health
        self.first_byte_timeout = first_byte_timeout
        self.retry = retry or RetryPolicy()
        self.deps = deps or StrategyDeps()
        self.stats = RoutingStats()
        self.strategies = strategies()
        self._watched: dict[str, Registry] = {}  # registry id -> the version probed
        self._probes: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: ProxySettings, counters: Any = None) -> Routing:
        return cls(
            health_from(counters),
            retry=RetryPolicy(settings.provider_max_retries),
            deps=StrategyDeps(trusted_networks(settings.trusted_proxies)),
            first_byte_timeout=settings.provider_response_header_timeout,
        )

    def router_factory(self, config: RoutingConfig) -> ResilientRouter:
        lb = config.lb or LbConfig()
        strategy = self.strategies.get(lb.algorithm, RoundRobinStrategy)(lb, self.deps)
        return ResilientRouter(config, strategy, self.health, self.retry, self.stats)

    async def start(self, view: Any = None, forwarders: Forwarders | None = None) -> None:
        """With the runtime's config view and forwarders (its upstream session, the
        registries' timeouts): strategies may use them, probes run over them."""
        self.deps.view = view
        if forwarders is not None:
            self.deps.session = forwarders.session
            forwarders.timeouts.defaults(self.first_byte_timeout)
        await self.health.start()
        if view is not None and forwarders is not None:
            self._probes = asyncio.create_task(self._keep_probes(view, forwarders.session))

    async def stop(self) -> None:
        task, self._probes = self._probes, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for key in list(self._watched):
            self.health.unwatch(key)
        self._watched.clear()
        await self.health.stop()

    async def _keep_probes(self, view: Any, session: aiohttp.ClientSession) -> None:
        """Every second, the active probes follow the registries' ``health_checks.path``
        (route health runs each once for the whole cluster)."""
        while True:
            self.sync_probes(view, session)
            await asyncio.sleep(PROBE_SYNC_INTERVAL)

    def sync_probes(self, view: Any, session: aiohttp.ClientSession) -> None:
        registries: dict[UUID, Registry] = view.state.registries
        wanted: dict[str, Registry] = {}
        for registry in registries.values():
            checks = registry.health_checks
            if checks is not None and checks.path and registry.type == "LLM" and registry.enabled:
                wanted[str(registry.id)] = registry
        for key in [k for k in self._watched if k not in wanted]:
            self.health.unwatch(key)
            del self._watched[key]
        for key, registry in wanted.items():
            if self._watched.get(key) is registry:
                continue
            if key in self._watched:
                self.health.unwatch(key)
            self._watched[key] = registry
            checks = registry.health_checks
            assert checks is not None and checks.path
            interval = float(checks.interval or DEFAULT_PROBE_INTERVAL)
            probe = Probe(view, session, registry, checks.path, checks.headers, interval)
            self.health.watch(key, probe, interval)


PROBE_SYNC_INTERVAL = 1.0
DEFAULT_PROBE_INTERVAL = 10.0


class Probe:
    """An active health check of one registry: a GET of ``path`` on its upstream's
    origin (a models listing, a status page — never a completion), with its credentials
    and the check's ``headers``. Healthy unless it answers 5xx, 408 or 429, or not at
    all within ``min(interval, 5 s)``."""

    def __init__(
        self,
        view: Any,
        session: aiohttp.ClientSession,
        registry: Registry,
        path: str,
        headers: Mapping[str, str],
        interval: float,
    ) -> None:
        self.view = view
        self.session = session
        self.registry = registry
        self.path = path
        self.headers = dict(headers)
        self.timeout = min(interval, 5.0)

    def url(self, target: Upstream) -> str:
        base = target.models_url() or target.generate_url(None, False)
        parts = urlsplit(base)
        if self.path.startswith(("http://", "https://")):
            return self.path
        return urljoin(f"{parts.scheme}://{parts.netloc}/", self.path.lstrip("/"))

    async def __call__(self) -> bool:
        try:
            target = self.view.target(self.registry)
            url = self.url(target)
            async with asyncio.timeout(self.timeout):
                headers = (
                    await target.authorize("GET", url, b"")
                    if target.needs_authorize
                    else target.headers
                )
                async with self.session.get(url, headers={**headers, **self.headers}) as resp:
                    status = resp.status
        except (TrustGateError, aiohttp.ClientError, OSError):
            return False
        return status < 500 and status not in (408, 429)
