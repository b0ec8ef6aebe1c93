"""The composition root: creates clients, repositories and services, and wires them."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.engine import (
    create_engine,
    joined_session_factory,
    session_factory,
)
from trustgate_admin.adapters.db.migrate import migrate
from trustgate_admin.adapters.outbox_relay import OutboxRelay
from trustgate_admin.api.security import Authenticator, JwksKeys
from trustgate_admin.domain.catalog import Catalog
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.governance.runtime import Governance
from trustgate_admin.services.uow import UnitOfWork
from trustgate_admin.settings import AdminSettings
from trustgate_core.bus import keep_connecting
from trustgate_core.crypto import SecretBox

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: AdminSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    nc: NATS
    relay: OutboxRelay
    catalog: Catalog
    authenticator: Authenticator
    governance: Governance

    def uow(self, transaction: AsyncConnection | None = None) -> UnitOfWork:
        """A unit of work; given an open ``transaction``, one that joins it (an idempotent
        request commits its stored answer with the change)."""
        if transaction is None:
            return UnitOfWork(self.sessions, self.box)
        return UnitOfWork(joined_session_factory(transaction), self.box)


async def build(settings: AdminSettings, *, run_relay: bool = True) -> Container:
    engine = create_engine(
        settings.dsn, pool_size=settings.db_max_conns, connect_timeout=settings.db_connect_timeout
    )
    await migrate(engine)
    nc = NATS()
    relay = OutboxRelay(
        settings.dsn,
        nc,
        connect=lambda: keep_connecting(nc, settings.nats_url, name="trustgate-admin"),
        poll_interval=settings.outbox_poll_interval,
        batch_size=settings.outbox_batch_size,
        publish_timeout=settings.publish_timeout,
        stream_replicas=settings.stream_replicas,
    )
    sessions = session_factory(engine)
    box = SecretBox(settings.secrets_material)
    governance = Governance(GovernanceDeps(settings, engine, sessions, box, nc))
    if run_relay:
        relay.start()
        await governance.start()
    return Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        nc=nc,
        relay=relay,
        catalog=Catalog(),
        authenticator=authenticator(settings),
        governance=governance,
    )


def authenticator(settings: AdminSettings) -> Authenticator:
    keys = None
    if settings.jwks_url:
        keys = JwksKeys(
            settings.jwks_url, ttl=settings.jwks_cache_ttl, min_refresh=settings.jwks_min_refresh
        )
    return Authenticator(
        secret=settings.server_secret_key,
        max_ttl_seconds=settings.max_token_ttl,
        platform_claim_required=settings.platform_claim_required,
        m2m_keys=keys,
        m2m_issuer=settings.m2m_issuer,
        m2m_audience=settings.m2m_audience,
    )


async def close(container: Container) -> None:
    await container.governance.stop()
    await container.relay.stop()
    with contextlib.suppress(Exception):
        await container.nc.close()
    await container.engine.dispose()
