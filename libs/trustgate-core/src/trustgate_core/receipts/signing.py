"""Signing a usage record, and checking a receipt against a set of public keys.

A receipt is ``{"v": 1, "alg": "EdDSA", "kid": ..., "record": {...}, "sig": ...}``:
``sig`` is the Ed25519 signature (base64url, no padding) of the record's canonical bytes
(`trustgate_core.receipts.record.canonical_bytes`); ``kid`` names the public key that
checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from trustgate_core.receipts.keys import ALG, ReceiptKey, b64url, b64url_decode
from trustgate_core.receipts.record import canonical_bytes

RECEIPT_VERSION = 1


def sign_record(key: ReceiptKey, record: dict[str, Any]) -> dict[str, Any]:
    """The receipt of ``record`` signed with ``key``."""
    sig = key.private.sign(canonical_bytes(record))
    return {"v": RECEIPT_VERSION, "alg": ALG, "kid": key.kid, "record": record, "sig": b64url(sig)}


class ReceiptInvalid(Exception):
    """Why a receipt does not verify (the message says it, for a person to read)."""


def check_receipt(receipt: Any, keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The receipt's record if its signature verifies under the key its ``kid`` names in
    ``keys`` (``kid`` → public key); else `ReceiptInvalid`."""
    if not isinstance(receipt, Mapping):
        raise ReceiptInvalid("the receipt is not an object")
    if receipt.get("v") != RECEIPT_VERSION or receipt.get("alg") != ALG:
        raise ReceiptInvalid(
            f"unsupported receipt (v={receipt.get('v')!r}, alg={receipt.get('alg')!r})"
        )
    record, kid, sig = receipt.get("record"), receipt.get("kid"), receipt.get("sig")
    if not isinstance(record, dict) or not isinstance(kid, str) or not isinstance(sig, str):
        raise ReceiptInvalid("the receipt lacks its record, kid or sig")
    public = keys.get(kid)
    if public is None:
        raise ReceiptInvalid(f"unknown key {kid}")
    try:
        public.verify(b64url_decode(sig), canonical_bytes(record))
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise ReceiptInvalid("the signature does not verify") from exc
    return record
