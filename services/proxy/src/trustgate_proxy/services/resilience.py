"""How the proxy spreads and rescues a consumer's traffic: the router each consumer gets
(its strategy, shared route health, retries and fallback chain), built once per process
from the settings (``Routing``)."""

from __future__ import annotations

from trustgate_proxy.domain.routing import RoundRobin
from trustgate_proxy.services.config_view import RouterFactory
from trustgate_proxy.settings import ProxySettings


class Routing:
    """The process's routing parts; ``router_factory`` builds a consumer's router from
    its routing settings. ``start`` and ``stop`` run what works in the background."""

    def __init__(self, router_factory: RouterFactory) -> None:
        self.router_factory = router_factory

    @classmethod
    def from_settings(cls, settings: ProxySettings) -> Routing:
        return cls(RoundRobin)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
