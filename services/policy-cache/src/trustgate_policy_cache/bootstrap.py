"""The composition root (skeleton: the cache work fills it in)."""

from __future__ import annotations

from types import TracebackType

from prometheus_client import CollectorRegistry

from trustgate_core.observability.metrics import Aggregates, render
from trustgate_core.service import HealthApp
from trustgate_policy_cache import __version__
from trustgate_policy_cache.settings import PolicyCacheSettings

SERVICE_NAME = "trustgate-policy-cache"


class PolicyCacheRuntime:
    def __init__(self, settings: PolicyCacheSettings) -> None:
        self.settings = settings
        self.aggregates = Aggregates()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.aggregates)
        self.app = HealthApp(
            SERVICE_NAME,
            __version__,
            is_ready=lambda: True,
            dependencies=dict,
            metrics=lambda: render(self.registry),
        )

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def __aenter__(self) -> PolicyCacheRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
