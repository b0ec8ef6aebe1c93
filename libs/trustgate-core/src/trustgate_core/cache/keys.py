"""The cache's request keys, computed by the proxy from the request body the upstream is
sent (a mapping of plain JSON values).

- ``exact_key``: sha256 of the canonical request: the client's body, every field of it
  (nested ones included) except those the caller knows not to change the answer, with
  the wire format and the model it resolves to. JSON key order never matters (keys are
  sorted), nor does ``1`` against ``1.0``. A parameter left out and one set to its
  default differ (an omitted ``temperature`` is the provider's default, not ours).
- ``filter_key``: sha256 of the request with its conversation text taken out (the caller
  blanks every text the semantic tier embeds): a semantic match must agree on the model,
  every parameter and every non-text part (images, files, audio, tool calls and tool
  results), so only a difference of text goes through similarity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

_EXACT_INTS: Final = 2**53  # past this a float is not an integer's exact spelling


def _normal(value: Any) -> Any:
    """``value`` with integral floats as integers (``1.0`` and ``1`` are one JSON number)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _EXACT_INTS else value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """``value`` as canonical JSON (sorted keys, no whitespace, integral floats as ints)."""
    return orjson.dumps(_normal(value), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def exact_key(request: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(request))).hexdigest()


def filter_key(without_text: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(without_text))).hexdigest()
