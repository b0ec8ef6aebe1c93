"""Verifiable usage receipts: a request's canonical usage record signed with its gateway's
Ed25519 key (docs/governance.md)."""
