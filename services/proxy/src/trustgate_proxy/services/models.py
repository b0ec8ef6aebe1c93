"""``GET /{consumer_slug}/v1/models``: the models a consumer may use, in OpenAI's list shape.

A binding with a model policy lists its allowed models (or its default); a binding without
one lists what its upstream's models list reports, in the upstream's own shape
(``UpstreamTarget.model_names``: OpenAI's and Anthropic's ``data[].id``, Google's
``models[].name``); a target needing per-request credentials gets them from ``authorize``.

Upstreams are asked concurrently, each within ``timeout``. One that cannot be listed (down,
refusing, too slow, no credentials) is named in ``errors`` beside ``data`` with a short
reason — never its answer, which may echo a credential — so a client can tell "no models"
from "could not ask"; when nothing could be listed at all, the answer is a 502.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from trustgate_core.errors import BackendError, TrustGateError
from trustgate_core.models import Registry
from trustgate_proxy.services.config_view import ConfigView, ConsumerPlan
from trustgate_proxy.services.ports import Upstream

LIST_TIMEOUT = 5.0
"""Seconds one upstream may take to list its models (they are asked concurrently)."""


class _Unlisted(Exception):
    """An upstream's models could not be listed; ``reason`` is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelLister:
    def __init__(
        self, view: ConfigView, session: aiohttp.ClientSession, *, timeout: float = LIST_TIMEOUT
    ) -> None:
        self.view = view
        self.session = session
        self.timeout = timeout

    async def listing(self, plan: ConsumerPlan) -> dict[str, Any]:
        seen: dict[str, str] = {}
        unlisted: dict[object, tuple[Registry, str]] = {}  # registries without a policy
        for binding in plan.bindings:
            names: list[str] = sorted(binding.allowed) if binding.allowed else []
            if binding.default and binding.default not in names:
                names.insert(0, binding.default)
            for name in names:
                seen.setdefault(name, binding.provider)
            if not names:
                unlisted.setdefault(binding.registry.id, (binding.registry, binding.provider))
        # asked together; a client that goes away cancels every request still out
        outcomes = await asyncio.gather(
            *(self._list(registry) for registry, _ in unlisted.values()), return_exceptions=True
        )
        errors: list[dict[str, str]] = []
        listed = False
        for (registry, provider), outcome in zip(unlisted.values(), outcomes, strict=True):
            if isinstance(outcome, _Unlisted):
                errors.append({"registry": registry.name, "error": outcome.reason})
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome is not None:
                listed = True
                for name in outcome:
                    seen.setdefault(name, provider)
        if errors and not listed and not seen:
            raise BackendError("no registry could list its models", errors=errors)
        doc: dict[str, Any] = {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": owner}
                for name, owner in seen.items()
            ],
        }
        if errors:
            doc["errors"] = errors
        return doc

    async def _list(self, registry: Registry) -> list[str] | None:
        """The models ``registry``'s upstream lists; ``None`` for an upstream without a
        models list (Vertex, Azure deployments)."""
        try:
            target = self.view.target(registry)
        except TrustGateError:
            raise _Unlisted("credentials unavailable") from None
        url = target.models_url()
        return None if url is None else await self._fetch(target, url)

    async def _fetch(self, target: Upstream, url: str) -> list[str]:
        """The names ``target`` lists at ``url`` (its own shape, ``model_names``); raises
        `_Unlisted` when the list cannot be had within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                headers = (
                    await target.authorize("GET", url, b"")
                    if target.needs_authorize
                    else target.headers
                )
                async with self.session.get(url, headers=headers) as resp:
                    if resp.status != 200:
                        raise _Unlisted(f"upstream answered {resp.status}")
                    doc = orjson.loads(await resp.read())
        except TrustGateError:
            raise _Unlisted("credentials unavailable") from None
        except TimeoutError:  # before OSError: it is one
            raise _Unlisted("upstream timed out") from None
        except (aiohttp.ClientConnectionError, OSError):
            raise _Unlisted("upstream unreachable") from None
        except (aiohttp.ClientError, orjson.JSONDecodeError):
            raise _Unlisted("upstream answered an invalid list") from None
        return target.model_names(doc)
