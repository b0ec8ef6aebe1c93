"""Starts and stops the governance parts beside the admin API, wired to each other: the
ledger hands first-counted events to the request audit sink (in its transaction) and tells
the alert engine which gateways moved (after it commits)."""

from __future__ import annotations

import logging

from trustgate_admin.governance.alerts import AlertEngine
from trustgate_admin.governance.chain import HeadPublisher, RequestAuditSink
from trustgate_admin.governance.ledger import Ledger
from trustgate_admin.governance.ports import GovernanceDeps, Part
from trustgate_admin.governance.receipts import ReceiptKeys
from trustgate_admin.governance.webhooks import DeliveryWorker

log = logging.getLogger(__name__)


class GovernanceSettingsError(ValueError):
    """Settings the governance parts refuse to run with (the admin does not start)."""


class Governance:
    def __init__(self, deps: GovernanceDeps) -> None:
        problem = deps.settings.dedupe_retention_problem()
        if problem is not None:
            raise GovernanceSettingsError(problem)
        self.alerts = AlertEngine(deps)
        self.deliveries = DeliveryWorker(deps)
        self.heads = HeadPublisher(deps)
        self.receipt_keys = ReceiptKeys(deps)  # public keys written down, even unread
        self.ledger = Ledger(deps, sinks=[RequestAuditSink(deps)], after=[self.alerts])
        parts: list[Part] = [self.deliveries, self.alerts, self.heads, self.receipt_keys]
        if deps.settings.ledger_enabled:
            parts.append(self.ledger)
        self.parts = parts
        self._started: list[Part] = []

    async def start(self) -> None:
        for part in self.parts:
            await part.start()
            self._started.append(part)

    async def stop(self) -> None:
        """Last started, first stopped; one part failing to stop does not keep the others."""
        while self._started:
            part = self._started.pop()
            try:
                await part.stop()
            except Exception:
                log.exception("governance: %s did not stop cleanly", type(part).__name__)
