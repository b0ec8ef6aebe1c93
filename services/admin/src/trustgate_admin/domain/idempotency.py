"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): what a key may be, what
makes two requests "the same", and the errors of misuse."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from trustgate_core.errors import Conflict, TrustGateError, ValidationFailed

#: How long a stored answer is replayed; a key older than this starts a new request.
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class InvalidIdempotencyKey(TrustGateError):
    code, status = "invalid_idempotency_key", 400


class IdempotencyKeyReused(ValidationFailed):
    """The key was used with another request body (the draft's 422)."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    """A request with the same key has not finished yet (the draft's 409)."""

    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class IdempotentRequest:
    """One admin's use of a key on one route, and the fingerprint of what it sent."""

    principal: str
    method: str
    path: str
    key: str
    fingerprint: str

    @property
    def lock_name(self) -> str:
        return "\x1f".join((self.principal, self.method, self.path, self.key))


def checked_key(raw: str) -> str:
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable():
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return raw


def fingerprint(body: bytes, parsed: Any = None) -> str:
    """The SHA-256 of the body; a JSON body is hashed in a canonical form, so the same
    document with other spacing or key order is the same request."""
    if parsed is not None:
        body = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()
