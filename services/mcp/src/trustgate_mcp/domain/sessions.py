"""The ``Mcp-Session-Id`` the plane hands out: everything a replica needs to serve the
session, sealed, so any replica serves it without affinity or a shared session table.

Wire form: base64url (no padding) of a version byte, a 4-byte key id, a 12-byte nonce and
the AES-GCM ciphertext of the compact payload (orjson), with the version and key id as
associated data. The key is derived with HKDF-SHA256 from the secrets key (label
``trustgate mcp session``); keys derived from earlier secrets keys still open sessions
after a rotation, new ones are sealed with the current key only. Anything that does not
open (tampered, another deployment's key, an unknown version) or has expired is ``None``:
the client is told 404 and initializes again.

The payload names the gateway and consumer, the credential the session was opened with
(it serves no other), the negotiated protocol version, when it was issued and expires, a
random nonce (the session's identity in the shared store of replacements and terminated
sessions) and the upstream sessions opened by ``initialize``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION: Final = 1
LABEL: Final = b"trustgate mcp session"
_HEAD: Final = 1 + 4  # version byte, key id
_NONCE: Final = 12
_MAX_ID: Final = 8192  # characters: longer is not one of ours
_MAX_OPENED: Final = 10_000  # sessions remembered opened

# registry id -> (upstream session id, or None for a stateless server; its protocol version)
UpstreamIds = Mapping[UUID, tuple[str | None, str]]


@dataclass(frozen=True, slots=True)
class SessionClaims:
    gateway_id: UUID
    consumer_id: UUID
    credential: str  # "a:<auth id>" or "s:<token subject>"
    protocol_version: str
    issued_at: int  # unix seconds
    expires_at: int
    nonce: str  # hex, random per session
    upstreams: UpstreamIds = field(default_factory=dict)

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


def credential_of(auth_id: UUID | None, subject: str | None) -> str:
    """What a session is bound to: a token's subject (within the auth that accepted it:
    one oauth2 auth serves many users), else the API key's auth."""
    if subject is not None:
        return f"s:{auth_id or ''}:{subject}"
    return f"a:{auth_id or ''}"


def new_nonce() -> str:
    return os.urandom(12).hex()


def derive_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL)
    return hkdf.derive(secret.encode())


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"kid" + key).digest()[:4]


class SessionSealer:
    """Seals with the key of ``current``; opens with it or one of ``previous``."""

    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        key = derive_key(current)
        self._kid = _key_id(key)
        self._aead = AESGCM(key)
        self._openers: dict[bytes, AESGCM] = {self._kid: self._aead}
        for secret in previous:
            old = derive_key(secret)
            self._openers.setdefault(_key_id(old), AESGCM(old))
        self._opened: dict[str, SessionClaims] = {}

    def seal(self, claims: SessionClaims) -> str:
        payload = orjson.dumps(
            [
                claims.gateway_id.hex,
                claims.consumer_id.hex,
                claims.credential,
                claims.protocol_version,
                claims.issued_at,
                claims.expires_at,
                claims.nonce,
                {rid.hex: [sid, version] for rid, (sid, version) in claims.upstreams.items()},
            ]
        )
        head = bytes((VERSION,)) + self._kid
        nonce = os.urandom(_NONCE)
        sealed = head + nonce + self._aead.encrypt(nonce, payload, head)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, session_id: str, now: float) -> SessionClaims | None:
        """The claims of a session this deployment sealed and that has not expired
        (remembered per id: a session's every request opens the same one)."""
        claims = self._opened.get(session_id)
        if claims is None:
            claims = self._open(session_id)
            if claims is None:
                return None
            if len(self._opened) >= _MAX_OPENED:
                self._opened.clear()
            self._opened[session_id] = claims
        if claims.expires_at <= now:
            return None
        return claims

    def _open(self, session_id: str) -> SessionClaims | None:
        if not session_id or len(session_id) > _MAX_ID:
            return None
        try:
            raw = base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _HEAD + _NONCE or raw[0] != VERSION:
            return None
        aead = self._openers.get(raw[1:_HEAD])
        if aead is None:
            return None
        try:
            payload = aead.decrypt(raw[_HEAD : _HEAD + _NONCE], raw[_HEAD + _NONCE :], raw[:_HEAD])
            return _claims(orjson.loads(payload))
        except (InvalidTag, orjson.JSONDecodeError, ValueError, TypeError, KeyError):
            return None


def _claims(doc: list[object]) -> SessionClaims:
    gateway, consumer, credential, version, issued, expires, nonce, upstreams = doc
    if not (
        isinstance(gateway, str)
        and isinstance(consumer, str)
        and isinstance(credential, str)
        and isinstance(version, str)
        and isinstance(issued, int)
        and isinstance(expires, int)
        and isinstance(nonce, str)
        and isinstance(upstreams, dict)
    ):
        raise ValueError("not a session payload")
    return SessionClaims(
        UUID(hex=gateway),
        UUID(hex=consumer),
        credential,
        version,
        issued,
        expires,
        nonce,
        {UUID(hex=rid): (entry[0], entry[1]) for rid, entry in upstreams.items()},
    )
