"""The ledger's counters reach the admin's /metrics once the running ledger is bound."""

from __future__ import annotations

from trustgate_admin.api.metrics import AdminMetrics
from trustgate_admin.governance.ledger import LedgerStats


def test_the_ledgers_counters_and_lag_are_rendered() -> None:
    metrics = AdminMetrics()
    stats = LedgerStats(counted=7, duplicates=2, undecodable=1, failed_batches=3, lag=40)
    metrics.bind_ledger(stats)
    stats.counted += 1  # read at scrape time, not copied at binding
    body = metrics.render()[0].decode()
    for line in (
        "trustgate_admin_ledger_counted_total 8.0",
        "trustgate_admin_ledger_duplicates_total 2.0",
        "trustgate_admin_ledger_undecodable_total 1.0",
        "trustgate_admin_ledger_failed_batches_total 3.0",
        "trustgate_admin_ledger_lag 40.0",
    ):
        assert line in body.splitlines()
