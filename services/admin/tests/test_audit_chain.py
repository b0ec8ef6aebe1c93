"""The audit chain in Postgres: admin changes of every kind, and concurrent ones, make a
contiguous chain that verifies; changing, deleting or inserting one row in the database
makes ``verify`` fail and name that entry and what happened; anchors catch what the
chain alone cannot; ``trustgate admin audit verify`` exits accordingly."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import nats
import pytest

from trustgate_admin.governance.chain import verify_database
from trustgate_admin.governance.chain_hash import entry_hash
from trustgate_admin.governance.chain_verify import Anchor
from trustgate_core.events.audit import decode_audit_event
from trustgate_core.events.subjects import audit_subject
from trustgate_testkit.admin import SECRET, admin_settings, running_admin
from trustgate_testkit.fixtures import Infra, NatsServer, drop_database

REGISTRY = {
    "name": "primary",
    "provider": "openai",
    "auth": {"type": "api_key", "api_key": {"api_key": "sk-chain-test-0000"}},
}
CONCURRENT = 20


async def _mixed_changes(api: Any) -> None:
    """Creates, updates and deletes of several kinds, as an operator makes them."""
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    base = f"/v1/gateways/{gw}"
    assert (await api.put(base, json={"name": "chained"})).status_code == 200
    reg = (await api.post(f"{base}/registries", json=REGISTRY)).json()["id"]
    con = (await api.post(f"{base}/consumers", json={"name": "c"})).json()["id"]
    assert (await api.put(f"{base}/consumers/{con}", json={"name": "c2"})).status_code == 200
    role = (await api.post(f"{base}/roles", json={"name": "r"})).json()["id"]
    assert (await api.delete(f"{base}/roles/{role}")).status_code == 204
    assert (await api.delete(f"{base}/registries/{reg}")).status_code == 204
    other = (await api.post("/v1/gateways", json={})).json()["id"]
    assert (await api.delete(f"/v1/gateways/{other}")).status_code == 204
    # concurrent writers: every one appends under the chain's lock
    answers = await asyncio.gather(
        *(api.post(f"{base}/consumers", json={"name": f"n{i}"}) for i in range(CONCURRENT))
    )
    assert [a.status_code for a in answers] == [201] * CONCURRENT


@pytest.fixture(scope="module")
async def chain_db(database_factory: Any, bus: NatsServer) -> str:
    """A database whose chain holds mixed admin changes; no admin runs on it afterwards
    (so it can be copied)."""
    dsn = str(await database_factory("tg_chain"))
    async with running_admin(admin_settings(dsn, bus.url)) as admin, admin.client() as api:
        await _mixed_changes(api)
    return dsn


@pytest.fixture
async def copy(chain_db: str, infra: Infra) -> AsyncIterator[str]:
    """A copy of the chain's database to tamper with."""
    template = urlsplit(chain_db).path.lstrip("/")
    name = f"tg_chain_copy_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", template
        )
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    dsn = chain_db.rsplit("/", 1)[0] + "/" + name
    try:
        yield dsn
    finally:
        await drop_database(infra.postgres_dsn, dsn)


async def _sql(dsn: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        results = []
        async with conn.transaction():
            for statement in statements:
                results.append(await conn.fetch(statement))
        return results
    finally:
        await conn.close()


async def test_mixed_and_concurrent_changes_make_a_contiguous_chain_that_verifies(
    chain_db: str,
) -> None:
    (rows,) = await _sql(chain_db, "SELECT seq, kind, operation FROM audit_log ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) == 10 + CONCURRENT
    assert {(r["kind"], r["operation"]) for r in rows} >= {
        ("gateway", "create"),
        ("gateway", "update"),
        ("gateway", "delete"),
        ("registry", "delete"),
        ("consumer", "update"),
        ("role", "delete"),
    }
    verdict = await verify_database(chain_db)
    assert verdict.ok and verdict.count == len(rows) and verdict.head_seq == len(rows)


async def test_the_audit_events_on_the_bus_carry_their_place_in_the_chain(
    chain_db: str, bus: NatsServer
) -> None:
    (rows,) = await _sql(chain_db, "SELECT * FROM audit_log WHERE seq <= 2 ORDER BY seq")
    gw = rows[0]["gateway_id"]  # the first gateway's create (seq 1) and update (seq 2)
    nc = await nats.connect(bus.url)
    try:
        sub = await nc.jetstream().subscribe(audit_subject(gw), ordered_consumer=True)
        got = [decode_audit_event((await sub.next_msg(timeout=5)).data) for _ in range(2)]
    finally:
        await nc.close()
    assert [(e.seq, e.prev_hash, e.hash) for e in got] == [
        (r["seq"], r["prev_hash"], r["hash"]) for r in rows
    ]


async def test_the_api_lists_each_entry_with_its_place_in_the_chain(
    chain_db: str, bus: NatsServer
) -> None:
    verdict = await verify_database(chain_db)
    async with running_admin(admin_settings(chain_db, bus.url)) as admin, admin.client() as api:
        newest = (await api.get("/v1/audit", params={"size": 2})).json()
    head, before = newest["items"]
    assert (head["seq"], head["hash"]) == (verdict.head_seq, verdict.head_hash)
    assert head["prev_hash"] == before["hash"] and before["seq"] == head["seq"] - 1
    assert newest["total"] == verdict.count


async def test_an_updated_row_is_named_changed(copy: str) -> None:
    (rows,) = await _sql(copy, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 5 RETURNING id")
    verdict = await verify_database(copy)
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (5, "changed")
    assert verdict.finding.entry_id == rows[0]["id"] and verdict.count == 4


async def test_a_row_moved_by_one_microsecond_is_named_changed(copy: str) -> None:
    await _sql(
        copy,
        "UPDATE audit_log SET occurred_at = occurred_at + interval '1 microsecond' WHERE seq = 9",
    )
    verdict = await verify_database(copy)
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (9, "changed")


async def test_a_deleted_row_is_named_removed(copy: str) -> None:
    await _sql(copy, "DELETE FROM audit_log WHERE seq = 7")
    verdict = await verify_database(copy, page_size=3)  # the gap falls across pages
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (7, "removed")
    assert verdict.count == 6


@pytest.mark.parametrize("forged", [False, True], ids=["well-formed", "forged-hash"])
async def test_an_inserted_row_is_named_inserted(copy: str, forged: bool) -> None:
    (before,) = await _sql(copy, "SELECT * FROM audit_log WHERE seq = 6")
    intruder = {**dict(before[0]), "id": uuid.uuid4(), "seq": 7, "actor": "mallory"}
    intruder["prev_hash"] = before[0]["hash"]
    intruder["hash"] = "ab" * 32 if forged else entry_hash(intruder["prev_hash"], intruder)
    conn = await asyncpg.connect(copy)
    try:
        async with conn.transaction():
            await conn.execute("UPDATE audit_log SET seq = -seq WHERE seq >= 7")
            await conn.execute("UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0")
            columns = list(intruder)
            await conn.execute(
                f"INSERT INTO audit_log ({', '.join(columns)}) "
                f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))})",
                *intruder.values(),
            )
    finally:
        await conn.close()
    verdict = await verify_database(copy)
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (7, "inserted")
    assert verdict.finding.entry_id == intruder["id"] and verdict.count == 6


async def test_anchors_catch_a_cut_tail_and_a_rewritten_chain(copy: str) -> None:
    head = await verify_database(copy)
    anchor = Anchor(head.head_seq, head.head_hash)
    assert (await verify_database(copy, [anchor, Anchor(3, "0" * 64)])).finding is not None
    await _sql(copy, f"DELETE FROM audit_log WHERE seq = {head.head_seq}")
    # the chain alone still verifies: entries cut from its end leave no trace in it
    cut = await verify_database(copy)
    assert cut.ok and cut.count == head.count - 1
    verdict = await verify_database(copy, [anchor])
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (head.head_seq, "anchor")


async def _cli(dsn: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": dsn, "SERVER_SECRET_KEY": SECRET}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trustgate.cli",
        "admin",
        "audit",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.slow
async def test_the_command_exits_0_when_the_chain_verifies_and_1_naming_the_entry(
    copy: str,
) -> None:
    head = await verify_database(copy)
    code, out = await _cli(copy, "verify", "--anchor", f"{head.head_seq}:{head.head_hash}")
    assert code == 0, out
    assert f"{head.count} entries" in out and head.head_hash in out

    await _sql(copy, "UPDATE audit_log SET operation = 'delete' WHERE seq = 4")
    code, out = await _cli(copy, "verify", "--json")
    assert code == 1, out
    verdict = json.loads(out.strip().splitlines()[-1])
    assert verdict["ok"] is False and verdict["count"] == 3
    assert (verdict["finding"]["seq"], verdict["finding"]["kind"]) == (4, "changed")

    code, out = await _cli(copy, "verify", "--anchor", "not-an-anchor")
    assert code == 2 and "SEQ:HASH" in out


async def test_the_migration_chains_the_entries_written_before_the_chain(
    database_factory: Any,
) -> None:
    from alembic import command

    from trustgate_admin.adapters.db.engine import create_engine
    from trustgate_admin.adapters.db.migrate import alembic_config

    dsn = str(await database_factory("tg_chain_migrate"))
    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0007"))
            await conn.commit()
        old = [(uuid.uuid4(), f"2026-12-0{day} 10:00:00.123456+00") for day in (3, 1, 2)]
        await _sql(
            dsn,
            *(
                "INSERT INTO audit_log (id, occurred_at, actor, tenant_id, gateway_id, kind, "
                f"entity_id, operation, revision) VALUES ('{id_}', '{at}', 'alice', NULL, "
                f"'{uuid.uuid4()}', 'gateway', '{uuid.uuid4()}', 'update', {n})"
                for n, (id_, at) in enumerate(old, 1)
            ),
        )
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            await conn.commit()
    finally:
        await engine.dispose()
    (rows,) = await _sql(dsn, "SELECT id, seq FROM audit_log ORDER BY seq")
    assert [r["id"] for r in rows] == [old[1][0], old[2][0], old[0][0]]  # in time order
    verdict = await verify_database(dsn)
    assert verdict.ok and verdict.count == 3
