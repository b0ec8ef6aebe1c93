"""The hash-chained audit log (docs/governance-audit.md): request entries for the gateways
that ask for them, the head published on the bus, and ``trustgate admin audit verify``.

Admin changes reach the chain through the unit of work; how an entry is hashed is
``chain_hash``, how it is appended ``chain_append``, how a chain is judged
``chain_verify``, how the head is published ``chain_head``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.errors import is_unavailable
from trustgate_admin.adapters.db.tables import GatewayRow
from trustgate_admin.governance.chain_append import append
from trustgate_admin.governance.chain_head import HeadPublisher
from trustgate_admin.governance.chain_requests import request_entry
from trustgate_admin.governance.chain_verify import PAGE_SIZE, Anchor, Verdict, verify_chain
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.settings import AdminSettings
from trustgate_core.events.requests import RequestEvent

__all__ = ["HeadPublisher", "RequestAuditSink", "verify_command"]


class RequestAuditSink:
    """The ledger's sink: one chain entry per first-counted request event of a gateway
    whose ``governance.audit_requests`` is on. One flags read and, when any event is
    audited, one append (one lock, one head read, one insert) per batch."""

    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps

    async def record(self, session: AsyncSession, events: Sequence[RequestEvent]) -> None:
        if not events:
            return
        gateways = {event.gateway_id for event in events}
        conn = await session.connection()
        rows = await conn.execute(
            select(GatewayRow.id, GatewayRow.tenant_id, GatewayRow.governance).where(  # type: ignore[call-overload]
                GatewayRow.id.in_(gateways)  # type: ignore[attr-defined]
            )
        )
        audited = {
            row.id: row.tenant_id
            for row in rows
            if isinstance(row.governance, dict) and row.governance.get("audit_requests") is True
        }
        entries = [
            request_entry(event, audited[event.gateway_id])
            for event in events
            if event.gateway_id in audited
        ]
        await append(session, entries)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustgate admin audit",
        description="Check the hash-chained audit log (docs/governance-audit.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify",
        help="recompute the chain; exit 0 when it verifies, 1 naming the first bad entry",
    )
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        type=_anchor,
        metavar="SEQ:HASH",
        help="a published head kept outside TrustGate: the chain must hold it (repeatable)",
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.add_argument(
        "--page-size",
        type=_positive,
        default=PAGE_SIZE,
        help=f"entries fetched per query (default {PAGE_SIZE})",
    )
    return parser


def _anchor(text: str) -> Anchor:
    try:
        return Anchor.parse(text)
    except ValueError as exc:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


async def verify_database(
    dsn: str, anchors: Sequence[Anchor] = (), page_size: int = PAGE_SIZE
) -> Verdict:
    """Verify the chain stored in the database at ``dsn``."""
    from trustgate_admin.adapters.db.engine import create_engine

    engine = create_engine(dsn, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await verify_chain(conn, anchors, page_size)
    finally:
        await engine.dispose()


def render(verdict: Verdict) -> str:
    """The verdict as one line a person reads."""
    if verdict.finding is None:
        return (
            f"audit chain verified: {verdict.count} entries, "
            f"head seq {verdict.head_seq} hash {verdict.head_hash}"
        )
    finding = verdict.finding
    entry = f" (id {finding.entry_id})" if finding.entry_id is not None else ""
    return (
        f"audit chain broken at seq {finding.seq}{entry}: {finding.kind}: {finding.detail} "
        f"({verdict.count} entries verified before it)"
    )


def verify_command(settings: AdminSettings, argv: list[str]) -> int:
    """``trustgate admin audit verify [--anchor SEQ:HASH]... [--json]``: 0 when the chain
    verifies, 1 when it does not, 2 for bad options or an unreachable database."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed why
        return int(exc.code or 0)
    try:
        verdict = asyncio.run(verify_database(settings.dsn, args.anchor, args.page_size))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        print(f"audit verify: the database is unreachable ({type(exc).__name__})")
        return 2
    print(json.dumps(verdict.as_json()) if args.json else render(verdict))
    return 0 if verdict.ok else 1
