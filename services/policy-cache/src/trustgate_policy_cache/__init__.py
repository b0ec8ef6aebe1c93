"""TrustGate's policy-cache service: the semantic cache's entries (Redis, or memory) and
its vector index, answering the proxy over NATS request/reply in a queue group."""

__version__ = "0.1.0"
