"""Governance, off the request path: the usage ledger (request events rolled up per hour),
budget alerts delivered by webhook, the hash-chained audit log and its published head.
`runtime.Governance` starts and stops the parts; docs/governance.md says what they do."""
