"""The audit chain's hash: pure, no I/O, and frozen (version 1).

Every audit entry's ``hash`` is ``SHA-256(prev_hash || canonical(entry))`` (hex, lower
case), where ``prev_hash`` is the previous entry's hash as 64 ASCII hex characters (the
first entry's is :data:`GENESIS`), and ``canonical(entry)`` is the UTF-8 JSON object of
the entry's stored fields with sorted keys, no whitespace and no escaping of non-ASCII
(RFC 8785, JCS, for these values: the entry holds no floating-point number). Identifiers
are lower-case hyphenated UUIDs; times are UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; a missing
value is ``null``. docs/governance-audit.md spells it out for tools outside TrustGate.

Changing anything here breaks every stored chain: the migration that chained the rows
that existed and ``trustgate admin audit verify`` both compute it with this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

#: ``prev_hash`` of the first entry.
GENESIS = "0" * 64
#: The stored fields that the hash covers, in every entry.
CHAINED_FIELDS = (
    "seq",
    "id",
    "occurred_at",
    "actor",
    "tenant_id",
    "gateway_id",
    "kind",
    "entity_id",
    "operation",
    "revision",
    "details",
)


def canonical_time(value: datetime) -> str:
    """A timestamp as the chain writes it: UTC, microseconds, ``Z`` (Postgres keeps
    microseconds, so a value read back hashes the same)."""
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, float):
        # a float's text differs between encoders: the chain stores decimals as strings
        raise TypeError("audit entries hold no floating-point numbers")
    return value


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes the hash covers: :data:`CHAINED_FIELDS` of ``entry`` as sorted-key,
    compact UTF-8 JSON. ``details`` must be plain JSON without floating-point numbers
    (strings, integers, booleans, null, lists, objects): its writers make it so."""
    body = {name: _plain(entry[name]) for name in CHAINED_FIELDS}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """``SHA-256(prev_hash || canonical(entry))`` as 64 lower-case hex characters."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical(entry))
    return digest.hexdigest()
