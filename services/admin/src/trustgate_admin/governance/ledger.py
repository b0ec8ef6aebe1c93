"""The usage ledger (stub: issue 17 fills it in)."""

from __future__ import annotations

from collections.abc import Sequence

from trustgate_admin.governance.ports import AfterCommit, GovernanceDeps, LedgerSink


class Ledger:
    def __init__(
        self, deps: GovernanceDeps, sinks: Sequence[LedgerSink], after: Sequence[AfterCommit]
    ) -> None:
        self.deps, self.sinks, self.after = deps, sinks, after

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
