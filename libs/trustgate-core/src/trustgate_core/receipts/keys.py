"""A gateway's receipt keys: derived, never stored or sent.

Every plane that holds the secrets key (``TRUSTGATE_SECRETS_KEY``, else
``SERVER_SECRET_KEY``: the one that seals provider credentials) derives the same Ed25519
key pair for a gateway and key version::

    seed = HKDF-SHA256(ikm=secrets key, salt=str(gateway_id), info="trustgate receipts v<N>")

so the private key never travels and is never written down: the proxy derives it to sign,
the admin derives it to publish the public half. ``kid`` is the public key's RFC 7638 JWK
thumbprint, so a receipt names its exact key even after the secrets key changes (a new
secrets key is a new key pair, with a new ``kid``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG = "EdDSA"


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_private_key(material: str | bytes, gateway_id: UUID, version: int) -> Ed25519PrivateKey:
    """The gateway's receipt key of ``version``, from the secrets key ``material``."""
    ikm = material.encode() if isinstance(material, str) else material
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=str(gateway_id).encode("ascii"),
        info=f"trustgate receipts v{version}".encode("ascii"),
    ).derive(ikm)
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_x(public: Ed25519PublicKey) -> str:
    """The JWK ``x`` of a public key: its 32 raw bytes, base64url."""
    return b64url(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def thumbprint(x: str) -> str:
    """The RFC 7638 thumbprint of an Ed25519 OKP JWK (RFC 8037 §2): SHA-256 over its
    required members in lexicographic order, base64url."""
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return b64url(hashlib.sha256(members.encode("ascii")).digest())


def jwk(x: str) -> dict[str, Any]:
    """The public JWK a JWKS lists for the key ``x``."""
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint(x), "use": "sig", "alg": ALG}


def public_key_of(x: str) -> Ed25519PublicKey:
    """The public key of a JWK's ``x`` (``ValueError`` if it is not 32 bytes)."""
    return Ed25519PublicKey.from_public_bytes(b64url_decode(x))


@dataclass(frozen=True, slots=True)
class ReceiptKey:
    """A gateway's key pair of one version, with its public ``x`` and ``kid``."""

    gateway_id: UUID
    version: int
    private: Ed25519PrivateKey
    x: str
    kid: str

    @classmethod
    def derive(cls, material: str | bytes, gateway_id: UUID, version: int) -> ReceiptKey:
        private = derive_private_key(material, gateway_id, version)
        x = public_x(private.public_key())
        return cls(gateway_id, version, private, x, thumbprint(x))

    def jwk(self) -> dict[str, Any]:
        return jwk(self.x)
