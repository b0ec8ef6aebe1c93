"""The curated catalogs: providers, models, remote MCP servers and policy plugins.

The data ships as JSON inside the package (``trustgate_admin/catalog/*.json``), except the
models, which core ships with its prices (``trustgate_core.pricing``: the proxy prices
calls from the same file). Each is read on first use, then kept. Every accessor returns a
fresh copy, so callers may mutate what they get.
"""

from __future__ import annotations

import copy
import json
import threading
from importlib import resources
from typing import Any, Final, cast

from trustgate_core.errors import ValidationFailed
from trustgate_core.plugins import policies_catalog, resolve_plugin, validate_policy
from trustgate_core.policy.runners import ENFORCED_ON
from trustgate_core.pricing import catalog_models

_PACKAGE: Final = "trustgate_admin"
_FOLDER: Final = "catalog"


class Catalog:
    """Read-only view over the curated catalog files (lazy, loaded once per instance)."""

    def __init__(self, package: str = _PACKAGE, folder: str = _FOLDER) -> None:
        self._package = package
        self._folder = folder
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ providers

    def providers(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._providers())

    def provider(self, code: str) -> dict[str, Any] | None:
        """The provider with this code or alias (``gemini`` is ``google``), or ``None``."""
        canonical = self._provider_index().get(code.strip().lower())
        if canonical is None:
            return None
        return copy.deepcopy(canonical)

    def provider_codes(self) -> set[str]:
        """Codes a registry may use: every provider code and alias."""
        return set(self._provider_index())

    def canonical_provider_code(self, code: str) -> str | None:
        provider = self._provider_index().get(code.strip().lower())
        return None if provider is None else cast(str, provider["code"])

    # ------------------------------------------------------------------ models

    def models(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Curated models, optionally of one provider (code or alias)."""
        models = self._models()
        if provider is not None:
            code = self.canonical_provider_code(provider)
            if code is None:
                return []
            models = [model for model in models if model["provider"] == code]
        return copy.deepcopy(models)

    # ------------------------------------------------------------------ mcp + policies

    def mcp_servers(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._load("mcp_servers.json", "mcp_servers"))

    def policies(self) -> dict[str, Any]:
        """The plugins, each with ``enforced_on``: the planes (``LLM``, ``MCP``) that
        enforce it today, and ``enforced``: whether any does (the admin refuses policies
        of the others, and attaching one to a consumer of a plane that does not)."""
        catalog = policies_catalog()
        for group in catalog["groups"]:
            for item in group["items"]:
                planes = ENFORCED_ON.get(item["slug"], ())
                item["enforced_on"] = list(planes)
                item["enforced"] = bool(planes)
        return catalog

    # ------------------------------------------------------------------ internals

    def _models(self) -> list[dict[str, Any]]:
        models = self._cache.get("models")
        if models is None:
            models = catalog_models()
            with self._lock:
                self._cache["models"] = models
        return cast(list[dict[str, Any]], models)

    def _providers(self) -> list[dict[str, Any]]:
        return self._load("providers.json", "providers")

    def _provider_index(self) -> dict[str, dict[str, Any]]:
        index = self._cache.get("provider_index")
        if index is None:
            index = {}
            for provider in self._providers():
                index[provider["code"]] = provider
                for alias in provider.get("metadata", {}).get("aliases", []):
                    index[alias] = provider
            with self._lock:
                self._cache["provider_index"] = index
        return cast(dict[str, dict[str, Any]], index)

    def _load(self, filename: str, key: str) -> list[dict[str, Any]]:
        cached = self._cache.get(filename)
        if cached is None:
            with self._lock:
                cached = self._cache.get(filename)
                if cached is None:
                    source = resources.files(self._package).joinpath(self._folder, filename)
                    document = json.loads(source.read_text(encoding="utf-8"))
                    cached = document[key]
                    if not isinstance(cached, list):
                        raise ValueError(f"{filename}: {key!r} must be a list")
                    self._cache[filename] = cached
        return cast(list[dict[str, Any]], cached)


def enforced_on(slug: str) -> tuple[str, ...]:
    """The planes that enforce the plugin a policy slug names (none for an unknown one)."""
    spec = resolve_plugin(slug)
    return () if spec is None else ENFORCED_ON.get(spec.id, ())


def check_enforced(slug: str) -> None:
    """A policy no plane enforces is refused (422), not stored and ignored."""
    if not enforced_on(slug):
        raise ValidationFailed(
            f"slug: plugin {slug!r} is not supported yet (no plane enforces it; "
            "see the policies catalog's 'enforced')"
        )


def check_attachable(
    slug: str,
    stages: list[str] | None,
    mode: str | None,
    settings: dict[str, Any] | None,
    plane: str,
) -> None:
    """A policy may be attached to a consumer of ``plane`` (``LLM``/``MCP``) when that
    plane enforces its plugin and its settings hold there (a per-tool limit on MCP can
    only reject); else 422 naming the plane, as a policy the plane would ignore."""
    planes = enforced_on(slug)
    if plane not in planes:
        where = " and ".join(planes) or "no"
        raise ValidationFailed(
            f"policy_id: plugin {slug!r} is not enforced on {plane} consumers "
            f"(enforced on {where} consumers only)"
        )
    try:
        validate_policy(slug, stages, mode, settings, plane)
    except ValidationFailed as refusal:
        raise ValidationFailed(f"{refusal.message} (attaching to a {plane} consumer)") from None
