"""The authorization server's keys, all derived from the secrets key (HKDF, one label per
use), so every replica signs, verifies, seals and opens alike without sharing state.

- ``Signer``: the Ed25519 key that signs access tokens (``kid``: a hash of its public
  key); earlier secrets keys still verify, so tokens survive a key rotation until they
  expire.
- ``Sealer``: AES-256-GCM for what the plane hands out and takes back unchanged (client
  ids, authorization codes, refresh tokens, the connect form, the IdP round trip's state).
  Each purpose is bound as associated data, so one kind of blob never passes for another.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SIGNING_LABEL = b"trustgate/mcp/oauth/signing/v1"
_SEALING_LABEL = b"trustgate/mcp/oauth/sealing/v1"
_NONCE = 12


def _derive(material: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        material.encode()
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """The current signing key and the public keys that verify (current and earlier)."""

    def __init__(self, material: str, previous: Sequence[str] = ()) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(_derive(material, _SIGNING_LABEL))
        current = self.private.public_key()
        self.kid = _kid(current)
        self.public: dict[str, Ed25519PublicKey] = {self.kid: current}
        for old in previous:
            key = Ed25519PrivateKey.from_private_bytes(_derive(old, _SIGNING_LABEL)).public_key()
            self.public.setdefault(_kid(key), key)

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64url(_raw(key)),
                    "kid": kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
                for kid, key in self.public.items()
            ]
        }


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _kid(key: Ed25519PublicKey) -> str:
    return b64url(hashlib.sha256(_raw(key)).digest()[:12])


class Sealer:
    """Seals JSON documents into URL-safe strings; opens what it (or a replica with the
    same secrets key, or an earlier one) sealed."""

    def __init__(self, material: str, previous: Sequence[str] = ()) -> None:
        self._current = AESGCM(_derive(material, _SEALING_LABEL))
        self._all = [self._current, *(AESGCM(_derive(k, _SEALING_LABEL)) for k in previous)]

    def seal(self, purpose: bytes, doc: Any) -> str:
        nonce = os.urandom(_NONCE)
        return b64url(nonce + self._current.encrypt(nonce, orjson.dumps(doc), purpose))

    def open(self, purpose: bytes, sealed: str) -> Any:
        """The document, or None if ``sealed`` is not one of ours for ``purpose``."""
        try:
            blob = _unb64url(sealed)
        except ValueError:
            return None
        if len(blob) <= _NONCE + 16:
            return None
        for aead in self._all:
            try:
                return orjson.loads(aead.decrypt(blob[:_NONCE], blob[_NONCE:], purpose))
            except InvalidTag:
                continue
            except orjson.JSONDecodeError:
                return None
        return None
