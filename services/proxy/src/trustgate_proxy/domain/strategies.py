"""Load-balancing strategies (``lb_config.algorithm``): each orders a request's routes,
preferred first, and learns from the attempts made on them.

The interface every strategy implements (the ``semantic`` one lives in
``trustgate_proxy.services.semantic`` and is registered by ``Routing``)::

    class Strategy(Protocol):
        async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]
        def started(self, route: Route) -> None          # an attempt went out on it
        def finished(self, route: Route, outcome: str, latency: float) -> None  # it ended

``STRATEGIES`` maps an algorithm name to its factory,
``(LbConfig, StrategyDeps) -> Strategy``; an unknown name gets round-robin. ``order`` is
given the candidate routes (the same tuple object for a given consumer, model and config,
so a strategy may key its state on it) and returns them all, preferred first; the router
then skips the ones route health says are out. ``finished`` is called once per
``started``, whatever the ending (success, error, the client leaving); ``latency`` is the
time to the upstream's first byte, in seconds, and ``outcome`` ``success`` | ``retryable``
| ``terminal``.

A route's state is kept under ``route.key`` (registry id and model).
"""

from __future__ import annotations

import ipaddress
import random
from bisect import bisect
from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Any, Protocol

from trustgate_core.models import LbConfig
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.routing import RETRYABLE, SUCCESS, Route

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Strategy(Protocol):
    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        """``routes``, preferred first."""
        ...

    def started(self, route: Route) -> None:
        """An attempt went out on ``route``."""
        ...

    def finished(self, route: Route, outcome: str, latency: float) -> None:
        """The attempt on ``route`` ended (also when the client left)."""
        ...


class StrategyDeps:
    """What strategies may need from the process, filled in by ``Routing``:
    ``trusted_proxies`` (whose ``X-Forwarded-For`` ip-hash believes), and, once the
    runtime has started, ``view`` (the proxy's ``ConfigView``: registries' upstream
    targets) and ``session`` (its upstream ``aiohttp.ClientSession``). Read ``view`` and
    ``session`` when a request needs them, not when the strategy is built."""

    __slots__ = ("session", "trusted_proxies", "view")

    def __init__(
        self,
        trusted_proxies: Sequence[IpNetwork] = (),
        view: Any = None,
        session: Any = None,
    ) -> None:
        self.trusted_proxies = tuple(trusted_proxies)
        self.view = view
        self.session = session


StrategyFactory = Callable[[LbConfig, StrategyDeps], Strategy]


def trusted_networks(spec: str) -> tuple[IpNetwork, ...]:
    """``PROXY_TRUSTED_PROXIES``: CIDRs (or addresses), comma-separated."""
    return tuple(
        ipaddress.ip_network(p.strip(), strict=False) for p in spec.split(",") if p.strip()
    )


# -- the strategies -----------------------------------------------------------------------
class _Stateless:
    """``started``/``finished`` that learn nothing."""

    def started(self, route: Route) -> None:
        return None

    def finished(self, route: Route, outcome: str, latency: float) -> None:
        return None


class RoundRobinStrategy(_Stateless):
    """Each candidate first in turn."""

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self._next: dict[int, int] = {}

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        return self.rotate(routes)

    def rotate(self, routes: Sequence[Route]) -> Sequence[Route]:
        n = len(routes)
        if n < 2:
            return routes
        key = id(routes)
        i = self._next.get(key, 0)
        self._next[key] = i + 1
        i %= n
        return routes if i == 0 else [*routes[i:], *routes[:i]]


class _PerRouteSet:
    """A strategy's state per candidate tuple (the plan caches one tuple per consumer and
    model, so the set is small; it is dropped when full rather than grown)."""

    _MAX = 512

    def __init__(self) -> None:
        self._sets: dict[int, tuple[Sequence[Route], Any]] = {}

    def get(self, routes: Sequence[Route], build: Callable[[Sequence[Route]], Any]) -> Any:
        entry = self._sets.get(id(routes))
        if entry is None or entry[0] is not routes:
            if len(self._sets) >= self._MAX:
                self._sets.clear()
            entry = self._sets[id(routes)] = (routes, build(routes))
        return entry[1]


class _Smooth:
    """Smooth weighted round-robin (nginx): every pick, each route gains its weight, the
    richest is picked and pays the total. Exact ratios, evenly interleaved."""

    __slots__ = ("current", "total", "weights")

    def __init__(self, routes: Sequence[Route]) -> None:
        self.weights = [max(1, r.weight) for r in routes]
        self.current = [0] * len(routes)
        self.total = sum(self.weights)

    def pick(self) -> int:
        current = self.current
        best = 0
        for i, w in enumerate(self.weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self.total
        return best


class WeightedRoundRobin(_Stateless):
    """Smooth weighted round-robin over the routes' weights (the member's, else the
    binding's)."""

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self._state = _PerRouteSet()

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        return self.pick(routes)

    def pick(self, routes: Sequence[Route]) -> Sequence[Route]:
        if len(routes) < 2:
            return routes
        i = self._state.get(routes, _Smooth).pick()
        return routes if i == 0 else [routes[i], *routes[:i], *routes[i + 1 :]]


class RandomStrategy(_Stateless):
    """A uniformly random candidate first, the others in their order."""

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self._random = random.random

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        n = len(routes)
        if n < 2:
            return routes
        i = int(self._random() * n)
        return routes if i == 0 else [routes[i], *routes[:i], *routes[i + 1 :]]


class LeastConnections:
    """The route with the fewest attempts in flight first (ties: round-robin). The count
    is taken on ``started`` and given back on ``finished``, never below zero."""

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self.in_flight: dict[str, int] = {}
        self._ties = RoundRobinStrategy()

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        if len(routes) < 2:
            return routes
        load = self.in_flight
        rotated = self._ties.rotate(routes)
        return sorted(rotated, key=lambda r: load.get(r.key, 0))

    def started(self, route: Route) -> None:
        self.in_flight[route.key] = self.in_flight.get(route.key, 0) + 1

    def finished(self, route: Route, outcome: str, latency: float) -> None:
        n = self.in_flight.get(route.key, 0) - 1
        if n > 0:
            self.in_flight[route.key] = n
        else:
            self.in_flight.pop(route.key, None)


def _point(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


class _Ring:
    """A consistent-hashing ring: ``_VNODES`` points per unit of weight for each route, so
    adding a route takes about 1/N of the clients from the others and moves no other."""

    _VNODES = 160

    __slots__ = ("owners", "points", "size")

    def __init__(self, routes: Sequence[Route]) -> None:
        placed = sorted(
            (_point(f"{route.key}#{v}"), i)
            for i, route in enumerate(routes)
            for v in range(self._VNODES * max(1, route.weight))
        )
        self.points = [p for p, _ in placed]
        self.owners = [i for _, i in placed]
        self.size = len(routes)

    def walk(self, point: int) -> list[int]:
        """Route indexes in ring order from ``point``: the owner first, then the next
        distinct owners (where the client goes if its route is out)."""
        owners = self.owners
        n = len(owners)
        start = bisect(self.points, point) % n
        seen: list[int] = []
        for j in range(n):
            i = owners[(start + j) % n]
            if i not in seen:
                seen.append(i)
                if len(seen) == self.size:
                    break
        return seen


class IpHash(_Stateless):
    """Consistent hashing on the client address: the TCP peer, or, when the peer is a
    trusted proxy, the right-most address of ``X-Forwarded-For`` that is not one."""

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self._trusted = deps.trusted_proxies if deps is not None else ()
        self._rings = _PerRouteSet()

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        if len(routes) < 2:
            return routes
        client = self.client_of(exchange)
        if client is None:
            return routes
        ring: _Ring = self._rings.get(routes, _Ring)
        return [routes[i] for i in ring.walk(_point(client))]

    def client_of(self, exchange: Exchange) -> str | None:
        peer = exchange.client_host
        if not self._trusted or peer is None or not self._is_trusted(peer):
            return peer
        forwarded = exchange.header(b"x-forwarded-for")
        if not forwarded:
            return peer
        for hop in reversed(forwarded.split(",")):
            hop = hop.strip()
            if hop and not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)


class Latency:
    """Power of two choices: of two random routes, the one whose EWMA of time to first
    byte, inflated by its EWMA rate of retryable failures, is lower goes first. A route
    never measured scores 0, so each is tried early; failures make a fast route look
    slow (they come back fast)."""

    ALPHA = 0.3  # weight of the newest sample
    ERROR_PENALTY = 20.0  # a route failing every time looks 21x slower

    def __init__(self, config: LbConfig | None = None, deps: StrategyDeps | None = None) -> None:
        self.ttfb: dict[str, float] = {}
        self.errors: dict[str, float] = {}
        self._random = random.random

    def score(self, route: Route) -> float:
        key = route.key
        return self.ttfb.get(key, 0.0) * (1.0 + self.ERROR_PENALTY * self.errors.get(key, 0.0))

    async def order(self, routes: Sequence[Route], exchange: Exchange) -> Sequence[Route]:
        n = len(routes)
        if n < 2:
            return routes
        i = int(self._random() * n)
        j = int(self._random() * (n - 1))
        if j >= i:
            j += 1
        if self.score(routes[j]) < self.score(routes[i]):
            i, j = j, i
        return [routes[i], routes[j], *(r for k, r in enumerate(routes) if k != i and k != j)]

    def started(self, route: Route) -> None:
        return None

    def finished(self, route: Route, outcome: str, latency: float) -> None:
        key = route.key
        a = self.ALPHA
        failed = 1.0 if outcome == RETRYABLE else 0.0  # a client's 4xx is not the route's
        self.errors[key] = a * failed + (1 - a) * self.errors.get(key, failed)
        if outcome == SUCCESS and latency > 0:
            prev = self.ttfb.get(key)
            self.ttfb[key] = latency if prev is None else a * latency + (1 - a) * prev


STRATEGIES: dict[str, StrategyFactory] = {
    "round-robin": RoundRobinStrategy,
    "weighted-round-robin": WeightedRoundRobin,
    "random": RandomStrategy,
    "least-connections": LeastConnections,
    "ip-hash": IpHash,
    "latency": Latency,
}
