"""The plane's OAuth 2.1 endpoints through an ASGI client, over a replica state filled
with models (no bus): metadata, registration, the connect page, PKCE, codes, refresh
rotation, audience binding."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

import httpx
import httpx2
import jwt
from aiohttp import web
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from trustgate_core.access import bearer_token
from trustgate_core.counters import Counters, LocalCounters, RedisCounters
from trustgate_core.events import AuthEvent, ConsumerEvent, GatewayEvent
from trustgate_core.ids import hash_api_key, uuid7
from trustgate_core.models import Auth, Consumer, Gateway
from trustgate_core.replica import ReplicaState
from trustgate_core.service.asgi import Receive, Scope, Send, send_json
from trustgate_mcp.oauth.grants import s256
from trustgate_mcp.oauth.server import OAuthServer
from trustgate_mcp.settings import McpSettings
from trustgate_testkit.idp import LocalIdp

NOW = datetime.now(UTC)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@dataclass
class World:
    state: ReplicaState = field(default_factory=ReplicaState)
    revision: int = 0

    def put(self, entity: Any) -> Any:
        self.revision += 1
        kind = {Gateway: GatewayEvent, Consumer: ConsumerEvent, Auth: AuthEvent}[type(entity)]
        event = kind(
            op="upsert",
            revision=self.revision,
            gateway_id=entity.gateway_id,
            entity_id=entity.id,
            occurred_at=NOW,
            entity=entity,
        )
        assert self.state.apply(event)
        return entity

    def gateway(self) -> Gateway:
        gw = uuid7()
        return self.put(
            Gateway(id=gw, gateway_id=gw, created_at=NOW, updated_at=NOW, slug=f"gw-{gw.hex[-8:]}")
        )

    def api_key(self, gateway: Gateway, **changes: Any) -> tuple[Auth, str]:
        key = "ag_" + secrets.token_urlsafe(24)
        fields: dict[str, Any] = {
            "id": uuid7(),
            "gateway_id": gateway.id,
            "created_at": NOW,
            "updated_at": NOW,
            "name": "agent key",
            "type": "api_key",
            "key_hash": hash_api_key(key),
        }
        return self.put(Auth(**{**fields, **changes})), key

    def consumer(self, gateway: Gateway, auth_ids: list[UUID], **changes: Any) -> Consumer:
        cid = uuid7()
        fields: dict[str, Any] = {
            "id": cid,
            "gateway_id": gateway.id,
            "created_at": NOW,
            "updated_at": NOW,
            "name": "Agents",
            "slug": f"agents-{cid.hex[-10:]}",
            "type": "MCP",
            "auth_ids": auth_ids,
        }
        return self.put(Consumer(**{**fields, **changes}))

    def changed(self, entity: Any, **changes: Any) -> Any:
        return self.put(entity.model_copy(update=changes))


def server(world: World, counters: Counters | None = None, **env: Any) -> OAuthServer:
    settings = McpSettings(**env)
    return OAuthServer(world.state, settings, counters or LocalCounters())


# -- the client side of the flow ---------------------------------------------------------
BASE = "http://mcp.test"
REDIRECT = "http://127.0.0.1:33418/callback"


def client_for(oauth: OAuthServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=oauth), base_url=BASE)


async def registered(http: httpx.AsyncClient, redirect: str = REDIRECT) -> str:
    answer = await http.post(
        "/oauth/register", json={"redirect_uris": [redirect], "client_name": "Claude"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["client_id"])


def authorize_params(client_id: str, slug: str, challenge: str, **changes: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": f"{BASE}/{slug}/mcp",
        "scope": "mcp",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v != ""}


def form_token(page: str) -> str:
    match = re.search(r'name="form" value="([^"]+)"', page)
    assert match, page
    return html.unescape(match.group(1))


async def sign_in(http: httpx.AsyncClient, page: httpx.Response, key: str) -> httpx.Response:
    return await http.post("/oauth/authorize", data={"form": form_token(page.text), "api_key": key})


def redirect_query(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


@dataclass
class Tenant:
    world: World
    gateway: Gateway
    auth: Auth
    key: str
    consumer: Consumer

    @property
    def resource(self) -> str:
        return f"{BASE}/{self.consumer.slug}/mcp"


def tenant() -> Tenant:
    world = World()
    gateway = world.gateway()
    auth, key = world.api_key(gateway)
    consumer = world.consumer(gateway, [auth.id])
    return Tenant(world, gateway, auth, key, consumer)


async def code_for(http: httpx.AsyncClient, t: Tenant, client_id: str, challenge: str) -> str:
    page = await http.get(
        "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
    )
    assert page.status_code == 200, page.text
    query = redirect_query(await sign_in(http, page, t.key))
    assert query["state"] == "st-123"
    return query["code"]


async def tokens(
    http: httpx.AsyncClient, client_id: str, code: str, verifier: str, **changes: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    form.update(changes)
    return await http.post("/oauth/token", data={k: v for k, v in form.items() if v != ""})


# -- metadata ------------------------------------------------------------------------------
async def test_protected_resource_metadata_names_the_mcp_url_and_this_authorization_server() -> (
    None
):
    oauth = server(World())
    async with client_for(oauth) as http:
        answer = await http.get("/.well-known/oauth-protected-resource/team-a/mcp")
        assert answer.status_code == 200
        assert answer.json()["resource"] == f"{BASE}/team-a/mcp"
        assert answer.json()["authorization_servers"] == [BASE]
        assert answer.json()["bearer_methods_supported"] == ["header"]
        assert answer.json()["scopes_supported"] == ["mcp"]
        assert (await http.get("/.well-known/oauth-protected-resource/a/b/mcp")).status_code == 404
    assert oauth.challenge(f"{BASE}/team-a/mcp") == (
        f'Bearer resource_metadata="{BASE}/.well-known/oauth-protected-resource/team-a/mcp"'
    )


async def test_the_public_url_setting_wins_over_the_host_header() -> None:
    oauth = server(World(), MCP_PUBLIC_URL="https://mcp.example.com/")
    async with client_for(oauth) as http:
        prm = (await http.get("/.well-known/oauth-protected-resource/team-a/mcp")).json()
        meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert prm["resource"] == "https://mcp.example.com/team-a/mcp"
    assert meta["issuer"] == "https://mcp.example.com"
    assert meta["token_endpoint"] == "https://mcp.example.com/oauth/token"


async def test_authorization_server_metadata_offers_code_with_s256_only_and_public_clients() -> (
    None
):
    async with client_for(server(World())) as http:
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-authorization-server/x/mcp",
        ):
            meta = (await http.get(path)).json()
            assert meta["issuer"] == BASE
            assert meta["code_challenge_methods_supported"] == ["S256"]
            assert meta["token_endpoint_auth_methods_supported"] == ["none"]
            assert meta["registration_endpoint"] == f"{BASE}/oauth/register"
        jwks = (await http.get("/.well-known/jwks.json")).json()
    assert [k["alg"] for k in jwks["keys"]] == ["EdDSA"]


async def test_every_replica_derives_the_same_signing_key_from_the_secrets_key() -> None:
    one, two = server(World()), server(World())
    other = server(World(), TRUSTGATE_SECRETS_KEY="another-secret-key-0123456789-abcdef")
    assert one.signer.jwks() == two.signer.jwks()
    assert other.signer.jwks() != one.signer.jwks()


# -- registration -------------------------------------------------------------------------
async def test_registration_makes_a_public_client_and_checks_redirect_uris() -> None:
    async with client_for(server(World())) as http:
        answer = await http.post(
            "/oauth/register",
            json={
                "redirect_uris": ["https://app.example.com/cb", "http://localhost:8765/cb"],
                "token_endpoint_auth_method": "client_secret_post",
            },
        )
        assert answer.status_code == 201
        assert answer.json()["token_endpoint_auth_method"] == "none"
        assert "client_secret" not in answer.json()
        for bad in (
            {"redirect_uris": ["http://app.example.com/cb"]},
            {"redirect_uris": ["https://app.example.com/cb#frag"]},
            {"redirect_uris": ["javascript:alert(1)"]},
            {"redirect_uris": []},
            {"client_name": "no uris"},
        ):
            refused = await http.post("/oauth/register", json=bad)
            assert refused.status_code == 400, bad
            assert refused.json()["error"] == "invalid_redirect_uri"
        refused = await http.post(
            "/oauth/register", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert refused.json()["error"] == "invalid_client_metadata"
        grants = await http.post(
            "/oauth/register", json={"redirect_uris": [REDIRECT], "grant_types": ["password"]}
        )
        assert grants.json()["error"] == "invalid_client_metadata"


# -- authorization ------------------------------------------------------------------------
async def test_the_connect_page_signs_in_with_the_consumers_api_key_and_returns_a_code() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        _, challenge = pkce()
        page = await http.get(
            "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
        )
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Claude" in page.text and t.resource in page.text
        assert not re.search(r"<script|<link|<img|src=", page.text)  # no external assets
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

        wrong = await sign_in(http, page, "ag_not-a-key")
        assert wrong.status_code == 401
        assert "does not open this MCP server" in wrong.text
        assert "ag_not-a-key" not in wrong.text

        query = redirect_query(await sign_in(http, wrong, t.key))
        assert query["state"] == "st-123" and query["code"]


async def test_a_key_of_another_consumer_or_a_disabled_key_does_not_sign_in() -> None:
    t = tenant()
    other_auth, other_key = t.world.api_key(t.gateway)
    t.world.consumer(t.gateway, [other_auth.id])
    disabled, disabled_key = t.world.api_key(t.gateway, enabled=False)
    t.world.changed(t.consumer, auth_ids=[t.auth.id, disabled.id])
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        _, challenge = pkce()
        page = await http.get(
            "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
        )
        for key in (other_key, disabled_key, ""):
            assert (await sign_in(http, page, key)).status_code == 401


async def test_a_forged_or_tampered_form_token_is_refused() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        _, challenge = pkce()
        page = await http.get(
            "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
        )
        token = form_token(page.text)
        tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        for form in (tampered, "made-up"):
            answer = await http.post("/oauth/authorize", data={"form": form, "api_key": t.key})
            assert answer.status_code == 400
            assert "expired" in answer.text


async def test_pkce_s256_is_required_and_errors_go_back_to_the_registered_redirect_uri() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        _, challenge = pkce()
        slug = t.consumer.slug
        cases = {
            "invalid_request": [
                authorize_params(client_id, slug, challenge, code_challenge_method="plain"),
                authorize_params(client_id, slug, challenge, code_challenge_method=""),
                authorize_params(client_id, slug, "", code_challenge_method="S256"),
            ],
            "unsupported_response_type": [
                authorize_params(client_id, slug, challenge, response_type="token")
            ],
            "invalid_target": [
                authorize_params(client_id, slug, challenge, resource=""),
                authorize_params(
                    client_id, slug, challenge, resource="https://elsewhere.example/x/mcp"
                ),
            ],
            "invalid_scope": [authorize_params(client_id, slug, challenge, scope="mcp admin")],
        }
        for error, requests in cases.items():
            for params in requests:
                query = redirect_query(await http.get("/oauth/authorize", params=params))
                assert query["error"] == error, params
                assert query["state"] == "st-123"

        # before the redirect URI is known to be the client's, nothing is redirected
        unknown_client = await http.get(
            "/oauth/authorize", params=authorize_params("forged", slug, challenge)
        )
        assert unknown_client.status_code == 400
        assert unknown_client.json()["error"] == "invalid_client"
        other_uri = await http.get(
            "/oauth/authorize",
            params=authorize_params(
                client_id, slug, challenge, redirect_uri="https://evil.example/cb"
            ),
        )
        assert other_uri.status_code == 400
        assert other_uri.json()["error"] == "invalid_request"


async def test_the_connect_page_is_rate_limited_per_client_ip() -> None:
    t = tenant()
    async with client_for(server(t.world, MCP_CONNECT_RATE_LIMIT_PER_MINUTE=3)) as http:
        client_id = await registered(http)
        _, challenge = pkce()
        page = await http.get(
            "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
        )
        statuses = [(await sign_in(http, page, "ag_wrong")).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        blocked = await sign_in(http, page, t.key)
        assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"


# -- tokens --------------------------------------------------------------------------------
async def test_the_code_becomes_an_audience_bound_token_that_verify_accepts() -> None:
    t = tenant()
    oauth = server(t.world)
    async with client_for(oauth) as http:
        client_id = await registered(http)
        verifier, challenge = pkce()
        answer = await tokens(
            http, client_id, await code_for(http, t, client_id, challenge), verifier
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "mcp"
    assert body["expires_in"] == 3600 and body["refresh_token"]

    grant = oauth.verify(body["access_token"], t.resource)
    assert grant is not None
    assert (grant.gateway_id, grant.consumer_id, grant.auth_id) == (
        t.gateway.id,
        t.consumer.id,
        t.auth.id,
    )
    assert grant.scopes == ("mcp",)

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == t.resource and claims["iss"] == BASE
    assert claims["token_use"] == "mcp_access" and claims["consumer_id"] == str(t.consumer.id)
    assert jwt.get_unverified_header(body["access_token"])["kid"] == oauth.signer.kid

    assert (
        oauth.verify(body["access_token"], t.resource.replace("mcp.test", "MCP.Test")) is not None
    )
    # another consumer's MCP URL, another host: refused
    other = t.world.consumer(t.gateway, [t.auth.id])
    assert oauth.verify(body["access_token"], f"{BASE}/{other.slug}/mcp") is None
    assert oauth.verify(body["access_token"], f"http://other.test/{t.consumer.slug}/mcp") is None
    assert oauth.verify(body["access_token"] + "x", t.resource) is None
    assert oauth.verify("not-a-jwt", t.resource) is None
    # another replica with the same secrets key verifies; one with another key does not
    assert server(t.world).verify(body["access_token"], t.resource) is not None
    assert (
        server(t.world, TRUSTGATE_SECRETS_KEY="another-secret-key-0123456789-abcdef").verify(
            body["access_token"], t.resource
        )
        is None
    )

    # the key is disabled: its tokens stop working at once
    t.world.changed(t.auth, enabled=False)
    assert oauth.verify(body["access_token"], t.resource) is None


async def test_a_wrong_verifier_a_plain_verifier_or_another_redirect_uri_is_refused() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        verifier, challenge = pkce()
        wrong_verifier = await tokens(
            http, client_id, await code_for(http, t, client_id, challenge), pkce()[0]
        )
        assert wrong_verifier.status_code == 400
        assert wrong_verifier.json()["error"] == "invalid_grant"
        plain = await tokens(
            http, client_id, await code_for(http, t, client_id, challenge), challenge
        )
        assert plain.json()["error"] == "invalid_grant"
        missing = await tokens(http, client_id, await code_for(http, t, client_id, challenge), "")
        assert missing.json()["error"] == "invalid_request"
        other_uri = await tokens(
            http,
            client_id,
            await code_for(http, t, client_id, challenge),
            verifier,
            redirect_uri="http://127.0.0.1:1/other",
        )
        assert other_uri.json()["error"] == "invalid_grant"
        other_client = await tokens(
            http, await registered(http), await code_for(http, t, client_id, challenge), verifier
        )
        assert other_client.json()["error"] == "invalid_grant"
        forged_client = await tokens(http, "forged", "x", verifier)
        assert (forged_client.status_code, forged_client.json()["error"]) == (401, "invalid_client")
        unsupported = await tokens(http, client_id, "x", verifier, grant_type="password")
        assert unsupported.json()["error"] == "unsupported_grant_type"
        not_form = await http.post("/oauth/token", json={"grant_type": "authorization_code"})
        assert not_form.status_code == 400 and not_form.json()["error"] == "invalid_request"


async def test_a_code_is_single_use() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        verifier, challenge = pkce()
        code = await code_for(http, t, client_id, challenge)
        first = await tokens(http, client_id, code, verifier)
        assert first.status_code == 200
        again = await tokens(http, client_id, code, verifier)
        assert again.status_code == 400
        assert again.json() == {
            "error": "invalid_grant",
            "error_description": "the authorization code was already used",
        }
        # the code was replayed: the tokens it gave can no longer be refreshed
        refreshed = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.json()["refresh_token"],
                "client_id": client_id,
            },
        )
        assert refreshed.json()["error_description"] == "the refresh token was revoked"


async def test_a_code_is_single_use_across_replicas_sharing_redis(infra: Any) -> None:
    t = tenant()
    counters = [RedisCounters(infra.redis_url), RedisCounters(infra.redis_url)]
    one, two = server(t.world, counters[0]), server(t.world, counters[1])
    try:
        async with client_for(one) as http_one, client_for(two) as http_two:
            client_id = await registered(http_one)
            verifier, challenge = pkce()
            code = await code_for(http_one, t, client_id, challenge)
            first = await tokens(http_two, client_id, code, verifier)
            assert first.status_code == 200  # registered and signed in on one, redeemed on two
            assert (await tokens(http_one, client_id, code, verifier)).json()[
                "error"
            ] == "invalid_grant"
    finally:
        for c in counters:
            await c.aclose()


async def test_refresh_rotates_and_each_refresh_token_is_single_use() -> None:
    t = tenant()
    oauth = server(t.world)
    async with client_for(oauth) as http:
        client_id = await registered(http)
        verifier, challenge = pkce()
        first = (
            await tokens(http, client_id, await code_for(http, t, client_id, challenge), verifier)
        ).json()

        def refresh(token: str, **extra: str) -> Any:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": client_id,
                **extra,
            }
            return http.post("/oauth/token", data=form)

        second = await refresh(first["refresh_token"], resource=t.resource)
        assert second.status_code == 200, second.text
        assert second.json()["refresh_token"] != first["refresh_token"]
        assert oauth.verify(second.json()["access_token"], t.resource) is not None
        reused = await refresh(first["refresh_token"])
        assert reused.json()["error_description"] == "the refresh token was already used"
        # a reused refresh token means a leak: the whole sign-in's refresh chain is revoked
        revoked = await refresh(second.json()["refresh_token"])
        assert revoked.json()["error_description"] == "the refresh token was revoked"
        second = await tokens(
            http, client_id, await code_for(http, t, client_id, challenge), verifier
        )
        other_target = await refresh(second.json()["refresh_token"], resource=f"{BASE}/x/mcp")
        assert other_target.json()["error"] == "invalid_target"
        assert (await refresh("garbage")).json()["error"] == "invalid_grant"

        # the consumer is deactivated: refreshing stops
        fresh = await tokens(
            http, client_id, await code_for(http, t, client_id, challenge), verifier
        )
        t.world.changed(t.consumer, active=False)
        stopped = (await refresh(fresh.json()["refresh_token"])).json()
        assert stopped == {
            "error": "invalid_grant",
            "error_description": "the sign-in no longer opens this MCP server",
        }


async def test_a_refresh_token_of_a_disabled_key_is_refused() -> None:
    t = tenant()
    async with client_for(server(t.world)) as http:
        client_id = await registered(http)
        verifier, challenge = pkce()
        first = (
            await tokens(http, client_id, await code_for(http, t, client_id, challenge), verifier)
        ).json()
        t.world.changed(t.auth, enabled=False)
        answer = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "client_id": client_id,
            },
        )
        assert answer.json()["error"] == "invalid_grant"


async def test_wrong_methods_and_odd_input_get_oauth_errors_not_500s() -> None:
    async with client_for(server(World())) as http:
        assert (await http.get("/oauth/token")).status_code == 405
        assert (await http.post("/.well-known/jwks.json")).status_code == 405
        dup = await http.get("/oauth/authorize?client_id=a&client_id=b")
        assert dup.status_code == 400 and dup.json()["error"] == "invalid_request"
        big = await http.post("/oauth/register", content=b"x" * (70 << 10))
        assert big.status_code == 413
        bad_host = await http.get(
            "/.well-known/oauth-authorization-server", headers={"host": "evil.test/<script>"}
        )
        assert bad_host.status_code == 400


# -- the MCP SDK's OAuth client, end to end ------------------------------------------------
class ProtectedMcp:
    """Test-only stand-in for the plane's ``/{slug}/mcp`` endpoint: 401 with the OAuth
    server's challenge unless the bearer token verifies for this exact URL, then 200 with
    what the grant says. Everything else goes to the OAuth server."""

    def __init__(self, oauth: OAuthServer) -> None:
        self.oauth = oauth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if self.oauth.handles(path):
            await self.oauth(scope, receive, send)
            return
        resource = self.oauth.resource_url(scope, path.split("/")[1])
        assert resource == BASE + path
        headers = dict(scope["headers"])
        token = bearer_token(headers.get(b"authorization", b"").decode())
        grant = self.oauth.verify(token, resource) if token else None
        if grant is None:
            challenge = self.oauth.challenge(resource).encode()
            await send_json(
                send, 401, {"error": "unauthorized"}, [(b"www-authenticate", challenge)]
            )
            return
        doc = {"consumer_id": str(grant.consumer_id), "auth_id": str(grant.auth_id)}
        await send_json(send, 200, doc, [])


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_mcp_sdk_oauth_client_discovers_registers_signs_in_and_refreshes() -> None:
    t = tenant()
    oauth = server(t.world)
    browser = client_for(oauth)
    answers: list[dict[str, str]] = []
    visited: list[str] = []

    async def redirect_handler(url: str) -> None:
        """The person's browser: the connect page, the API key, the redirect back."""
        visited.append(url)
        page = await browser.get(url)
        answers.append(redirect_query(await sign_in(browser, page, t.key)))

    async def callback_handler() -> AuthorizationCodeResult:
        answer = answers.pop()
        return AuthorizationCodeResult(code=answer["code"], state=answer["state"])

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=t.resource,
        client_metadata=OAuthClientMetadata(redirect_uris=[AnyUrl(REDIRECT)], client_name="sdk"),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    transport = httpx2.ASGITransport(app=ProtectedMcp(oauth))
    async with browser, httpx2.AsyncClient(transport=transport, auth=provider) as agent:
        first = await agent.post(t.resource, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert first.status_code == 200, first.text
        assert first.json() == {"consumer_id": str(t.consumer.id), "auth_id": str(t.auth.id)}
        assert len(visited) == 1
        authorize = dict(parse_qsl(urlsplit(visited[0]).query))
        assert authorize["resource"] == t.resource
        assert authorize["code_challenge_method"] == "S256"
        assert storage.client is not None and storage.client.token_endpoint_auth_method == "none"
        assert storage.tokens is not None
        issued = storage.tokens

        # the access token expires (client side): the SDK refreshes, no second sign-in
        provider.context.token_expiry_time = 1.0
        second = await agent.post(t.resource, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert second.status_code == 200
        assert len(visited) == 1
        assert storage.tokens.refresh_token != issued.refresh_token
        assert storage.tokens.access_token != issued.access_token


# -- sign-in with the configured identity provider ------------------------------------------
@dataclass
class IdpTokenEndpoint:
    """The token endpoint ``LocalIdp`` lacks (it has discovery, JWKS and introspection):
    checks the client and the PKCE verifier and answers an id token ``LocalIdp`` signs."""

    idp: LocalIdp
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> nonce, challenge, sub
    url: str = ""

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        issued = self.codes.pop(str(form.get("code")), None)
        client_ok = (form.get("client_id"), form.get("client_secret")) == self.idp.client
        if issued is None or not client_ok:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if s256(str(form.get("code_verifier"))) != issued["challenge"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        id_token = self.idp.mint(aud=self.idp.client[0], nonce=issued["nonce"], sub=issued["sub"])
        return web.json_response({"id_token": id_token, "access_token": "opaque"})


async def test_sign_in_with_the_configured_idp_identifies_the_person_by_sub() -> None:
    t = tenant()
    idp = LocalIdp(client_id="mcp-plane", client_secret="idp-s3cret")
    oidc = t.world.put(
        Auth(
            id=uuid7(),
            gateway_id=t.gateway.id,
            created_at=NOW,
            updated_at=NOW,
            name="company sso",
            type="oidc",
            config={"issuer": idp.issuer},
        )
    )
    t.world.changed(t.consumer, auth_ids=[t.auth.id, oidc.id])
    no_sso = t.world.consumer(t.gateway, [t.auth.id])
    endpoint = IdpTokenEndpoint(idp)
    app = web.Application()
    app.router.add_post("/token", endpoint.token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    oauth = server(
        t.world,
        MCP_DEFAULT_IDP_ISSUER=idp.issuer,
        MCP_DEFAULT_IDP_NAME="Company SSO",
        MCP_DEFAULT_IDP_CLIENT_ID="mcp-plane",
        MCP_DEFAULT_IDP_CLIENT_SECRET="idp-s3cret",
        MCP_DEFAULT_IDP_AUTHORIZE_URL=f"{idp.issuer}/authorize",
        MCP_DEFAULT_IDP_TOKEN_URL=f"http://127.0.0.1:{port}/token",
        MCP_DEFAULT_IDP_JWKS_URL=idp.jwks_url,
    )

    async def through_idp(
        http: httpx.AsyncClient, client_id: str, slug: str, challenge: str, sub: str
    ) -> httpx.Response:
        page = await http.get(
            "/oauth/authorize", params=authorize_params(client_id, slug, challenge)
        )
        link = re.search(r'class="idp" href="([^"]+)">Sign in with Company SSO', page.text)
        assert link, page.text
        to_idp = await http.get(html.unescape(link.group(1)))
        assert to_idp.status_code == 302
        sent = dict(parse_qsl(urlsplit(to_idp.headers["location"]).query))
        assert to_idp.headers["location"].startswith(f"{idp.issuer}/authorize?")
        assert sent["redirect_uri"] == f"{BASE}/oauth/callback"
        assert sent["code_challenge_method"] == "S256" and sent["client_id"] == "mcp-plane"
        # the IdP signs the person in and sends the browser back with a code
        code = secrets.token_urlsafe(16)
        endpoint.codes[code] = {
            "nonce": sent["nonce"],
            "challenge": sent["code_challenge"],
            "sub": sub,
        }
        return await http.get("/oauth/callback", params={"code": code, "state": sent["state"]})

    try:
        async with client_for(oauth) as http:
            client_id = await registered(http)
            verifier, challenge = pkce()
            back = await through_idp(http, client_id, t.consumer.slug, challenge, "alice")
            issued = await tokens(http, client_id, redirect_query(back)["code"], verifier)
            assert issued.status_code == 200, issued.text
            grant = oauth.verify(issued.json()["access_token"], t.resource)
            assert grant is not None
            assert (grant.subject, grant.auth_id, grant.consumer_id) == (
                "alice",
                oidc.id,
                t.consumer.id,
            )

            # detaching the IdP's auth from the consumer ends that access
            t.world.changed(t.consumer, auth_ids=[t.auth.id])
            assert oauth.verify(issued.json()["access_token"], t.resource) is None

            refused = await through_idp(http, client_id, no_sso.slug, challenge, "bob")
            assert refused.status_code == 401
            assert "does not accept sign-in with Company SSO" in refused.text

            # the IdP refuses, or its token endpoint does not take the code: the page says so
            page = await http.get(
                "/oauth/authorize", params=authorize_params(client_id, t.consumer.slug, challenge)
            )
            link = re.search(r'class="idp" href="([^"]+)"', page.text)
            assert link
            to_idp = await http.get(html.unescape(link.group(1)))
            state = dict(parse_qsl(urlsplit(to_idp.headers["location"]).query))["state"]
            denied = await http.get(
                "/oauth/callback", params={"error": "access_denied", "state": state}
            )
            assert denied.status_code == 401 and "Company SSO did not sign you in" in denied.text
            unknown = await http.get("/oauth/callback", params={"code": "nope", "state": state})
            assert unknown.status_code == 401
            assert "Signing in with Company SSO failed" in unknown.text

            expired = await http.get("/oauth/callback", params={"code": "x", "state": "forged"})
            assert expired.status_code == 400
    finally:
        await runner.cleanup()
        idp.stop()


async def test_after_a_key_rotation_tokens_clients_and_refresh_tokens_of_the_old_key_still_work() -> (
    None
):
    t = tenant()
    old_key, new_key = "old-secret-key-0123456789-abcdefgh", "new-secret-key-0123456789-abcdefgh"
    before = server(t.world, TRUSTGATE_SECRETS_KEY=old_key)
    after = server(t.world, TRUSTGATE_SECRETS_KEY=new_key, MCP_SESSION_PREVIOUS_KEYS=old_key)
    async with client_for(before) as old_http, client_for(after) as new_http:
        client_id = await registered(old_http)
        verifier, challenge = pkce()
        issued = await tokens(
            old_http, client_id, await code_for(old_http, t, client_id, challenge), verifier
        )
        access = issued.json()["access_token"]
        assert after.verify(access, t.resource) is not None
        assert len((await new_http.get("/.well-known/jwks.json")).json()["keys"]) == 2
        refreshed = await new_http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": issued.json()["refresh_token"],
                "client_id": client_id,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        renewed = refreshed.json()["access_token"]
        assert jwt.get_unverified_header(renewed)["kid"] == after.signer.kid != before.signer.kid
        assert before.verify(renewed, t.resource) is None  # the old key never learnt the new
