"""The planes the `trustgate` command starts: one table for its subcommands and `run`.

Every plane's package has a ``main`` module with ``serve()`` (its own process, until
SIGINT/SIGTERM) and ``run_server(settings=...)`` (inside `trustgate run`'s loop, until
cancelled), and a pydantic-settings class. Nothing here imports a plane: a deployment that
ships one plane's package can still use this command for it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from pydantic_settings import BaseSettings


@dataclass(frozen=True)
class Plane:
    name: str  # the subcommand
    distribution: str  # the package to install for it
    module: str  # its ``main``: ``serve()`` and ``run_server(settings=...)``
    settings: str  # "module:Class", the plane's settings class
    port: int  # its default port (the settings class has the variable that changes it)
    help: str
    #: What `trustgate run` does without this plane's package ("": it cannot do without).
    when_missing: str = ""

    @property
    def package(self) -> str:
        return self.module.partition(".")[0]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def main(self) -> ModuleType:
        return importlib.import_module(self.module)

    def serve(self) -> None:
        """Run the plane in this process until SIGINT or SIGTERM (its settings from the
        environment)."""
        self.main().serve()

    async def run_server(self, settings: BaseSettings) -> None:
        """Serve the plane with ``settings`` until cancelled, then stop gracefully."""
        await self.main().run_server(settings=settings)

    def settings_class(self) -> type[BaseSettings]:
        module, _, name = self.settings.partition(":")
        return cast(type[BaseSettings], getattr(importlib.import_module(module), name))

    def load_settings(self, **values: Any) -> BaseSettings:
        """The plane's settings from the environment, with ``values`` (by variable name,
        e.g. ``NATS_URL``) taking precedence; names the plane does not read are ignored."""
        return self.settings_class()(**values)

    @property
    def describe(self) -> str:
        return f"{self.help} (port {self.port}{'; the default' if self is DEFAULT else ''})"

    @property
    def not_installed(self) -> str:
        return f"the {self.name} package ({self.distribution}) is not installed"


ADMIN = Plane(
    name="admin",
    distribution="trustgate-admin",
    module="trustgate_admin.main",
    settings="trustgate_admin.settings:AdminSettings",
    port=8080,
    help="the admin plane: configuration API",
)
PROXY = Plane(
    name="proxy",
    distribution="trustgate-proxy",
    module="trustgate_proxy.main",
    settings="trustgate_proxy.settings:ProxySettings",
    port=8081,
    help="the proxy plane: LLM traffic",
    when_missing="serving the admin plane only",
)
MCP = Plane(
    name="mcp",
    distribution="trustgate-mcp",
    module="trustgate_mcp.main",
    settings="trustgate_mcp.settings:McpSettings",
    port=8082,
    help="the MCP plane: registered MCP servers aggregated for agents",
    when_missing="no MCP endpoint",
)
TELEMETRY = Plane(
    name="telemetry",
    distribution="trustgate-telemetry",
    module="trustgate_telemetry.main",
    settings="trustgate_telemetry.settings:TelemetrySettings",
    port=8083,
    help="request events to Kafka and OTLP: health and metrics",
    when_missing="request events stay on the bus",
)

POLICY_CACHE = Plane(
    name="policy-cache",
    distribution="trustgate-policy-cache",
    module="trustgate_policy_cache.main",
    settings="trustgate_policy_cache.settings:PolicyCacheSettings",
    port=8084,
    help="the semantic cache's entries and vector index: health and metrics",
    when_missing="semantic_cache policies serve uncached",
)

#: In the order `trustgate run` starts them.
PLANES: tuple[Plane, ...] = (ADMIN, PROXY, MCP, TELEMETRY, POLICY_CACHE)
#: What a bare `trustgate` starts, as the Go TrustGate does.
DEFAULT = PROXY
