"""An MCP consumer with an ``oidc`` auth attached: an agent calls with the IdP's token as
its bearer (as on the proxy), and a token the auth does not accept gets 401."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import pytest

from trustgate_core.ids import uuid7
from trustgate_core.models import Auth
from trustgate_testkit.idp import LocalIdp

if TYPE_CHECKING:
    from conftest import LocalPlane, Upstreams


@pytest.fixture
def idp() -> Iterator[LocalIdp]:
    server = LocalIdp()  # started
    yield server
    server.stop()


async def test_an_oidc_token_opens_an_mcp_consumer(
    plane: LocalPlane, upstreams: Upstreams, idp: LocalIdp
) -> None:
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("weather", upstreams.weather)
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
    await tenant.add_consumer("agent", ["weather"], type="MCP", with_key=False)
    await tenant.put_consumer("agent", auth_ids=[auth.id])
    url = plane.mcp_url(tenant)
    accept = {"Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(timeout=20) as http:
        bearer = {**accept, "Authorization": f"Bearer {idp.mint()}"}
        opened = await http.post(url, json=init, headers=bearer)
        assert opened.status_code == 200, opened.text
        session = {**bearer, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        tools = (await http.post(url, json=listing, headers=session)).json()["result"]["tools"]
        assert "forecast" in {t["name"] for t in tools}

        other = {**accept, "Authorization": f"Bearer {idp.mint(aud='someone-else')}"}
        refused = await http.post(url, json=init, headers=other)
        assert refused.status_code == 401
        assert "resource_metadata=" in refused.headers["www-authenticate"]
