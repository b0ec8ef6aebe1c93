"""Verifiable usage receipts: a request's canonical usage record signed with its gateway's
Ed25519 key (docs/governance-receipts.md).

``record`` builds the usage record from a request event (as the proxy builds it, or as it
was exported) and its canonical bytes; ``keys`` derives a gateway's key pair from the
secrets key and names it (``kid``: its RFC 7638 thumbprint); ``signing`` signs a record
and checks a receipt; ``verify`` is ``trustgate receipts verify``.
"""
