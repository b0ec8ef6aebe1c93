"""Identifiers: UUIDv7 entity ids, slugs and consumer API keys."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import string
import time
import uuid

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits

API_KEY_PREFIX = "ag_"


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def consumer_slug() -> str:
    """Eight characters from [A-Za-z0-9]: the consumer's proxy path prefix."""
    return "".join(secrets.choice(_ALNUM) for _ in range(8))


def gateway_slug() -> str:
    """`gw-` and twelve characters from [a-z0-9], used when a gateway has no slug."""
    return "gw-" + "".join(secrets.choice(_LOWER_ALNUM) for _ in range(12))


def new_api_key() -> str:
    """`ag_` followed by base64url (no padding) of 32 random bytes."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return API_KEY_PREFIX + raw


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of a presented key: what is stored and what travels."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_preview(key: str) -> tuple[str, str]:
    """The first eight characters (with `ag_`) and the last four."""
    return key[:8], key[-4:]
