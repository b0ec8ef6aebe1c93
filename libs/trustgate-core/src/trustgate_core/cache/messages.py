"""The cache messages. ``partition`` is where an entry may be served: the consumer's id
(``scope: consumer``, the default) or ``"global"`` (``scope: global``: every consumer of
the gateway); entries are always within one gateway and one policy. Nothing is ever
served across gateways, policies or partitions."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class CacheLookup(_Message):
    """Is there an entry for this request? ``exact_key``: the hash of the canonical
    request (every parameter that changes the answer); ``filter_key``: the hash of its
    non-text parameters, a hard filter on semantic matches; ``vector``: the embedding of
    the conversation text (None: exact tier only); a semantic match needs at least
    ``threshold`` cosine similarity."""

    gateway_id: UUID
    policy_id: UUID
    partition: str
    exact_key: str
    filter_key: str
    vector: str | None = None  # encode_vector
    threshold: float = Field(0.85, gt=0, le=1)


class CacheReply(_Message):
    """``hit`` with the stored ``entry``; ``similarity`` 1.0 for an exact hit, else the
    cosine of the semantic match. ``error``: the service could not look (the proxy serves
    uncached)."""

    hit: bool
    entry: dict[str, Any] | None = None
    similarity: float | None = None
    exact: bool = False
    error: str | None = None


class CacheStore(_Message):
    """Keep ``entry`` (opaque to the service) for ``ttl_seconds``, findable by its exact
    key and, with a ``vector``, semantically within ``filter_key``."""

    gateway_id: UUID
    policy_id: UUID
    partition: str
    exact_key: str
    filter_key: str
    vector: str | None = None
    ttl_seconds: int = Field(gt=0)
    entry: dict[str, Any]


class CachePurge(_Message):
    """Drop every entry of ``policy_id`` (all partitions), on every replica."""

    gateway_id: UUID
    policy_id: UUID


def encode_vector(vector: Sequence[float]) -> str:
    """An embedding as float32 little-endian, base64 (a quarter of its JSON size)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def decode_vector(text: str) -> tuple[float, ...]:
    data = base64.b64decode(text)
    return struct.unpack(f"<{len(data) // 4}f", data)
