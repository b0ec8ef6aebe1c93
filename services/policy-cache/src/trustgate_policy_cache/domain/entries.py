"""An entry as the service keeps it: where it may be served (its group), how to find it
(exact key, vector), when it expires, and the proxy's opaque payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from trustgate_core.cache import CacheStore

KEY_PREFIX = "tg:cache"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a semantic match may never cross: gateway, policy, partition, filter key."""

    gateway_id: str
    policy_id: str
    partition: str
    filter_key: str


@dataclass(frozen=True, slots=True)
class Entry:
    scope: Scope
    exact_key: str
    vector: str | None  # encode_vector
    expires_at: float  # epoch seconds
    payload: dict[str, Any]

    @property
    def key(self) -> str:
        return entry_key(
            self.scope.gateway_id, self.scope.policy_id, self.scope.partition, self.exact_key
        )

    def dump(self) -> bytes:
        """The stored form. The store expires it (its TTL); the value holds the expiry
        too (``exp``), so a read needs no second command to learn it."""
        s = self.scope
        return orjson.dumps(
            {
                "g": s.gateway_id,
                "p": s.policy_id,
                "pt": s.partition,
                "f": s.filter_key,
                "x": self.exact_key,
                "v": self.vector,
                "exp": self.expires_at,
                "e": self.payload,
            }
        )


def entry_of(doc: dict[str, Any], expires_at: float) -> Entry:
    scope = Scope(doc["g"], doc["p"], doc["pt"], doc["f"])
    return Entry(scope, doc["x"], doc["v"], expires_at, doc["e"])


def entry_key(gateway_id: str, policy_id: str, partition: str, exact_key: str) -> str:
    """The store's key: a policy's entries share a prefix, so a purge finds them all."""
    return f"{policy_prefix(gateway_id, policy_id)}{partition}:{exact_key}"


def policy_prefix(gateway_id: str, policy_id: str) -> str:
    return f"{KEY_PREFIX}:{gateway_id}:{policy_id}:"


def from_store(message: CacheStore, now: float) -> Entry:
    scope = Scope(
        str(message.gateway_id), str(message.policy_id), message.partition, message.filter_key
    )
    return Entry(scope, message.exact_key, message.vector, now + message.ttl_seconds, message.entry)
