"""``GET /{consumer_slug}/v1/models``: the models a consumer may use, in OpenAI's list shape.

A binding with a model policy lists its allowed models (or its default); a binding without
one lists what its upstream's models list reports (best effort, short timeout), in the
upstream's own shape (``UpstreamTarget.model_names``: OpenAI's and Anthropic's
``data[].id``, Google's ``models[].name``); a target needing per-request credentials gets
them from ``authorize`` (and is skipped when they cannot be had).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from trustgate_core.errors import TrustGateError
from trustgate_proxy.services.config_view import ConfigView, ConsumerPlan
from trustgate_proxy.services.ports import Upstream

_TIMEOUT = aiohttp.ClientTimeout(total=10)


class ModelLister:
    def __init__(self, view: ConfigView, session: aiohttp.ClientSession) -> None:
        self.view = view
        self.session = session

    async def listing(self, plan: ConsumerPlan) -> dict[str, Any]:
        seen: dict[str, str] = {}
        probes: list[tuple[str, asyncio.Task[list[str]]]] = []
        for binding in plan.bindings:
            names: list[str] = sorted(binding.allowed) if binding.allowed else []
            if binding.default and binding.default not in names:
                names.insert(0, binding.default)
            if names:
                for name in names:
                    seen.setdefault(name, binding.provider)
                continue
            try:
                target = self.view.target(binding.registry)
            except Exception:
                continue
            url = target.models_url()
            if url is not None:
                probes.append((binding.provider, asyncio.create_task(self._fetch(target, url))))
        for provider, probe in probes:
            for name in await probe:
                seen.setdefault(name, provider)
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": owner}
                for name, owner in seen.items()
            ],
        }

    async def _fetch(self, target: Upstream, url: str) -> list[str]:
        """The names ``target`` lists at ``url`` (its own shape, ``model_names``); nothing
        when the list cannot be had (no credentials minted, an error, a bad answer)."""
        try:
            headers = (
                await target.authorize("GET", url, b"")
                if target.needs_authorize
                else target.headers
            )
            async with self.session.get(url, headers=headers, timeout=_TIMEOUT) as resp:
                if resp.status != 200:
                    return []
                doc = orjson.loads(await resp.read())
        except (
            TrustGateError,
            TimeoutError,
            aiohttp.ClientError,
            OSError,
            orjson.JSONDecodeError,
        ):
            return []
        return target.model_names(doc)
