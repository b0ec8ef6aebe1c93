"""Purging a ``semantic_cache`` policy's entries: one ``CachePurge`` on the bus, which
every policy-cache replica applies (its index and the shared store)."""

from __future__ import annotations

from uuid import UUID

from nats.aio.client import Client as NATS

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.services.common import get_child
from trustgate_admin.services.uow import UnitOfWork
from trustgate_core.cache import CachePurge
from trustgate_core.errors import NotFound, Unavailable
from trustgate_core.events.subjects import CACHE_PURGE_SUBJECT
from trustgate_core.plugins.cache import SEMANTIC_CACHE
from trustgate_core.plugins.registry import resolve_plugin

#: the audit log's kind for a purge of a policy's cache entries
AUDIT_KIND = "policy_cache"
# How long the bus may take to accept the purge before the admin answers 503.
FLUSH_TIMEOUT = 2


async def purge(uow: UnitOfWork, nc: NATS, gateway_id: UUID, policy_id: UUID) -> None:
    """404 for an unknown policy or one of another plugin (the policy's slug may be the
    plugin's id or an alias: ``semanticcache``); 503 if the bus is down."""
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id)
    if resolve_plugin(row.slug) is not SEMANTIC_CACHE:
        raise NotFound()
    message = CachePurge(gateway_id=gateway_id, policy_id=policy_id)
    if not nc.is_connected:
        raise Unavailable("the message bus is unavailable")
    try:
        await nc.publish(CACHE_PURGE_SUBJECT, message.model_dump_json().encode())
        await nc.flush(FLUSH_TIMEOUT)
    except Exception as exc:
        raise Unavailable("the message bus is unavailable") from exc
    async with uow:  # an admin action like any change: in the audit chain
        await uow.record(AUDIT_KIND, gateway_id, policy_id, "delete")
        await uow.commit()
