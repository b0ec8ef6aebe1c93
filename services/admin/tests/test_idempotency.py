"""``Idempotency-Key`` on admin POSTs: a retried create gets the first answer and creates
nothing; the same key with another body is 422; a duplicate while the first is in flight
is 409 (draft-ietf-httpapi-idempotency-key-header)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_testkit.fixtures import wait_for


@pytest.fixture
async def gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"idem-{uuid.uuid4().hex[:8]}"})
    return str(r.json()["id"])


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_a_retried_create_returns_the_first_answer_and_creates_nothing(
    api: httpx.AsyncClient, gateway: str
) -> None:
    key = _key()
    url = f"/v1/gateways/{gateway}/auths"
    first = await api.post(url, json={"name": "retried", "type": "api_key"}, headers=key)
    assert first.status_code == 201, first.text
    again = await api.post(url, json={"type": "api_key", "name": "retried"}, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()  # the same id, and the key shown once, again
    listed = (await api.get(url)).json()
    assert listed["total"] == 1


async def test_without_a_key_a_second_create_is_a_new_request(
    api: httpx.AsyncClient, gateway: str
) -> None:
    url = f"/v1/gateways/{gateway}/auths"
    a = await api.post(url, json={"name": "a", "type": "api_key"})
    b = await api.post(url, json={"name": "a", "type": "api_key"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_the_same_key_with_another_body_is_422(api: httpx.AsyncClient, gateway: str) -> None:
    key = _key()
    url = f"/v1/gateways/{gateway}/consumers"
    assert (await api.post(url, json={"name": "one"}, headers=key)).status_code == 201
    r = await api.post(url, json={"name": "two"}, headers=key)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "idempotency_key_reused"
    assert (await api.get(url)).json()["total"] == 1


async def test_keys_belong_to_their_admin(admin, gateway: str) -> None:  # type: ignore[no-untyped-def]
    key = _key()
    url = f"/v1/gateways/{gateway}/roles"
    ids = []
    for subject in ("alice", "bob"):
        token = mint_admin_token(admin.settings.server_secret_key, subject=subject)
        async with admin.client(token) as client:
            r = await client.post(url, json={"name": f"role-{subject}"}, headers=key)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    assert ids[0] != ids[1]


async def test_a_refused_request_is_not_stored(api: httpx.AsyncClient, gateway: str) -> None:
    key = _key()
    url = f"/v1/gateways/{gateway}/roles"
    assert (await api.post(url, json={"name": "taken"})).status_code == 201
    assert (await api.post(url, json={"name": "taken"}, headers=key)).status_code == 409
    await api.delete(f"{url}/{(await api.get(url)).json()['items'][0]['id']}")
    assert (await api.post(url, json={"name": "taken"}, headers=key)).status_code == 201


async def test_a_malformed_key_is_400(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/gateways", json={}, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_idempotency_key"


async def test_a_duplicate_while_the_first_is_in_flight_is_409(
    api: httpx.AsyncClient, gateway: str, admin_db: str
) -> None:
    """The first create is held on a table lock the test takes; the duplicate, sent
    meanwhile, is refused at once; the first then completes and is the stored answer."""
    key = _key()
    url = f"/v1/gateways/{gateway}/consumers"
    body = {"name": f"slow-{uuid.uuid4().hex[:6]}"}
    blocker = await asyncpg.connect(admin_db)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE consumers IN EXCLUSIVE MODE")
        first = asyncio.create_task(api.post(url, json=body, headers=key))

        async def waiting_on_the_lock() -> bool:
            waits = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(waits)

        await wait_for(waiting_on_the_lock, timeout=10, message="the first create never blocked")
        duplicate = await api.post(url, json=body, headers=key)
        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.json()["error"] == "idempotency_key_in_use"
        await tx.rollback()
        answer = await asyncio.wait_for(first, 10)
        assert answer.status_code == 201, answer.text
    finally:
        await blocker.close()
    replay = await api.post(url, json=body, headers=key)
    assert replay.json() == answer.json()
