"""Configuration published straight to the bus, as the admin's outbox would: one gateway
and its registries, consumers and keys (provider secrets sealed as the admin seals them)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from nats.aio.client import Client as NATS

from trustgate_core.crypto import SecretBox
from trustgate_core.events import (
    AuthEvent,
    ConsumerEvent,
    GatewayEvent,
    PolicyEvent,
    RegistryEvent,
    config_subject,
    encode_event,
)
from trustgate_core.ids import consumer_slug, hash_api_key, new_api_key, uuid7
from trustgate_core.models import (
    Auth,
    Consumer,
    Gateway,
    ModelPolicy,
    Policy,
    Registry,
    RegistryBinding,
)
from trustgate_core.plugins import validate_policy
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY

_revisions = itertools.count(time.time_ns())


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tenant:
    """One gateway with its entities, published to the bus as config events."""

    nc: NATS | None  # None: events go to ``local`` (an in-process proxy's ``apply``)
    box: SecretBox
    gateway: Gateway
    registries: dict[str, Registry] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # consumer name -> api key
    auths: dict[str, Auth] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    local: Callable[[Any], object] | None = None

    @property
    def slug(self) -> str:
        return self.gateway.slug

    async def _publish(self, event: Any) -> None:
        if self.local is not None:
            self.local(event)
            return
        assert self.nc is not None
        js = self.nc.jetstream()
        await js.publish(
            config_subject(event.kind, event.gateway_id, event.entity_id), encode_event(event)
        )

    def _envelope(self, entity_id: UUID, op: str = "upsert") -> dict[str, Any]:
        return {
            "op": op,
            "revision": next(_revisions),
            "gateway_id": self.gateway.id,
            "entity_id": entity_id,
            "occurred_at": _now(),
        }

    async def put_gateway(self, **changes: Any) -> Gateway:
        self.gateway = self.gateway.model_copy(update=changes)
        await self._publish(GatewayEvent(**self._envelope(self.gateway.id), entity=self.gateway))
        return self.gateway

    async def delete_gateway(self) -> None:
        await self._publish(GatewayEvent(**self._envelope(self.gateway.id, "delete")))

    async def add_registry(
        self,
        name: str,
        base_url: str,
        *,
        provider: str = "openai_compatible",
        api_key: str = UPSTREAM_KEY,
        options: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> Registry:
        """An LLM registry; ``auth`` (in clear) replaces the default api-key credentials and
        is sealed as the admin seals it."""
        now = _now()
        registry = Registry(
            id=uuid7(),
            gateway_id=self.gateway.id,
            created_at=now,
            updated_at=now,
            name=name,
            description=description,
            provider=provider,
            provider_options={"base_url": base_url} if options is None else options,
            auth=self.box.seal_fields(auth or {"type": "api_key", "api_key": {"api_key": api_key}}),
        )
        await self._publish(RegistryEvent(**self._envelope(registry.id), entity=registry))
        self.registries[name] = registry
        return registry

    async def add_mcp_registry(
        self,
        name: str,
        url: str,
        *,
        auth: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Registry:
        """An MCP registry (an MCP server at ``url``); ``auth`` and ``headers`` (in clear)
        are sealed as the admin seals them."""
        now = _now()
        target: dict[str, Any] = {"url": url, "transport": "streamable-http"}
        if auth is not None:
            target["auth"] = auth
        if headers is not None:
            target["headers"] = headers
        registry = Registry(
            id=uuid7(),
            gateway_id=self.gateway.id,
            created_at=now,
            updated_at=now,
            name=name,
            type="MCP",
            mcp_target=self.box.seal_fields(target),
        )
        await self._publish(RegistryEvent(**self._envelope(registry.id), entity=registry))
        self.registries[name] = registry
        return registry

    async def put_registry(self, name: str, **changes: Any) -> Registry:
        """The registry with ``changes`` (fields as stored: ``auth`` sealed)."""
        registry = self.registries[name].model_copy(update=changes)
        await self._publish(RegistryEvent(**self._envelope(registry.id), entity=registry))
        self.registries[name] = registry
        return registry

    async def add_consumer(
        self,
        name: str,
        registries: list[str],
        *,
        policies: dict[str, tuple[list[str] | None, str | None]] | None = None,
        with_key: bool = True,
        slug: str | None = None,
        key: str | None = None,
        **fields: Any,
    ) -> Consumer:
        """``fields``: other consumer fields (``type="MCP"``, ``toolkit``, ``fail_mode``,
        ``always_prefix``, ...)."""
        now = _now()
        auth_ids: list[UUID] = []
        if with_key:
            key = key or new_api_key()
            auth = Auth(
                id=uuid7(),
                gateway_id=self.gateway.id,
                created_at=now,
                updated_at=now,
                name=f"{name}-key",
                type="api_key",
                key_hash=hash_api_key(key),
                key_prefix=key[:8],
                key_suffix=key[-4:],
            )
            await self._publish(AuthEvent(**self._envelope(auth.id), entity=auth))
            self.keys[name] = key
            self.auths[name] = auth
            auth_ids.append(auth.id)
        consumer = Consumer(
            id=uuid7(),
            gateway_id=self.gateway.id,
            created_at=now,
            updated_at=now,
            name=name,
            slug=slug or consumer_slug(),
            registries=[RegistryBinding(registry_id=self.registries[r].id) for r in registries],
            model_policies=[
                ModelPolicy(registry_id=self.registries[r].id, allowed=allowed, default=default)
                for r, (allowed, default) in (policies or {}).items()
            ],
            auth_ids=auth_ids,
            **fields,
        )
        await self._publish(ConsumerEvent(**self._envelope(consumer.id), entity=consumer))
        self.consumers[name] = consumer
        return consumer

    async def put_consumer(self, name: str, **changes: Any) -> Consumer:
        consumer = self.consumers[name].model_copy(update=changes)
        await self._publish(ConsumerEvent(**self._envelope(consumer.id), entity=consumer))
        self.consumers[name] = consumer
        return consumer

    async def put_auth(self, name: str, **changes: Any) -> Auth:
        auth = self.auths[name].model_copy(update=changes)
        await self._publish(AuthEvent(**self._envelope(auth.id), entity=auth))
        self.auths[name] = auth
        return auth

    async def delete_auth(self, name: str) -> None:
        auth = self.auths.pop(name)
        await self._publish(AuthEvent(**self._envelope(auth.id, "delete")))

    async def add_policy(
        self,
        name: str,
        plugin: str,
        settings: dict[str, Any] | None = None,
        *,
        consumers: Sequence[str] = (),
        global_: bool = False,
        mode: str | None = None,
        stages: list[str] | None = None,
        priority: int = 0,
        parallel: bool = True,
        enabled: bool = True,
    ) -> Policy:
        """A policy validated as the admin validates it (its effective stages, its settings
        normalised), attached to ``consumers`` (by name) or ``global_``."""
        checked = validate_policy(plugin, stages, mode, settings)
        now = _now()
        policy = Policy.model_validate(
            {
                "id": uuid7(),
                "gateway_id": self.gateway.id,
                "created_at": now,
                "updated_at": now,
                "name": name,
                "slug": plugin,
                "settings": checked.settings,
                "stages": list(checked.stages),
                "mode": checked.mode,
                "priority": priority,
                "parallel": parallel,
                "enabled": enabled,
                "global": global_,
            }
        )
        await self._publish(PolicyEvent(**self._envelope(policy.id), entity=policy))
        self.policies[name] = policy
        for consumer in consumers:
            attached = self.consumers[consumer].policy_ids
            await self.put_consumer(consumer, policy_ids=[*attached, policy.id])
        return policy

    async def put_policy(self, name: str, **changes: Any) -> Policy:
        """The policy with ``changes`` (``settings`` given whole, re-validated)."""
        held = self.policies[name]
        if "settings" in changes:
            changes["settings"] = validate_policy(
                held.slug, list(held.stages), held.mode, changes["settings"]
            ).settings
        policy = held.model_copy(update=changes)
        await self._publish(PolicyEvent(**self._envelope(policy.id), entity=policy))
        self.policies[name] = policy
        return policy

    async def delete_policy(self, name: str) -> None:
        policy = self.policies.pop(name)
        await self._publish(PolicyEvent(**self._envelope(policy.id, "delete")))


async def new_tenant(
    nc: NATS | None,
    secret: str = DEV_SECRET_KEY,
    slug: str | None = None,
    *,
    local: Callable[[Any], object] | None = None,
) -> Tenant:
    """A gateway published on ``nc``, or, with ``local``, applied to an in-process proxy."""
    now = _now()
    gw_id = uuid7()
    gateway = Gateway(
        id=gw_id,
        gateway_id=gw_id,
        created_at=now,
        updated_at=now,
        slug=slug or f"gw-{gw_id.hex[-12:]}",
        tenant_id="tenant-test",
    )
    tenant = Tenant(nc, SecretBox(secret), gateway, local=local)
    await tenant.put_gateway()
    return tenant
