"""The chain's judge on entries in memory: each kind of tampering is named at the right
entry, whatever its place in the chain (first, middle, last)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from trustgate_admin.governance.chain_hash import GENESIS, canonical, entry_hash
from trustgate_admin.governance.chain_verify import Anchor, judge_chain

START = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def entry(seq: int, prev_hash: str, **change: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "id": UUID(int=seq),
        "occurred_at": START + timedelta(seconds=seq, microseconds=7),
        "actor": "alice",
        "tenant_id": "acme",
        "gateway_id": UUID(int=1000),
        "kind": "gateway",
        "entity_id": UUID(int=2000 + seq),
        "operation": "update",
        "revision": seq,
        "details": None,
        "prev_hash": prev_hash,
        **change,
    }
    row["hash"] = entry_hash(prev_hash, row)
    return row


def chain(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        rows.append(entry(seq, rows[-1]["hash"] if rows else GENESIS))
    return rows


async def stream(rows: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for row in rows:
        yield row


async def test_an_untouched_chain_verifies_with_its_head() -> None:
    rows = chain(5)
    verdict = await judge_chain(stream(rows), [Anchor(3, rows[2]["hash"])])
    assert verdict.ok and verdict.count == 5
    assert (verdict.head_seq, verdict.head_hash) == (5, rows[-1]["hash"])
    empty = await judge_chain(stream([]))
    assert empty.ok and empty.count == 0 and empty.head_hash == GENESIS


def test_the_canonical_form_is_sorted_compact_utf8_json() -> None:
    row = entry(1, GENESIS, actor="zoë", details={"b": 1, "a": {"y": None, "x": "é"}})
    assert (
        canonical(row)
        == (
            '{"actor":"zoë","details":{"a":{"x":"é","y":null},"b":1},'
            '"entity_id":"00000000-0000-0000-0000-0000000007d1",'
            '"gateway_id":"00000000-0000-0000-0000-0000000003e8",'
            '"id":"00000000-0000-0000-0000-000000000001","kind":"gateway",'
            '"occurred_at":"2026-12-07T09:30:01.000007Z","operation":"update",'
            '"revision":1,"seq":1,"tenant_id":"acme"}'
        ).encode()
    )
    with pytest.raises(TypeError):
        canonical(entry(1, GENESIS, revision=1.0))


@pytest.mark.parametrize("at", [1, 3, 5])
async def test_a_changed_entry_is_named_changed(at: int) -> None:
    rows = chain(5)
    rows[at - 1] = {**rows[at - 1], "actor": "mallory"}
    verdict = await judge_chain(stream(rows))
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (at, "changed")
    assert verdict.finding.entry_id == UUID(int=at) and verdict.count == at - 1


@pytest.mark.parametrize("at", [1, 3])
async def test_a_deleted_entry_is_named_removed(at: int) -> None:
    rows = chain(5)
    del rows[at - 1]
    verdict = await judge_chain(stream(rows))
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (at, "removed")


async def test_an_entry_removed_with_the_later_seqs_renumbered_and_rehashed_is_named() -> None:
    rows = chain(5)
    later = [entry(3, rows[2]["hash"], id=UUID(int=4))]  # 4 renumbered 3, chained to old 3
    verdict = await judge_chain(stream([*rows[:2], *later]))
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (3, "removed")


@pytest.mark.parametrize("forged", [False, True])
@pytest.mark.parametrize("at", [1, 3])
async def test_an_inserted_entry_is_named_inserted(at: int, forged: bool) -> None:
    rows = chain(5)
    prev = rows[at - 2]["hash"] if at > 1 else GENESIS
    intruder = entry(at, prev, id=UUID(int=99), actor="mallory")
    if forged:
        intruder["hash"] = "ab" * 32
    shifted = [{**row, "seq": row["seq"] + 1} for row in rows[at - 1 :]]
    verdict = await judge_chain(stream([*rows[: at - 1], intruder, *shifted]))
    assert verdict.finding is not None
    assert (verdict.finding.seq, verdict.finding.kind) == (at, "inserted")
    assert verdict.finding.entry_id == UUID(int=99) and verdict.count == at - 1


async def test_an_anchor_the_chain_does_not_hold_fails() -> None:
    rows = chain(5)
    wrong = await judge_chain(stream(rows), [Anchor(2, "0" * 63 + "1")])
    assert wrong.finding is not None and (wrong.finding.seq, wrong.finding.kind) == (2, "anchor")
    cut = await judge_chain(stream(rows[:4]), [Anchor(5, rows[4]["hash"])])
    assert cut.finding is not None and (cut.finding.seq, cut.finding.kind) == (5, "anchor")
    assert cut.count == 4


def test_an_anchor_is_seq_colon_hash() -> None:
    assert Anchor.parse(f"12:{'A' * 64}") == Anchor(12, "a" * 64)
    for bad in ("12", f"0:{'a' * 64}", "x:abc", f"3:{'g' * 64}", "3:abc"):
        with pytest.raises(ValueError):
            Anchor.parse(bad)
