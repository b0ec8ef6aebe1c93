"""The semantic cache's wire contract between the proxy and the policy-cache service, on
NATS request/reply (``trustgate.cache.lookup`` / ``.store`` in the ``policy-cache``
queue group; ``trustgate.cache.purge`` to every replica).

The proxy computes everything that needs a provider or the request's format (the
canonical exact key, the filter key of the non-text parameters, the embedding through
an embeddings registry of the gateway: no credential travels) and stores a response as
an opaque, format-neutral entry it alone renders; the service keeps entries (Redis or
memory) and a vector index, and answers lookups. Messages are JSON (orjson); a vector is
float32 little-endian, base64.
"""

from trustgate_core.cache.messages import (
    CacheLookup,
    CachePurge,
    CacheReply,
    CacheStore,
    decode_vector,
    encode_vector,
)

__all__ = [
    "CacheLookup",
    "CachePurge",
    "CacheReply",
    "CacheStore",
    "decode_vector",
    "encode_vector",
]
