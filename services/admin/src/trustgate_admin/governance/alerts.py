"""Budget alerts, evaluated off the request path: after each ledger batch commits (for the
gateways whose usage moved) and every ``ALERT_EVAL_INTERVAL`` for every gateway with enabled
rules (an anomaly's hour closes, a window rolls over, a rule changed). Debounced: at most one
evaluation per gateway runs at a time; usage that moves meanwhile is evaluated once more
after it. What an evaluation does is ``alert_evaluation``'s."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

from trustgate_admin.governance import alert_evaluation as evaluation
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class AlertEngine:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps
        self.fired = 0  # firings this instance stored (for /metrics)
        self._running: dict[UUID, asyncio.Task[None]] = {}
        self._again: set[UUID] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = False

    async def committed(self, gateway_ids: set[UUID]) -> None:
        """Schedule an evaluation of each gateway (returns at once: the ledger goes on)."""
        for gateway_id in gateway_ids:
            self._schedule(gateway_id)

    async def start(self) -> None:
        self._stopped = False
        self._ticker = asyncio.create_task(self._tick(), name="alert-engine")

    async def stop(self) -> None:
        self._stopped = True
        tasks = [t for t in (self._ticker, *self._running.values()) if t is not None]
        for task in tasks:
            await cancel_and_wait(task)
        self._ticker = None
        self._running.clear()

    def _schedule(self, gateway_id: UUID) -> None:
        if self._stopped:
            return
        running = self._running.get(gateway_id)
        if running is not None and not running.done():
            self._again.add(gateway_id)  # it runs once more when the current one ends
            return
        task = asyncio.create_task(self._settle(gateway_id), name=f"alerts-{gateway_id}")
        self._running[gateway_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._running.get(gateway_id) is done:
                del self._running[gateway_id]

        task.add_done_callback(forget)

    async def _settle(self, gateway_id: UUID) -> None:
        while True:
            self._again.discard(gateway_id)
            await self._evaluate(gateway_id)
            if gateway_id not in self._again:
                return

    async def _evaluate(self, gateway_id: UUID) -> None:
        """Each enabled rule of the gateway in its own transaction; a failure (the database
        away) is logged and left to the next batch or tick, the other rules still run."""
        try:
            async with self.deps.sessions() as session:
                rule_ids = await evaluation.rule_ids(session, gateway_id)
        except Exception as exc:
            log.warning(
                "alerts: reading gateway %s's rules failed (%s)", gateway_id, type(exc).__name__
            )
            return
        for rule_id in rule_ids:
            try:
                async with self.deps.sessions() as session, session.begin():
                    fired = await evaluation.evaluate_rule(
                        session, self.deps.box, rule_id, datetime.now(UTC)
                    )
                self.fired += fired  # committed: counted once, whoever evaluated
            except Exception as exc:
                log.warning("alerts: evaluating rule %s failed (%s)", rule_id, type(exc).__name__)

    async def _tick(self) -> None:
        while True:
            try:
                async with self.deps.sessions() as session:
                    gateway_ids = await evaluation.gateways_with_rules(session)
                await self.committed(set(gateway_ids))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alerts: listing the rules failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.deps.settings.alert_eval_interval)
