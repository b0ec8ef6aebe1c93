"""Role-based consumers: the roles whose ``oidc_mapping`` a token's claims satisfy give the
consumer its registries and model policies (several roles merge); claims that match no
role, and an API key (which carries no claims), are 403."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from trustgate_core.events import RoleEvent
from trustgate_core.ids import uuid7
from trustgate_core.models import Auth, Consumer, Role
from trustgate_core.models.consumer import ModelPolicy
from trustgate_testkit.idp import LocalIdp
from trustgate_testkit.proxy.local import local_fixtures
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.tenant import Tenant

proxy, tenant, bus, events = local_fixtures()


@pytest.fixture
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp()
    yield server
    server.stop()


async def add_role(
    tenant: Tenant, name: str, registry: str, allowed: list[str], groups: list[str]
) -> Role:
    """A role granting ``registry`` for the ``allowed`` models to tokens whose ``groups``
    claim holds any of ``groups``."""
    now = datetime.now(UTC)
    rid = tenant.registries[registry].id
    role = Role(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name=name,
        registry_ids=[rid],
        model_policies=[ModelPolicy(registry_id=rid, allowed=allowed, default=allowed[0])],
        oidc_mapping={
            "match": "any",
            "claims": [{"path": "groups", "op": "contains_any", "values": groups}],
        },
    )
    await tenant._publish(RoleEvent(**tenant._envelope(role.id), entity=role))
    return role


@pytest.fixture
async def roles_app(tenant: Tenant, upstream: Any, idp: LocalIdp) -> Consumer:
    await tenant.add_registry("mini", upstream.url)
    await tenant.add_registry("large", upstream.url)
    engineers = await add_role(tenant, "engineers", "mini", ["gpt-4o-mini"], ["eng"])
    research = await add_role(tenant, "research", "large", ["gpt-4o"], ["ml", "research"])
    now = datetime.now(UTC)
    auth = Auth(
        id=uuid7(),
        gateway_id=tenant.gateway.id,
        created_at=now,
        updated_at=now,
        name="corp-sso",
        type="oidc",
        config={
            "oidc": {"issuer": idp.issuer, "audiences": ["trustgate"], "jwks_url": idp.jwks_url}
        },
    )
    tenant.auths[auth.name] = auth
    await tenant.put_auth(auth.name)
    await tenant.add_consumer("team", [], with_key=False)
    return await tenant.put_consumer(
        "team",
        routing_mode="role_based",
        auth_ids=[auth.id],
        role_ids=[engineers.id, research.id],
    )


def sdk(proxy: Any, tenant: Tenant, consumer: Consumer, credential: str) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(consumer),
            api_key=credential,
            max_retries=0,
            timeout=10,
            default_headers={"X-AG-Gateway-Slug": tenant.slug},
        )
    )


async def call(
    proxy: Any, tenant: Tenant, consumer: Consumer, credential: str, model: str, log: Any
) -> tuple[int, Any]:
    """The status and, when served, the request event of one chat call."""
    client = sdk(proxy, tenant, consumer, credential)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Hi"}]
        )
    except openai.APIStatusError as refused:
        return refused.status_code, None
    (event,) = log.by_trace(raw.headers["x-ag-trace-id"])
    return 200, event


async def test_two_matching_roles_merge(
    proxy: Any, tenant: Tenant, roles_app: Consumer, idp: LocalIdp, events: Any
) -> None:
    token = idp.mint(groups=["eng", "ml"], sub="ana")
    async with events(None, tenant.gateway.id) as log:
        status, mini = await call(proxy, tenant, roles_app, token, "gpt-4o-mini", log)
        assert status == 200 and mini.registry_id == tenant.registries["mini"].id
        status, large = await call(proxy, tenant, roles_app, token, "gpt-4o", log)
        assert status == 200 and large.registry_id == tenant.registries["large"].id
    assert mini.subject == large.subject == "ana"


async def test_one_role_grants_only_its_models(
    proxy: Any, tenant: Tenant, roles_app: Consumer, idp: LocalIdp, events: Any
) -> None:
    token = idp.mint(groups=["eng"])
    async with events(None, tenant.gateway.id) as log:
        status, event = await call(proxy, tenant, roles_app, token, "gpt-4o-mini", log)
        assert status == 200 and event.registry_id == tenant.registries["mini"].id
        status, _ = await call(proxy, tenant, roles_app, token, "gpt-4o", log)
    assert status == 403  # research's model is not the engineers'


async def test_claims_that_match_no_role_are_403(
    proxy: Any, tenant: Tenant, roles_app: Consumer, idp: LocalIdp, events: Any
) -> None:
    async with events(None, tenant.gateway.id) as log:
        for claims in ({"groups": ["sales"]}, {}, {"groups": "eng-adjacent"}):
            status, _ = await call(proxy, tenant, roles_app, idp.mint(**claims), "gpt-4o-mini", log)
            assert status == 403, claims


async def test_an_api_key_has_no_claims_and_is_403(
    proxy: Any, tenant: Tenant, roles_app: Consumer, events: Any
) -> None:
    # a key auth attached anyway (the admin refuses it; an old record might carry one)
    await tenant.add_consumer("keyed", [])
    key_auth = tenant.auths["keyed"]
    team = await tenant.put_consumer("team", auth_ids=[*roles_app.auth_ids, key_auth.id])
    async with events(None, tenant.gateway.id) as log:
        status, _ = await call(proxy, tenant, team, tenant.keys["keyed"], "gpt-4o-mini", log)
    assert status == 403


async def test_a_role_change_applies_to_the_next_call(
    proxy: Any, tenant: Tenant, roles_app: Consumer, idp: LocalIdp, events: Any
) -> None:
    token = idp.mint(groups=["eng"])
    async with events(None, tenant.gateway.id) as log:
        assert (await call(proxy, tenant, roles_app, token, "gpt-4o-mini", log))[0] == 200
        await add_role(tenant, "engineers-2", "large", ["gpt-4o"], ["eng"])
        role = next(r for r in proxy.runtime.state.roles.values() if r.name == "engineers-2")
        await tenant.put_consumer("team", role_ids=[*roles_app.role_ids, role.id])
        status, event = await call(proxy, tenant, roles_app, token, "gpt-4o", log)
    assert status == 200 and event.registry_id == tenant.registries["large"].id
