"""Secrets at rest and on the bus: AES-256-GCM sealing of secret fields, and masking.

A sealed value is the string ``tgs1:`` + base64url(nonce || ciphertext || tag). Secret
fields inside a JSON document (provider credentials, client secrets, header values) are
sealed in place, so the non-secret parts of a document stay readable on the bus while a
subscriber without the key cannot read the credentials.

Which fields are secret is one rule, `is_secret_key`, shared by sealing and masking: a
known credential key, or any key whose name ends in a credential word (``token``,
``secret``, ``password``, ``authorization``, ``api-key``, ``cookie``, ``credential``,
``private key``, in any case, with or without ``-``/``_``); every value of a ``headers``
map is secret too. A URL never carries a credential (`find_url_credentials`): the admin
refuses one, so it cannot reach the bus in clear.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "tgs1:"
MASK = "***"

# Keys whose values are secrets wherever they appear in a credentials document.
SECRET_KEYS = frozenset(
    {
        "api_key",
        "client_secret",
        "secret_access_key",
        "session_token",
        "password",
        "header_value",
        "param_value",
        "refresh_token",
        "code_verifier",
        "private_key",
        "value",
        "token",
        "secret",
    }
)
# Key names ending in one of these words (lower case, ``-``/``_`` removed) are secrets: the
# end, so that ``token_url`` or ``max_tokens`` stay readable while ``access_token`` does not.
SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "apikey",
    "cookie",
    "credential",
    "credentials",
    "privatekey",
)
# Keys whose whole value (even an object) is one secret.
SECRET_WHOLE = frozenset({"gcp_service_account"})
# Keys whose values are maps of secrets (every value is secret).
SECRET_MAPS = frozenset({"headers"})
# Keys whose values are maps of data (model aliases), never secrets whatever their keys say.
PLAIN_MAPS = frozenset({"model_mapping"})

_URL_USERINFO = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*@")


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (sealed on the bus, masked on display)."""
    if name in SECRET_KEYS:
        return True
    return name.lower().replace("-", "").replace("_", "").endswith(SECRET_WORDS)


class SecretBox:
    """Seals and opens strings with a key derived from the server secret."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode() if isinstance(secret, str) else secret
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"trustgate/secrets/v1"
        ).derive(material)
        self._aead = AESGCM(key)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, plaintext.encode(), None)
        return SEALED_PREFIX + base64.urlsafe_b64encode(blob).decode()

    def open(self, sealed: str) -> str:
        if not is_sealed(sealed):
            raise ValueError("not a sealed value")
        blob = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :].encode())
        return self._aead.decrypt(blob[:12], blob[12:], None).decode()

    def seal_fields(self, doc: Any) -> Any:
        """A copy of ``doc`` with every secret leaf sealed (already sealed leaves kept)."""
        return _walk(doc, lambda v: v if is_sealed(v) else self.seal(_as_text(v)))

    def open_fields(self, doc: Any) -> Any:
        """A copy of ``doc`` with every sealed leaf opened."""
        return _walk(doc, lambda v: self.open(v) if is_sealed(v) else v)


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def mask(value: str) -> str:
    """`***` plus the last four characters, or `***` alone for a short value."""
    return MASK if len(value) <= 8 else MASK + value[-4:]


def is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MASK)


def mask_fields(box: SecretBox, doc: Any) -> Any:
    """A copy of ``doc`` for display: each secret leaf opened, then masked."""

    def _mask(v: Any) -> Any:
        text = box.open(v) if is_sealed(v) else _as_text(v)
        return mask(text)

    return _walk(doc, _mask)


def merge_masked(new: Any, stored: Any) -> Any:
    """Where ``new`` holds a masked secret, keep the stored (sealed) value instead."""
    if isinstance(new, Mapping):
        old = stored if isinstance(stored, Mapping) else {}
        return {k: merge_masked(v, old.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        old_list = stored if isinstance(stored, list) else []
        return [
            merge_masked(v, old_list[i] if i < len(old_list) else None) for i, v in enumerate(new)
        ]
    if is_masked(new) and stored is not None:
        return stored
    return new


def find_masked(doc: Any) -> str | None:
    """The path of the first masked secret in ``doc``, if any."""
    return find_leaf(doc, is_masked)


def find_url_credentials(doc: Any) -> str | None:
    """The path of the first URL in ``doc`` that carries credentials (``user:pass@host``).

    Only the path is returned: a message built from it never repeats the secret."""
    found = find_leaf(doc, _has_userinfo)
    return "url" if found == "" else found


def _has_userinfo(value: Any) -> bool:
    return isinstance(value, str) and _URL_USERINFO.match(value.strip()) is not None


def find_leaf(doc: Any, wanted: Callable[[Any], bool], path: str = "") -> str | None:
    """The path (``a.b[2].c``) of the first leaf of ``doc`` that is ``wanted``, if any
    (``""`` for ``doc`` itself)."""
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            found = find_leaf(v, wanted, f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found = find_leaf(v, wanted, f"{path}[{i}]")
            if found is not None:
                return found
    elif wanted(doc):
        return path
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(value).decode()


def _walk(doc: Any, on_secret: Any, secret: bool = False) -> Any:
    if secret and doc is not None and not isinstance(doc, (bool, Mapping, list)):
        return on_secret(doc)
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if k in SECRET_WHOLE and v is not None and v != {}:
                out[k] = on_secret(v) if not isinstance(v, str) or not is_masked(v) else v
            elif k in SECRET_MAPS and isinstance(v, Mapping):
                out[k] = {hk: _walk(hv, on_secret, True) for hk, hv in v.items()}
            elif k in PLAIN_MAPS:
                out[k] = v
            else:
                out[k] = _walk(v, on_secret, is_secret_key(str(k)))
        return out
    if isinstance(doc, list):
        return [_walk(v, on_secret, False) for v in doc]
    return doc
