"""Verifying the audit chain: recompute it in ``seq`` order, a page at a time, and name the
first entry that was changed, removed or inserted, or the first anchor it does not hold.

Each entry is judged against the last one that verified (its hash ``P``) and, to tell an
insertion from a change, the entry after it:

- a gap in ``seq`` (the next entry is not ``seq + 1``): **removed** (the missing seqs);
- the entry links to ``P`` and its hash matches its content: it verifies;
- its successor links to ``P``, skipping it: **inserted** (this entry);
- it links to ``P`` but its hash does not match its content: **changed**;
- it links to what the entry before it linked to, skipping that one: **inserted** (the
  entry before it);
- its own hash matches but it links to a hash no entry here has: **removed** (an entry
  between the two, the later seqs renumbered);
- neither: **changed** (its ``prev_hash`` or content was edited).

What the chain alone cannot show (entries cut from its end, or a tail rewritten with
recomputed hashes) an anchor does: an outside copy of a published head must be in the
chain, exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from trustgate_admin.adapters.db.tables import AuditRow
from trustgate_admin.governance.chain_hash import GENESIS, entry_hash

Tampering = Literal["changed", "removed", "inserted", "anchor"]
PAGE_SIZE = 2000


@dataclass(frozen=True)
class Anchor:
    """An outside copy of a head: entry ``seq`` must have ``hash``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH`` (64 hex characters)."""
        seq, sep, digest = text.partition(":")
        digest = digest.strip().lower()
        if not sep or not seq.strip().isdigit() or int(seq) < 1:
            raise ValueError(f"an anchor is SEQ:HASH with SEQ >= 1, not {text!r}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"an anchor's HASH is 64 hex characters, not {digest!r}")
        return cls(int(seq), digest)


@dataclass(frozen=True)
class Finding:
    """The first thing wrong: the entry (``seq``, and its ``entry_id`` when it is there)
    and what happened to it."""

    seq: int
    kind: Tampering
    entry_id: UUID | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """How many entries verified, the last one that did, and the first finding (None:
    the whole chain verified)."""

    count: int
    head_seq: int
    head_hash: str
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, **asdict(self)}
        if self.finding is not None:
            body["finding"]["entry_id"] = (
                str(self.finding.entry_id) if self.finding.entry_id else None
            )
        return body


Entry = Mapping[Any, Any]  # a stored row (RowMapping) or a plain dict


def _hash_of(entry: Entry) -> str | None:
    try:
        return entry_hash(entry["prev_hash"], entry)
    except (TypeError, ValueError, UnicodeEncodeError):  # content no entry could hold
        return None


def _judge(prev: Entry | None, cur: Entry, nxt: Entry | None, expected: int) -> Finding | None:
    """``cur``'s verdict, ``prev`` being the last entry that verified (``expected`` is
    the seq ``cur`` must have)."""
    last_hash = prev["hash"] if prev is not None else GENESIS
    if cur["seq"] != expected:
        missing = str(expected) if cur["seq"] == expected + 1 else f"{expected}..{cur['seq'] - 1}"
        return Finding(
            expected,
            "removed",
            None,
            f"entry {missing} is not there: the chain goes from seq {expected - 1} to {cur['seq']}",
        )
    links = cur["prev_hash"] == last_hash
    matches = _hash_of(cur) == cur["hash"]
    if links and matches:
        return None
    seq, entry_id = cur["seq"], cur["id"]
    if nxt is not None and nxt["seq"] == seq + 1 and nxt["prev_hash"] == last_hash:
        return Finding(
            seq, "inserted", entry_id, f"entry {seq + 1} is chained to entry {seq - 1}: not to it"
        )
    if links:
        return Finding(seq, "changed", entry_id, "its hash does not match its content")
    if prev is not None and cur["prev_hash"] == prev["prev_hash"]:
        return Finding(
            prev["seq"],
            "inserted",
            prev["id"],
            f"entry {seq} is chained to the entry before it: not to it",
        )
    if matches:
        return Finding(
            seq,
            "removed",
            None,
            f"entry {seq} is chained to a hash no entry has: the entry before it "
            f"({cur['prev_hash']}) is not there",
        )
    return Finding(seq, "changed", entry_id, "neither its hash nor its prev_hash match")


async def judge_chain(entries: AsyncIterator[Entry], anchors: Sequence[Anchor] = ()) -> Verdict:
    """Walk ``entries`` (in seq order) and judge each; then check the anchors."""
    wanted = {anchor.seq: anchor.hash for anchor in anchors}
    before_prev: Entry | None = None
    prev: Entry | None = None
    count = 0
    cur = await anext(entries, None)
    while cur is not None:
        nxt = await anext(entries, None)
        finding = _judge(prev, cur, nxt, count + 1)
        if finding is None and wanted.get(cur["seq"], cur["hash"]) != cur["hash"]:
            finding = Finding(
                cur["seq"],
                "anchor",
                cur["id"],
                f"the anchored hash of entry {cur['seq']} is {wanted[cur['seq']]}: "
                f"the chain holds {cur['hash']} (rewritten at or before it)",
            )
        if finding is not None and prev is not None and finding.seq == prev["seq"]:
            return _verdict(count - 1, before_prev, finding)  # prev was the inserted one
        if finding is not None:
            return _verdict(count, prev, finding)
        before_prev, prev, cur, count = prev, cur, nxt, count + 1
    beyond = sorted(seq for seq in wanted if seq > count)
    if beyond:
        finding = Finding(
            beyond[0],
            "anchor",
            None,
            f"the chain ends at entry {count}, before the anchored entry {beyond[0]}: "
            "entries at its end were removed",
        )
        return _verdict(count, prev, finding)
    return _verdict(count, prev, None)


def _verdict(count: int, head: Entry | None, finding: Finding | None) -> Verdict:
    if head is None:
        return Verdict(count, 0, GENESIS, finding)
    return Verdict(count, head["seq"], head["hash"], finding)


async def stored_entries(conn: AsyncConnection, page_size: int = PAGE_SIZE) -> AsyncIterator[Entry]:
    """Every stored entry in seq order, fetched ``page_size`` at a time (keyset paging)."""
    table = AuditRow.__table__  # type: ignore[attr-defined]
    after = 0
    while True:
        page = (
            (
                await conn.execute(
                    select(table).where(table.c.seq > after).order_by(table.c.seq).limit(page_size)
                )
            )
            .mappings()
            .all()
        )
        for entry in page:
            yield entry
        if len(page) < page_size:
            return
        after = page[-1]["seq"]


async def verify_chain(
    conn: AsyncConnection, anchors: Sequence[Anchor] = (), page_size: int = PAGE_SIZE
) -> Verdict:
    """Recompute the stored chain (``conn``'s database) and check ``anchors``."""
    return await judge_chain(stored_entries(conn, page_size), anchors)
